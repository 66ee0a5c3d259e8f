"""make_synthetic: deterministic, right shapes, and the planted structure is really there."""
import numpy as np
import pytest

from evo_msa.data import make_synthetic
from evo_msa.errors import UserError

SPLIT_NAMES = ("train", "valid", "test")


def _arrays(data):
    for s in SPLIT_NAMES:
        split = data.splits[s]
        yield from split.features.values()
        yield from split.lengths.values()
        yield from split.unimodal.values()
        yield split.regression if split.regression is not None else split.classification


def _test_r2(data, mods, lam=10.0):
    """Ridge from the utterance-mean features of `mods`, fitted on train, R^2 on test."""
    def x(split):
        feats = [split.features[m].sum(1) / split.lengths[m][:, None] for m in mods]
        return np.hstack(feats + [np.ones((len(split), 1))])
    tr, te = data.splits["train"], data.splits["test"]
    xt = x(tr)
    w = np.linalg.solve(xt.T @ xt + lam * np.eye(xt.shape[1]), xt.T @ tr.regression)
    resid = te.regression - x(te) @ w
    return 1 - resid.var() / te.regression.var()


def test_same_seed_is_bit_identical_other_seed_differs():
    a, b = make_synthetic("sims", seed=4, n=80), make_synthetic("sims", seed=4, n=80)
    for x, y in zip(_arrays(a), _arrays(b), strict=True):
        assert x.dtype == y.dtype and np.array_equal(x, y)
    assert a.splits["test"].ids == b.splits["test"].ids
    c = make_synthetic("sims", seed=5, n=80)
    assert not np.array_equal(a.splits["train"].regression, c.splits["train"].regression)
    assert not np.array_equal(a.splits["train"].features["text"], c.splits["train"].features["text"])


def test_mosi_defaults():
    data = make_synthetic("mosi")
    assert [len(data.splits[s]) for s in SPLIT_NAMES] == [1284, 229, 686]
    assert data.dims == {"text": 64, "audio": 32, "vision": 32}
    assert data.task == "regression" and data.scale == 3.0 and not data.has_unimodal_labels
    train = data.splits["train"]
    assert train.features["text"].dtype == np.float32 and train.lengths["audio"].dtype == np.int64
    assert train.regression.dtype == np.float32
    assert np.abs(train.regression).max() <= 3 and train.regression.std() > 1
    assert train.ids[0] == "syn_000000" and data.splits["valid"].ids[0] == "syn_001284"


def test_noise_modality_carries_no_label_information():
    data = make_synthetic("mosi", noise=("vision",))
    clean = make_synthetic("mosi")
    # labels are drawn before features: the same whatever the noise
    np.testing.assert_array_equal(data.splits["test"].regression, clean.splits["test"].regression)
    assert _test_r2(data, ["vision"]) < 0.03
    assert _test_r2(clean, ["vision"]) > 0.1
    text = _test_r2(data, ["text"])
    assert text > 0.25
    assert _test_r2(clean, ["text", "audio", "vision"]) > text + 0.05


def test_iemocap_has_six_roughly_balanced_classes():
    data = make_synthetic("iemocap", seed=1)
    assert data.task == "classification" and data.num_classes == 6
    assert data.label_names[:2] == ["happy", "sad"]
    assert [len(data.splits[s]) for s in SPLIT_NAMES] == [1050, 150, 300]
    y = np.concatenate([data.splits[s].classification for s in SPLIT_NAMES])
    assert y.dtype == np.int64 and y.min() == 0 and y.max() == 5
    assert np.bincount(y).min() > len(y) / 12


def test_sims_has_unimodal_labels_in_unit_range():
    data = make_synthetic("sims", n=200)
    assert data.scale == 1.0 and data.has_unimodal_labels
    assert data.splits["train"].unimodal.keys() == {"text", "audio", "vision"}
    for split in data.splits.values():
        for y in (split.regression, *split.unimodal.values()):
            assert y.dtype == np.float32 and np.abs(y).max() <= 1
    same = make_synthetic("mosi", n=200, unimodal=True)
    np.testing.assert_array_equal(same.splits["test"].unimodal["audio"],
                                  data.splits["test"].unimodal["audio"])


def test_sequences_have_varying_lengths_and_zero_padding():
    data = make_synthetic("mosi", n=1000, seq_len=4, noise=("a",))
    assert data.seq_lens == {"text": 4, "audio": 4, "vision": 4}
    for m in ("text", "audio"):
        x, lengths = data.splits["train"].features[m], data.splits["train"].lengths[m]
        assert lengths.min() == 1 and lengths.max() == 4
        mask = np.arange(4)[None, :] < lengths[:, None]
        assert (x[~mask] == 0).all() and (x[mask] != 0).all()
    assert _test_r2(data, ["text"]) > 0.25


@pytest.mark.parametrize("kwargs, message", [
    ({"name": "mosei"}, "unknown synthetic data set"),
    ({"name": "mosi", "noise": ("smell",)}, "unknown noise modality 'smell'"),
    ({"name": "iemocap", "unimodal": True}, "unimodal labels exist only for regression"),
    ({"name": "mosi", "n": 5}, "too small"),
])
def test_bad_arguments(kwargs, message):
    with pytest.raises(UserError, match=message):
        make_synthetic(**kwargs)
