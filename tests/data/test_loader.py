"""load_data / parse_data_spec: MMSA-layout pickles are validated, cleaned and z-scored on train."""
import os
import pickle
from pathlib import Path

import numpy as np
import pytest

from evo_msa.data import MSAData, load_data
from evo_msa.data.loader import DataSpec, normalize, parse_data_spec
from evo_msa.errors import UserError

SIZES = {"train": 12, "valid": 4, "test": 5}


def _split(n, rng, *, audio=True, offset=0.0):
    split = {"id": [f"v_{i}" for i in range(n)],
             "text": rng.normal(offset, 1.0, (n, 6)).astype(np.float32),
             "regression_labels": rng.uniform(-3, 3, n).astype(np.float32)}
    if audio:
        split["audio"] = rng.normal(offset, 2.0, (n, 3, 4)).astype(np.float32)
        split["audio_lengths"] = rng.integers(1, 4, n)
    return split


def _raw(seed=0, **kw):
    rng = np.random.default_rng(seed)
    return {s: _split(n, rng, **kw) for s, n in SIZES.items()}


def _write(tmp_path, raw, name="d.pkl"):
    path = tmp_path / name
    path.write_bytes(pickle.dumps(raw, protocol=4))
    return path


def test_parse_data_spec():
    assert parse_data_spec("x/y.pkl") == DataSpec(path=Path("x/y.pkl"))
    spec = parse_data_spec("synthetic:mosi?seed=1&n=600&noise=vision,a&seq=5")
    assert (spec.synthetic, spec.seed, spec.n, spec.noise, spec.seq_len) == (
        "mosi", 1, 600, ("vision", "audio"), 5)
    assert parse_data_spec("synthetic:iemocap") == DataSpec(synthetic="iemocap")
    with pytest.raises(UserError, match=r"unknown option 'sed'.*seed, n, noise, seq"):
        parse_data_spec("synthetic:mosi?sed=1")
    with pytest.raises(UserError, match="unknown synthetic data set 'mosei'"):
        parse_data_spec("synthetic:mosei")
    with pytest.raises(UserError, match="unknown noise modality 'smell'"):
        parse_data_spec("synthetic:mosi?noise=smell")
    with pytest.raises(UserError, match="seed must be an integer"):
        parse_data_spec("synthetic:mosi?seed=x")
    with pytest.raises(UserError, match="option n is given twice"):
        parse_data_spec("synthetic:mosi?n=100&n=200")
    with pytest.raises(UserError, match=r"n x seq must be at most 5,000,000"):
        parse_data_spec("synthetic:mosi?seq=10000")


def test_synthetic_spec_loads_normalized():
    data = load_data("synthetic:mosi?n=100&seed=3")
    assert [len(data.splits[s]) for s in ("train", "valid", "test")] == [59, 10, 31]
    x = data.splits["train"].features["text"][:, 0]
    np.testing.assert_allclose(x.mean(0), 0, atol=1e-5)
    np.testing.assert_allclose(x.std(0), 1, atol=1e-4)


def test_pickle_loads_and_reshapes_2d_features(tmp_path):
    data = load_data(str(_write(tmp_path, _raw())), normalize=False)
    assert isinstance(data, MSAData) and data.name == "d"
    assert data.task == "regression" and data.scale == 3.0
    assert data.modalities == ("text", "audio")
    train = data.splits["train"]
    assert train.features["text"].shape == (12, 1, 6) and train.features["text"].dtype == np.float32
    assert train.lengths["text"].tolist() == [1] * 12 and train.lengths["audio"].dtype == np.int64
    assert train.ids[0] == "v_0" and not data.has_unimodal_labels


def test_missing_split_is_named(tmp_path):
    raw = _raw()
    del raw["valid"]
    path = _write(tmp_path, raw)
    with pytest.raises(UserError, match=r"missing split 'valid' \(expected keys train, valid, test\)"):
        load_data(str(path))


def test_row_mismatch_names_split_and_key(tmp_path):
    raw = _raw()
    raw["test"]["audio"] = raw["test"]["audio"][:3]
    path = _write(tmp_path, raw)
    with pytest.raises(UserError) as err:
        load_data(str(path))
    assert str(err.value) == f"{path}: test/audio has 3 rows but test/regression_labels has 5"


@pytest.mark.parametrize("edit, message", [
    (lambda r: r["train"].__setitem__("text", np.zeros((12, 1, 1, 6))), "train/text must be 2-D"),
    (lambda r: r["valid"].__setitem__("text", np.zeros((4, 7))),
     "valid/text has feature dim 7 but train/text has 6"),
    (lambda r: r["test"].pop("audio"), "modality 'audio' is in train, valid but not in test"),
    (lambda r: [r[s].pop("regression_labels") for s in r], "train has no labels"),
    (lambda r: [r[s].pop(k) for s in r for k in ("text", "audio", "audio_lengths")],
     "no modality found"),
])
def test_bad_files_give_one_line_errors(tmp_path, edit, message):
    raw = _raw()
    edit(raw)
    path = _write(tmp_path, raw)
    with pytest.raises(UserError, match=message) as err:
        load_data(str(path))
    assert str(err.value).startswith(str(path)) and "\n" not in str(err.value)


def test_missing_file(tmp_path):
    with pytest.raises(UserError, match="no such data file"):
        load_data(str(tmp_path / "nope.pkl"))


