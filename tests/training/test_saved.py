"""Saved models: what train writes per seed, reading it back, predicting, exporting."""
import json

import numpy as np
import pandas as pd
import pytest
import torch

from evo_msa import api
from evo_msa.cli import main
from evo_msa.data import make_synthetic
from evo_msa.errors import UserError
from tests.conftest import write_mmsa_pickle

ARCH = {"model": {"depth": 1, "expert_dim": 16, "unified_dim": 16, "level_widths": [16],
                  "tower_dim": 8},
        "train": {"epochs": 3, "batch_size": 32}}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("saved")
    data = write_mmsa_pickle(make_synthetic("mosi", seed=0, n=240), root / "mosi.pkl")
    out = root / "run"
    summary = api.train(str(data), config=ARCH, seeds=[3, 5], device="cpu", out=out,
                        log=lambda _: None)
    return data, out, summary


def test_every_seed_leaves_a_model_folder(trained):
    _, out, summary = trained
    for seed in (3, 5):
        folder = out / f"seed_{seed}"
        state = torch.load(folder / "model.pt", weights_only=True)
        assert state and all(isinstance(v, torch.Tensor) for v in state.values())
        meta = json.loads((folder / "model.json").read_text())
        assert meta["seed"] == seed and meta["signature"]["dims"]["text"] > 0
        assert set(meta["normalization"]) == {"text", "audio", "vision"}
        assert meta["provenance"]["data_sha256"] == summary["provenance"]["data_sha256"]
        history = pd.read_csv(folder / "history.csv")
        assert len(history) == meta["epochs"] and "valid_loss" in history
        assert (folder / "curves.png").stat().st_size > 1000
    assert len(summary["provenance"]["data_sha256"]) == 64
    from importlib.metadata import version

    assert summary["provenance"]["versions"]["torch"] == version("torch")


def test_predict_reproduces_the_recorded_metrics(trained, tmp_path):
    data, out, summary = trained
    for seed in (3, 5):  # one seed: exactly what training recorded on test and valid
        for split in ("test", "valid"):
            _, metrics = api.predict(out / f"seed_{seed}", str(data), split=split,
                                     log=lambda _: None)
            recorded = json.loads((out / f"seed_{seed}" / "model.json").read_text())
            for k in ("mae", "corr", "has0_acc2", "acc7"):
                assert metrics[k] == pytest.approx(recorded["metrics"][split][k], abs=1e-5)
    csv = tmp_path / "preds.csv"
    assert main(["predict", "--model", str(out), "--data", str(data), "--out", str(csv)]) == 0
    table = pd.read_csv(csv)
    assert list(table.columns[:3]) == ["id", "prediction", "label"]
    assert list(table["id"]) == list(pd.read_pickle(data)["test"]["id"])
    singles = [api.predict(out / f"seed_{s}", str(data), log=lambda _: None)[0]["prediction"]
               for s in (3, 5)]
    np.testing.assert_allclose(table["prediction"], np.mean(singles, 0), atol=1e-5)
    ensemble = json.loads(csv.with_suffix(".metrics.json").read_text())
    assert ensemble["seeds"] == [3, 5] and 0 < ensemble["metrics"]["mae"] < 3


def test_predict_without_labels_and_on_mismatched_data(trained, tmp_path, capsys):
    data, out, _ = trained
    raw = pd.read_pickle(data)
    for part in raw.values():
        part.pop("regression_labels")
    unlabeled = tmp_path / "unlabeled.pkl"
    pd.to_pickle(raw, unlabeled)
    table, metrics = api.predict(out, str(unlabeled), log=lambda _: None)
    assert metrics is None and "label" not in table and table["prediction"].notna().all()

    narrow = write_mmsa_pickle(make_synthetic("mosi", seed=0, n=240), tmp_path / "x.pkl")
    raw = pd.read_pickle(narrow)
    raw["test"]["audio"] = raw["test"]["audio"][:, :, :3]
    pd.to_pickle(raw, narrow)
    assert main(["predict", "--model", str(out), "--data", str(narrow)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "audio features are 3-d" in err
    emotions = write_mmsa_pickle(make_synthetic("iemocap", seed=0, n=120), tmp_path / "e.pkl")
    with pytest.raises(UserError, match="features|labels"):
        api.predict(out, str(emotions), log=lambda _: None)
    with pytest.raises(UserError, match="no saved model"):
        api.load_model(tmp_path)


def test_classification_model_predicts_class_names(tmp_path):
    data = write_mmsa_pickle(make_synthetic("iemocap", seed=0, n=240), tmp_path / "e.pkl")
    api.train(str(data), config=ARCH, seeds=[0], device="cpu", out=tmp_path / "run",
              log=lambda _: None)
    table, metrics = api.predict(tmp_path / "run", str(data), log=lambda _: None)
    recorded = json.loads((tmp_path / "run" / "seed_0" / "model.json").read_text())
    assert metrics["weighted_f1"] == pytest.approx(recorded["metrics"]["test"]["weighted_f1"])
    names = recorded["signature"]["label_names"]
    assert set(table["prediction"]) <= set(names)
    np.testing.assert_allclose(table[[f"p_{n}" for n in names]].sum(1), 1.0, atol=1e-5)


def test_export_onnx_matches_pytorch(trained, tmp_path):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    data, out, _ = trained
    path = tmp_path / "model.onnx"
    assert main(["export", "--model", str(out / "seed_3"), "--out", str(path)]) == 0
    side = json.loads((tmp_path / "model.onnx.json").read_text())
    assert side["max_abs_difference_vs_pytorch"] < 1e-4
    # the exported graph on the real test split gives the saved model's predictions
    import onnxruntime as ort

    from evo_msa.data.loader import load_split

    part, _, _ = load_split(str(data), "test")
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    feed = {m: part.features[m] for m in ("text", "audio", "vision")}
    feed |= {f"{m}_lengths": part.lengths[m].astype(np.int64) for m in ("text", "audio", "vision")}
    onnx_pred = session.run(None, feed)[0]
    torch_pred, _ = api.predict(out / "seed_3", str(data), log=lambda _: None)
    np.testing.assert_allclose(onnx_pred, torch_pred["prediction"], atol=1e-4)
