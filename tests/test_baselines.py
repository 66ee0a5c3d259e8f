import dataclasses
import json

import numpy as np
import pytest

from evo_msa.baselines import RIDGE_ALPHAS, _RidgePath, pooled_inputs, run_baseline
from evo_msa.data import load_data
from evo_msa.data.dataset import Split
from evo_msa.errors import UserError
from evo_msa.record.rundir import RunDir
from evo_msa.training.multiseed import format_summary

SEEDS = [0, 1]


@pytest.fixture(scope="module")
def mosi():
    return load_data("synthetic:mosi?n=300")


@pytest.fixture(scope="module")
def iemocap():
    return load_data("synthetic:iemocap?n=300")


def _mean_mae(data):
    """Test MAE of always predicting the train mean."""
    mean = float(data.splits["train"].regression.mean())
    return float(np.abs(data.splits["test"].regression - mean).mean())


def _majority_share(data):
    """Test accuracy of always predicting the most common train class."""
    top = np.bincount(data.splits["train"].classification).argmax()
    return float((data.splits["test"].classification == top).mean())


def _check_structure(summary, table, seeds):
    assert summary["seeds"] == seeds
    for split in ("valid", "test"):
        assert "loss" in summary[split]
        for v in summary[split].values():
            assert set(v) == {"mean", "std"}
    assert len(summary["epochs"]) == len(summary["best_epochs"]) == len(summary["seconds"]) \
        == len(seeds)
    assert summary["params"] > 0
    assert list(table["seed"]) == seeds
    assert {"params", "epochs", "best_epoch", "seconds", "valid_loss", "test_loss"} \
        <= set(table.columns)
    json.dumps(summary, allow_nan=True)  # what the run directory writes
    shown = format_summary(summary)
    if summary["baseline"]["deterministic"]:  # one fit: no "+- 0.0000 over seeds"
        assert "deterministic" in shown and "+-" not in shown
    else:
        assert "test metrics over seeds" in shown and "+-" in shown


@pytest.mark.parametrize("model", ["ridge", "mlp"])
def test_regression_beats_train_mean(mosi, model):
    summary, table = run_baseline(mosi, model, None, SEEDS)
    _check_structure(summary, table, SEEDS)
    test = summary["test"]
    assert test["mae"]["mean"] < 0.95 * _mean_mae(mosi)  # ~0.89 (ridge), ~0.91 (mlp)
    assert test["corr"]["mean"] > 0.3
    assert test["loss"]["mean"] == pytest.approx(test["mae"]["mean"])  # L1 loss = MAE
    assert summary["baseline"]["model"] == model


@pytest.mark.parametrize("model", ["softmax", "mlp"])
def test_classification_beats_majority(iemocap, model):
    summary, table = run_baseline(iemocap, model, None, SEEDS)
    _check_structure(summary, table, SEEDS)
    assert summary["test"]["acc"]["mean"] > _majority_share(iemocap) + 0.1
    assert {"weighted_f1", "unweighted_acc", "f1_happy"} <= set(summary["test"])
    assert np.isfinite(summary["test"]["loss"]["mean"])  # cross-entropy


def test_ridge_is_deterministic(mosi, tmp_path):
    summary, table = run_baseline(mosi, "ridge", ["text"], [0, 1, 2])
    again, _ = run_baseline(mosi, "ridge", ["text"], [7])
    assert summary["seeds"] == [0, 1, 2]
    assert all(v["std"] == 0 for v in summary["test"].values())
    assert table["test_mae"].nunique() == 1
    assert again["test"]["mae"]["mean"] == summary["test"]["mae"]["mean"]
    assert summary["baseline"]["deterministic"] is True
    assert summary["baseline"]["selected"]["alpha"] in RIDGE_ALPHAS
    assert table["alpha"].iloc[0] == summary["baseline"]["selected"]["alpha"]
    assert summary["epochs"] == [0, 0, 0]
    run = RunDir(tmp_path)
    run.write_json("metrics.json", summary)
    run.write_csv("metrics.csv", table)
    assert json.loads((tmp_path / "metrics.json").read_text())["seeds"] == [0, 1, 2]
    from evo_msa.training.multiseed import format_summary

    printed = format_summary(summary)  # no "+- 0.0000 over seeds": one fit has no spread
    assert "deterministic" in printed and "+-" not in printed
    assert f"{summary['test']['mae']['mean']:.4f}" in printed


def test_mlp_seeded(mosi):
    a, _ = run_baseline(mosi, "mlp", ["text"], [3])
    b, _ = run_baseline(mosi, "mlp", ["text"], [3])
    c, _ = run_baseline(mosi, "mlp", ["text"], [4])
    assert a["test"] == b["test"]
    assert a["test"] != c["test"]
    assert 1 <= a["best_epochs"][0] <= a["epochs"][0] <= 200


def test_modality_selection_changes_input(mosi):
    text, _ = run_baseline(mosi, "ridge", ["text"], [0])
    every, _ = run_baseline(mosi, "ridge", None, [0])
    short, _ = run_baseline(mosi, "ridge", ["v", "t"], [0])  # short names, any order
    dims = mosi.dims
    assert text["baseline"]["input_dim"] == dims["text"]
    assert text["params"] == dims["text"] + 1
    assert every["baseline"]["modalities"] == ["text", "audio", "vision"]
    assert every["baseline"]["input_dim"] == sum(dims.values())
    assert short["baseline"]["modalities"] == ["text", "vision"]
    assert text["test"]["mae"]["mean"] != every["test"]["mae"]["mean"]


