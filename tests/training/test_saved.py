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
from tests import hostile_files as H
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


# ---- hostile model folders: one line naming the file, before anything big is built ----------

class _Pwn:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        import os

        return os.system, (f"touch {self.marker}",)


def _edit_json(key_path, value):
    return H.edit_model_json({key_path: H.DROP if value is _DROP else value})


_DROP = H.DROP


def _weights(obj):
    def edit(folder):
        torch.save(obj() if callable(obj) else obj, folder / "model.pt")
    return edit


def _write(name, data):
    def edit(folder):
        target = folder / name
        target.unlink()
        if data == "dir":
            target.mkdir()
        else:
            target.write_bytes(data)
    return edit


def _bloated_zip(folder):
    import zipfile

    with zipfile.ZipFile(folder / "model.pt", "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("archive/data.pkl", b"\0" * 50_000_000)  # 50 MB in ~50 KB


HOSTILE_MODELS = {
    "garbage weights": (_write("model.pt", b"\x00garbage" * 100), "model.pt: not a PyTorch"),
    "bare tensor": (_weights(lambda: torch.zeros(3)), "model.pt: must hold a dict of float"),
    "int tensors": (_weights(lambda: {"x": torch.zeros(3, dtype=torch.long)}), "dict of float"),
    "missing weight": (_weights(lambda: {"x": torch.zeros(3)}), "model.pt: holds 3 weights"),
    "bloated zip": (_bloated_zip, "more than the file"),
    "weights dir": (_write("model.pt", "dir"), "model.pt: is a directory"),
    "json garbage": (_write("model.json", b"{not json"), "model.json: not valid JSON"),
    "json nested": (_write("model.json", b"[" * 100_000), "model.json"),
    "json not a dict": (_write("model.json", b"[1, 2]"), "model.json: not an"),
    "no signature": (_edit_json("signature", _DROP), "model.json: has no 'signature'"),
    "no run_config": (_edit_json("run_config", _DROP), "model.json: has no 'run_config'"),
    "signature a list": (_edit_json("signature", [1]), "signature must be a mapping"),
    "huge dim": (_edit_json("signature.dims.text", 10 ** 10), "signature.dims must be"),
    "string dim": (_edit_json("signature.dims.text", "64"), "signature.dims must be"),
    "bad task": (_edit_json("signature.task", "poetry"), "signature.task must be"),
    "bad modality": (_edit_json("signature.modalities", ["smell"]), "signature.modalities"),
    "text norm": (_edit_json("normalization.text.mean", lambda v: ["a"] * len(v)),
                  "normalization.text.mean must be a list of"),
    "short norm": (_edit_json("normalization.text.std", [1.0]), "normalization.text.std must"),
    "zero std": (_edit_json("normalization.audio.std", lambda v: [0.0] * len(v)), "> 0"),
    "norm missing": (_edit_json("normalization", {}), "normalization.text must be a mapping"),
    "bad seed": (_edit_json("seed", "three"), "seed must be an integer"),
    "wider tower": (_edit_json("run_config.model.tower_dim", 9), "has shape"),
    "bad config": (_edit_json("run_config.model.depth", 99), "model.depth must be"),
}


@pytest.mark.parametrize("name", HOSTILE_MODELS)
def test_hostile_model_folders_are_one_line(trained, tmp_path, name):
    import shutil

    edit, words = HOSTILE_MODELS[name]
    folder = tmp_path / "seed_3"
    shutil.copytree(trained[1] / "seed_3", folder)
    edit(folder)
    with pytest.raises(UserError) as err:
        api.load_model(folder)
    msg = str(err.value)
    assert words in msg and "\n" not in msg and str(folder) in msg, msg
    assert "weights_only" not in msg


def test_weights_with_code_are_refused_without_running_it(trained, tmp_path, capsys):
    import shutil

    folder = tmp_path / "seed_3"
    shutil.copytree(trained[1] / "seed_3", folder)
    marker = tmp_path / "pwned"
    torch.save({"x": _Pwn(marker)}, folder / "model.pt")
    code = main(["predict", "--model", str(folder), "--data", str(trained[0])])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1, err
    assert "model.pt: refused: it holds Python objects (posix.system" in err
    assert "weights_only" not in err and not marker.exists()


# A model.json that lies about sizes: each would declare (not yet allocate) GBs of parameters.
_LIES = {"text": ("signature.dims.text", 900_000), "widths": ("run_config.model.expert_dim", 8192)}
_PROBE = H.PEAK_MB + """
import json, sys, time
from evo_msa.errors import UserError
from evo_msa.training.saved import load_model
start, msg = time.perf_counter(), None
try:
    load_model(sys.argv[1])
except UserError as exc:
    msg = str(exc)
print(json.dumps({"msg": msg, "s": time.perf_counter() - start, "rss_mb": peak_mb()}))
"""


@pytest.mark.parametrize("lie", _LIES)
def test_a_model_json_claiming_huge_sizes_is_refused_before_building(trained, tmp_path, lie):
    import shutil
    import subprocess
    import sys

    folder = tmp_path / "seed_3"
    shutil.copytree(trained[1] / "seed_3", folder)
    key, value = _LIES[lie]
    _edit_json(key, value)(folder)
    if lie == "text":  # consistent statistics, so only the weights can tell
        _edit_json("normalization.text", {"mean": [0.0] * value, "std": [1.0] * value})(folder)
    proc = subprocess.run([sys.executable, "-c", _PROBE, str(folder)], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    res = json.loads(proc.stdout)
    assert res["msg"] and "model.pt: holds" in res["msg"] and "needs at least" in res["msg"]
    assert res["s"] < 10 and res["rss_mb"] < 1500, res


def test_predict_ignores_modalities_the_model_does_not_read(tmp_path):
    full = write_mmsa_pickle(make_synthetic("mosi", seed=0, n=120), tmp_path / "m.pkl")
    raw = pd.read_pickle(full)
    for part in raw.values():  # trained without vision; the new data has it
        part.pop("vision"), part.pop("vision_lengths", None)
    pd.to_pickle(raw, tmp_path / "ta.pkl")
    api.train(str(tmp_path / "ta.pkl"), config=ARCH, seeds=[0], device="cpu",
              out=tmp_path / "run", log=lambda _: None)
    table, _ = api.predict(tmp_path / "run", str(full), log=lambda _: None)
    assert table["prediction"].notna().all()


@pytest.mark.parametrize("kind", ["missing", "file", "fifo"])
def test_model_argument_that_is_not_a_folder_says_what_it_is(tmp_path, kind):
    import os

    path = tmp_path / "model"
    if kind == "file":
        path.write_text("x")
    elif kind == "fifo":
        os.mkfifo(path)
    words = {"missing": "no such model folder", "file": "is a file",
             "fifo": "is a FIFO"}[kind]
    with pytest.raises(UserError, match=words):
        api.load_model(path)


def test_the_size_lower_bound_never_refuses_a_genuine_model():
    """_check_shapes refuses weights fewer than a lower bound of what model.json describes:
    it must hold for every kind of config (else genuine models would be refused)."""
    import random
    from pathlib import Path

    from evo_msa.config import RunConfig
    from evo_msa.data import DataInfo
    from evo_msa.models import HAEMSA
    from evo_msa.training.saved import _check_shapes

    rng = random.Random(0)
    for _ in range(40):
        cfg = RunConfig.from_dict({"model": {
            "depth": rng.randint(0, 4), "expert_dim": rng.choice([1, 4, 40]),
            "unified_dim": rng.choice([1, 8, 32]), "tower_dim": rng.choice([1, 8]),
            "level_widths": [rng.choice([1, 8, 64]) for _ in range(4)],
            "encoder": rng.choice(["mean", "gru", "conv"]), "unified": rng.random() < 0.5,
            "task_attention": rng.random() < 0.5,
            "modalities": rng.sample(["text", "audio", "vision"], rng.randint(1, 3))}})
        classes = rng.choice([0, 4])
        info = DataInfo(dims={m: rng.randint(1, 50) for m in ("text", "audio", "vision")},
                        seq_lens={"text": rng.choice([1, 5]), "audio": 3, "vision": 1},
                        task="classification" if classes else "regression",
                        num_classes=classes, modalities=("text", "audio", "vision"))
        state = {e.name: torch.zeros(e.shape) for e in HAEMSA([cfg], info).store.entries}
        _check_shapes(Path("seed_0/model.pt"), state, cfg, info)


def test_export_of_a_sequence_model_matches_pytorch(tmp_path):
    """Sequences export too (the model packs every row at every step there: no shape may
    depend on the lengths), one encoder kind per modality, at another batch size."""
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    data = write_mmsa_pickle(make_synthetic("mosi", seed=0, n=120, seq_len=5), tmp_path / "s.pkl")
    arch = {**ARCH, "model": {**ARCH["model"], "text_encoder": "gru", "audio_encoder": "conv",
                              "vision_encoder": "attention"}, "train": {"epochs": 1}}
    api.train(str(data), config=arch, seeds=[0], device="cpu", out=tmp_path / "run",
              log=lambda _: None)
    side = api.export(tmp_path / "run" / "seed_0", tmp_path / "model.onnx", log=lambda _: None)
    assert side["max_abs_difference_vs_pytorch"] < 1e-4


def test_a_fine_tuned_model_predicts_from_raw_text_what_training_recorded(tmp_path, tiny_encoder):
    data = write_mmsa_pickle(make_synthetic("mosi", seed=0, n=90), tmp_path / "mosi.pkl")
    arch = {**ARCH, "train": {"epochs": 2, "batch_size": 16},
            "pretrained": {"model": tiny_encoder, "finetune_layers": 1, "max_tokens": 16}}
    out = tmp_path / "run"
    api.train(str(data), config=arch, seeds=[0], device="cpu", out=out, log=lambda _: None)
    meta = json.loads((out / "seed_0" / "model.json").read_text())
    assert meta["signature"]["dims"]["text"] == 16  # the encoder's states, not the features
    assert meta["signature"]["seq_lens"]["text"] == 16
    state = torch.load(out / "seed_0" / "model.pt", weights_only=True)
    assert any(k.startswith("text_model.layer1.") for k in state)
    assert not any(k.startswith("text_model.layer0.") for k in state)  # frozen: not saved
    _, metrics = api.predict(out / "seed_0", str(data), split="test", log=lambda _: None)
    assert metrics["mae"] == pytest.approx(meta["metrics"]["test"]["mae"], abs=1e-5)
