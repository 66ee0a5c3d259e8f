import json

import pytest

from evo_msa.cli import main
from evo_msa.config import RunConfig
from evo_msa.data import make_synthetic
from evo_msa.data.loader import normalize
from evo_msa.train import TrainingDiverged, train_model

FAST = {"model": {"expert_dim": 16, "unified_dim": 16, "level_widths": [16, 16, 8, 8],
                  "tower_dim": 8}, "train": {"epochs": 4, "patience": 2, "batch_size": 128}}


@pytest.fixture(scope="module")
def mosi():
    return normalize(make_synthetic("mosi", seed=0, n=500))


def cfg(**sections):
    raw = json.loads(json.dumps(FAST))
    for name, values in sections.items():
        raw.setdefault(name, {}).update(values)
    return RunConfig.from_dict(raw)


def test_result_record_and_determinism(mosi):
    a = train_model(mosi, cfg(), seed=3, device="cpu")
    b = train_model(mosi, cfg(), seed=3, device="cpu")
    assert a.metrics == b.metrics  # same seed, same numbers
    assert set(a.metrics) == {"valid", "test"}
    assert {"mae", "corr", "acc7", "non0_acc2", "loss"} <= set(a.metrics["test"])
    assert a.params > 0 and a.seconds > 0 and 1 <= a.best_epoch <= a.epochs <= 4
    assert len(a.history) == a.epochs
    c = train_model(mosi, cfg(), seed=4, device="cpu")
    assert c.metrics != a.metrics


def test_learns_better_than_predicting_zero(mosi):
    r = train_model(mosi, cfg(train={"epochs": 20, "patience": 20, "batch_size": 32}), seed=0,
                    device="cpu")
    baseline = float(abs(mosi.splits["test"].regression).mean())  # MAE of always predicting 0
    assert r.metrics["test"]["mae"] < 0.9 * baseline


@pytest.mark.parametrize("weighting", ["fixed", "gdwg", "attention"])
def test_every_weighting_trains(mosi, weighting):
    r = train_model(mosi, cfg(objective={"weighting": weighting}), seed=0, device="cpu",
                    eval_splits=("valid",))
    assert set(r.metrics) == {"valid"}  # a search trial never scores test
    assert sum(r.task_weights.values()) > 0


def test_classification_and_masked_modality():
    data = normalize(make_synthetic("iemocap", seed=0, n=400))
    r = train_model(data, cfg(model={"modalities": ["text"]}), seed=0, device="cpu")
    assert {"acc", "unweighted_acc", "weighted_f1", "f1_happy"} <= set(r.metrics["test"])


def test_divergence_is_reported(mosi):
    with pytest.raises(TrainingDiverged):
        train_model(mosi, cfg(train={"lr": 1e12, "grad_clip": 0.0}), seed=0, device="cpu")


def test_train_command_writes_metrics(tmp_path, capsys):
    arch = tmp_path / "arch.yaml"
    arch.write_text("model: {expert_dim: 16, unified_dim: 16, depth: 1}\ntrain: {epochs: 2}\n")
    code = main(["train", "--data", "synthetic:mosi?n=300", "--arch", str(arch), "--seeds", "0", "1",
                 "--device", "cpu", "--out", str(tmp_path / "out")])
    assert code == 0
    summary = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert summary["seeds"] == [0, 1]
    assert set(summary["test"]["mae"]) == {"mean", "std"}
    assert len((tmp_path / "out" / "metrics.csv").read_text().strip().splitlines()) == 3
    assert "mae" in capsys.readouterr().out


def test_train_command_errors_exit_2(tmp_path, capsys):
    arch = tmp_path / "arch.yaml"
    arch.write_text("model: {depth: 9}\n")
    assert main(["train", "--arch", str(arch), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "model.depth must be an integer in 1..4" in err and str(arch) in err
    assert main(["train", "--data", str(tmp_path / "none.pkl"), "--out", str(tmp_path / "o")]) == 2
    assert not (tmp_path / "o").exists()


def test_train_command_retrains_a_genome(tmp_path):
    from pathlib import Path

    from evo_msa.space import load_space

    space = Path(__file__).resolve().parents[2] / "search_spaces" / "tiny.yaml"
    genome = tmp_path / "best_genome.json"
    genome.write_text(json.dumps({"genome": [0.9] * load_space(space).size}))
    code = main(["train", "--data", "synthetic:mosi?n=300", "--genome", str(genome), "--space",
                 str(space), "--seeds", "0", "--device", "cpu", "--out", str(tmp_path / "out")])
    assert code == 0
    summary = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert summary["run_config"]["model"]["depth"] == 2  # decoded from the genome
    assert summary["run_config"]["model"]["modalities"] == ["text", "audio", "vision"]
    genome.write_text(json.dumps({"genome": [0.5, 0.5]}))
    assert main(["train", "--genome", str(genome), "--space", str(space),
                 "--out", str(tmp_path / "o2")]) == 2