def test_pooling_uses_valid_steps():
    x = np.zeros((2, 3, 2), dtype=np.float32)
    x[0, :2] = [[1, 2], [3, 4]]
    x[1, :] = [[1, 1], [2, 2], [6, 6]]
    split = Split(features={"text": x, "audio": x[:, :1] + 1},
                  lengths={"text": np.array([2, 3]), "audio": np.array([1, 0])})
    np.testing.assert_allclose(pooled_inputs(split, ["text", "audio"]),
                               [[2, 3, 2, 3], [3, 3, 0, 0]])


def test_sequences_are_pooled():
    data = load_data("synthetic:mosi?n=300&seq=4")
    summary, _ = run_baseline(data, "ridge", ["text"], [0])
    assert summary["baseline"]["input_dim"] == data.dims["text"]
    assert summary["test"]["mae"]["mean"] < _mean_mae(data)


def test_invalid_combinations(mosi, iemocap):
    with pytest.raises(UserError, match="softmax"):
        run_baseline(iemocap, "ridge", None, [0])
    with pytest.raises(UserError, match="ridge or mlp"):
        run_baseline(mosi, "softmax", None, [0])
    with pytest.raises(UserError, match="unknown model"):
        run_baseline(mosi, "svm", None, [0])
    with pytest.raises(UserError, match="seed"):
        run_baseline(mosi, "ridge", None, [])


def test_bad_modalities(mosi):
    with pytest.raises(UserError, match="unknown modality 'smell'"):
        run_baseline(mosi, "ridge", ["text", "smell"], [0])
    with pytest.raises(UserError, match="no modality"):
        run_baseline(mosi, "ridge", [], [0])
    text_only = dataclasses.replace(mosi, splits={
        s: dataclasses.replace(sp, features={"text": sp.features["text"]},
                               lengths={"text": sp.lengths["text"]})
        for s, sp in mosi.splits.items()})
    with pytest.raises(UserError, match="'audio' is not in"):
        run_baseline(text_only, "ridge", ["audio"], [0])
    assert run_baseline(text_only, "ridge", None, [0])[0]["baseline"]["modalities"] == ["text"]


def test_real_mosi_minilm_text_ridge(shared_data):
    """README reference (test set): MiniLM text only, ridge: MAE 0.868, Corr 0.681."""
    path = shared_data / "mosi-acl17" / "mosi_acl17_minilm.pkl"
    if not path.is_file():
        pytest.skip(f"{path} not found")
    summary, _ = run_baseline(load_data(str(path)), "ridge", ["text"], [0])
    assert abs(summary["test"]["mae"]["mean"] - 0.868) < 0.01
    assert abs(summary["test"]["corr"]["mean"] - 0.681) < 0.01


@pytest.mark.parametrize("shape", [(40, 7), (12, 30)])  # more samples than features, and fewer
def test_ridge_path_equals_sklearn_ridge(shape):
    """The SVD path solves sklearn Ridge's problem (intercept included) at every alpha."""
    from sklearn.linear_model import Ridge

    rng = np.random.default_rng(shape[0])
    x = rng.normal(size=shape) * rng.uniform(0.1, 10, shape[1]) + rng.normal(size=shape[1])
    y = x[:, 0] - 2 * x[:, 1] + rng.normal(size=shape[0]) + 3.0
    path = _RidgePath(x, y)
    test = rng.normal(size=(5, shape[1]))
    for alpha in RIDGE_ALPHAS:
        ref = Ridge(alpha=alpha).fit(x, y)
        np.testing.assert_allclose(path.predict(path.coef(alpha), test), ref.predict(test),
                                   rtol=1e-6, atol=1e-8)


def test_finetune_baseline_trains_the_encoder_and_a_linear_head(tiny_encoder):
    from evo_msa.baselines import run_baseline
    from evo_msa.data import make_synthetic

    data = make_synthetic("mosi", seed=0, n=90)
    summary, table = run_baseline(data, "finetune", None, [0, 1], text_model=tiny_encoder)
    again, _ = run_baseline(data, "finetune", None, [1], text_model=tiny_encoder)
    assert summary["baseline"]["encoder"] == tiny_encoder
    assert summary["baseline"]["modalities"] == ["text"]
    assert list(table["seed"]) == [0, 1]
    maes = list(table["test_mae"])
    assert all(np.isfinite(maes)) and maes[0] != maes[1]  # seeds differ
    assert again["test"]["mae"]["mean"] == pytest.approx(maes[1])  # a seed repeats exactly


def test_finetune_baseline_refuses_data_without_text(tiny_encoder):
    from evo_msa.baselines import run_baseline
    from evo_msa.data import make_synthetic

    data = make_synthetic("mosi", seed=0, n=60)
    data.splits["valid"].raw_text = None
    with pytest.raises(UserError, match="valid: has no raw_text"):
        run_baseline(data, "finetune", None, [0], text_model=tiny_encoder)