def test_non_finite_values_are_zeroed_with_counts(tmp_path):
    raw = _raw()
    raw["train"]["audio"][0, 0, :2] = -np.inf
    raw["test"]["audio"][1, 0, 0] = np.nan
    with pytest.warns(UserWarning, match=r"replaced 3 non-finite values by 0 "
                                         r"\(train/audio: 2, test/audio: 1\)"):
        data = load_data(str(_write(tmp_path, raw)), normalize=False)
    assert data.splits["train"].features["audio"][0, 0, :2].tolist() == [0.0, 0.0]
    assert all(np.isfinite(data.splits[s].features["audio"]).all() for s in data.splits)


def test_normalisation_uses_train_statistics_only(tmp_path):
    raw = _raw()
    for s in ("valid", "test"):  # shifted and scaled: must NOT be re-centred on their own stats
        raw[s]["text"] = raw[s]["text"] * 3 + 5
    data = load_data(str(_write(tmp_path, raw)))
    train, valid = data.splits["train"], data.splits["valid"]
    t = train.features["text"][:, 0]
    np.testing.assert_allclose(t.mean(0), 0, atol=1e-5)
    np.testing.assert_allclose(t.std(0), 1, atol=1e-4)
    assert (valid.features["text"].mean(axis=(0, 1)) > 2).all()

    # audio: statistics over valid time steps only, padding stays exactly 0
    a, lengths = train.features["audio"], train.lengths["audio"]
    mask = np.arange(3)[None, :] < lengths[:, None]
    np.testing.assert_allclose(a[mask].mean(0), 0, atol=1e-5)
    np.testing.assert_allclose(a[mask].std(0), 1, atol=1e-4)
    assert (a[~mask] == 0).all()


def test_normalize_leaves_input_untouched():
    raw = load_data("synthetic:mosi?n=60", normalize=False)
    before = raw.splits["valid"].features["audio"].copy()
    normalize(raw)
    np.testing.assert_array_equal(raw.splits["valid"].features["audio"], before)


def test_classification_file_with_label_names(tmp_path):
    rng = np.random.default_rng(0)
    raw = {s: {"text": rng.normal(size=(n, 5)).astype(np.float32),
               "classification_labels": rng.integers(0, 3, n)} for s, n in SIZES.items()}
    raw["label_names"] = ["neg", "neu", "pos"]
    data = load_data(str(_write(tmp_path, raw)))
    assert data.task == "classification" and data.label_names == ["neg", "neu", "pos"]
    assert data.num_classes == 3 and data.splits["test"].classification.dtype == np.int64
    assert data.splits["train"].regression is None and data.modalities == ("text",)

    del raw["label_names"]
    data = load_data(str(_write(tmp_path, raw, "nolabels.pkl")))
    assert data.label_names == ["class0", "class1", "class2"]


def test_regression_wins_over_derived_classification_labels(tmp_path):
    raw = _raw()
    for split in raw.values():
        split["classification_labels"] = (split["regression_labels"] > 0).astype(np.int64)
    assert load_data(str(_write(tmp_path, raw))).task == "regression"


def test_sims_like_unimodal_labels_and_scale(tmp_path):
    raw = _raw()
    for split in raw.values():
        y = split["regression_labels"] / 3
        split["regression_labels"] = y
        split["regression_labels_T"], split["regression_labels_A"] = y, -y
    data = load_data(str(_write(tmp_path, raw)))
    assert data.scale == 1.0 and data.has_unimodal_labels
    assert set(data.splits["valid"].unimodal) == {"text", "audio"}
    np.testing.assert_allclose(data.splits["valid"].unimodal["audio"],
                               -data.splits["valid"].regression)


def test_absent_modality_is_absent(tmp_path):
    data = load_data(str(_write(tmp_path, _raw(audio=False))))
    assert data.modalities == ("text",) and "audio" not in data.splits["test"].features


def test_real_mosi(shared_data):
    data = load_data(str(shared_data / "mosi-acl17" / "mosi_acl17_minilm.pkl"))
    assert [len(data.splits[s]) for s in ("train", "valid", "test")] == [1447, 265, 487]
    assert data.dims == {"text": 384, "audio": 73, "vision": 100}
    assert data.task == "regression" and data.scale == 3.0


def test_real_iemocap(shared_data):
    data = load_data(str(shared_data / "iemocap-text" / "iemocap_text_minilm.pkl"))
    assert data.task == "classification" and data.modalities == ("text",)
    assert data.label_names == ["happy", "sad", "neutral", "angry", "excited", "frustrated"]


@pytest.mark.parametrize("kind", ["directory", "fifo"])
def test_data_that_is_not_a_file_says_what_it_is(tmp_path, kind):
    path = tmp_path / "data.pkl"
    if kind == "directory":
        path.mkdir()
    else:
        os.mkfifo(path)  # opening it would block: it must not be opened
    with pytest.raises(UserError, match=rf"(?i)is a {kind[:4]}.*, not a data file") as err:
        load_data(str(path))
    assert "no such" not in str(err.value)


def test_long_ids_are_refused(tmp_path):
    raw = _raw()
    raw["train"]["id"] = ["x" * 5000] * len(raw["train"]["regression_labels"])
    with pytest.raises(UserError, match="train/id holds a string of 5,000 characters"):
        load_data(str(_write(tmp_path, raw)))
