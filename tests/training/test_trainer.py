import json
import math
import random
from pathlib import Path

import numpy as np
import pytest
import torch

from evo_msa.cli import main
from evo_msa.data import make_synthetic
from evo_msa.data.loader import normalize
from evo_msa.status import Status
from evo_msa.training import TrainingDiverged, train_model, train_population
from evo_msa.training.trainer import PopulationTrainer
from tests.conftest import run_config

FAST = {"model": {"expert_dim": 16, "unified_dim": 16, "level_widths": [16, 16, 8, 8],
                  "tower_dim": 8}, "train": {"epochs": 4, "patience": 2, "batch_size": 128}}


@pytest.fixture(scope="module")
def mosi():
    return normalize(make_synthetic("mosi", seed=0, n=500))


def cfg(**sections):
    return run_config(FAST, **sections)


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
    code = main(["train", "--data", "synthetic:mosi?n=300", "--arch", str(arch), "--seeds", "0",
                 "1", "--device", "cpu", "--out", str(tmp_path / "out")])
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
    assert "model.depth must be an integer in 0..4" in err and str(arch) in err
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


def test_a_diverging_member_fails_alone(mosi):
    configs = [cfg(), cfg(train={"lr": 1e12, "grad_clip": 0.0}), cfg(model={"depth": 2})]
    results = train_population(mosi, configs, [0, 1, 2], device="cpu")
    assert [r.status for r in results] == [Status.OK, Status.NAN, Status.OK]
    assert "non-finite" in results[1].error
    alone = train_model(mosi, configs[0], seed=0, device="cpu")
    assert results[0].metrics["valid"]["loss"] == pytest.approx(alone.metrics["valid"]["loss"],
                                                                 abs=0.02)
    assert all(r.population == 3 for r in results)


def test_members_stop_early_on_their_own(mosi):
    configs = [cfg(train={"epochs": 12, "patience": 1, "lr": 0.05}),
               cfg(train={"epochs": 12, "patience": 12}), cfg(train={"epochs": 3})]
    results = train_population(mosi, configs, [0, 0, 0], device="cpu")
    assert results[1].epochs == 12 and results[2].epochs == 3
    assert results[0].epochs < 12 and results[0].epochs - results[0].best_epoch == 1
    assert len(results[0].history) == results[0].epochs


def test_members_with_other_batch_sizes_train_in_their_own_population(mosi):
    configs = [cfg(train={"batch_size": 32}), cfg(), cfg(train={"batch_size": 32})]
    results = train_population(mosi, configs, [0, 1, 2], device="cpu", eval_splits=("valid",))
    assert [r.population for r in results] == [2, 1, 2]


@pytest.mark.parametrize("options", [{"train": {"ema": 0.9}}, {"model": {"input_dropout": 0.2}},
                                     {"model": {"modality_dropout": 0.3}},
                                     {"loss": {"coarse_smoothing": 0.1}},
                                     {"model": {"depth": 0, "unified": False,
                                                "task_attention": False}}])
def test_regularisers_and_ablations_train(mosi, options):
    options.setdefault("train", {}).update(epochs=12, patience=12, batch_size=32, lr=3e-3)
    r = train_model(mosi, cfg(**options), seed=0, device="cpu")
    baseline = float(abs(mosi.splits["valid"].regression).mean())  # always predicting 0
    assert r.metrics["valid"]["mae"] < 0.97 * baseline  # n=500 synthetic: ~0.92-0.95 is good


def test_batched_fitness_tracks_one_at_a_time_fitness():
    """The fitness signal of the search (issue: batched vs one-at-a-time): at small size, the
    ranking agrees (Spearman >= 0.9) and the differences are below the seed-to-seed spread."""
    from scipy.stats import spearmanr

    from evo_msa.space import load_space

    data = normalize(make_synthetic("mosi", seed=1, n=600))
    space = load_space(Path(__file__).resolve().parents[2] / "search_spaces" / "haemsa.yaml")
    rng = random.Random(0)
    configs = []
    for _ in range(8):
        c = space.to_config(space.sample(rng), available=data.modalities)
        c.train.epochs, c.train.patience = 5, 5
        configs.append(c)
    batched = [r.metrics["valid"]["loss"]
               for r in train_population(data, configs, [0] * 8, device="cpu",
                                         eval_splits=("valid",))]
    alone = [train_population(data, [c], [0], device="cpu", eval_splits=("valid",))[0]
             .metrics["valid"]["loss"] for c in configs]
    other_seed = [r.metrics["valid"]["loss"]
                  for r in train_population(data, configs, [1] * 8, device="cpu",
                                            eval_splits=("valid",))]
    # every member draws its own dropout noise: batched training is the same program per member
    assert np.allclose(batched, alone, atol=1e-4)
    rho = spearmanr(batched, alone)[0]
    gap = np.mean(np.abs(np.array(batched) - np.array(alone)))
    seed_spread = np.mean(np.abs(np.array(batched) - np.array(other_seed)))
    assert rho >= 0.9, (rho, batched, alone)
    assert gap < seed_spread, (gap, seed_spread)


def test_a_member_trains_the_same_alone_and_batched_on_sequences():
    """Sequences (T > 1, lengths 1..T): each batch is cut to its longest sequence over every
    member's rows and the encoders pack the valid steps, so a member's batches are cut and
    packed differently alone and in a population; its training must not change (input
    dropout included: its noise follows the step, not the cut)."""
    data = normalize(make_synthetic("mosi", seed=2, n=240, seq_len=9))
    configs = [cfg(model={"encoder": e, "input_dropout": 0.2, "dropout": 0.1},
                   train={"epochs": 3, "patience": 3, "batch_size": 32})
               for e in ("gru", "conv", "attention", "mean")]
    configs[3].model.text_encoder = "gru"  # a modality of its own kind
    batched = train_population(data, configs, [0, 1, 2, 3], device="cpu",
                               eval_splits=("valid",))
    assert [r.population for r in batched] == [4] * 4
    for c, seed, r in zip(configs, [0, 1, 2, 3], batched):
        alone = train_population(data, [c], [seed], device="cpu", eval_splits=("valid",))[0]
        assert r.metrics["valid"]["loss"] == pytest.approx(alone.metrics["valid"]["loss"],
                                                           abs=1e-5), c.model.encoder
        assert r.history[0]["train_total"] == pytest.approx(alone.history[0]["train_total"],
                                                            abs=1e-5)


@pytest.mark.parametrize("encoder", ["mean", "attention", "gru", "conv"])
def test_the_mixed_precision_path_trains_every_encoder(encoder):
    """The CUDA path (bf16 autocast of the training steps) run on the CPU: every sequence
    encoder trains under it (the GRU's recurrence and hand-written backward in float32), and
    evaluation is float32."""
    data = normalize(make_synthetic("mosi", seed=0, n=160, seq_len=6))
    configs = [cfg(model={"encoder": encoder}), cfg(model={"encoder": encoder, "expert_dim": 8})]
    trainer = PopulationTrainer(data, configs, [0, 1], device="cpu", mixed_precision=True)
    results = trainer.fit(eval_splits=("valid",))
    assert [r.status for r in results] == [Status.OK, Status.OK]
    assert all(math.isfinite(r.metrics["valid"]["loss"]) for r in results)
    assert trainer.predict("valid").dtype == torch.float32


@pytest.mark.parametrize("weighting", ["fixed", "gdwg"])
def test_configs_of_one_architecture_key_train_identically(mosi, weighting):
    """The search trains one architecture key once (the policy's cache): the settings the key
    leaves out must not change a single number of the training."""
    from evo_msa.space import SearchSpace

    def variant(contrast, tau, modality_dropout, dropout, beta, smoothing):
        return cfg(model={"modalities": ["text"], "modality_dropout": modality_dropout,
                          "dropout": dropout},
                   objective={"weighting": weighting, "lambda_contrast": contrast,
                              "contrast_tau": tau, "regression_loss": "l1",
                              "smooth_beta": beta, "lambda_coarse": 0.0,
                              "coarse_smoothing": smoothing})

    a = variant(0.1, 0.3, 0.2, 0.5736, 0.5, 0.1)
    b = variant(0.4, 0.9, 0.4, 0.5745, 2.0, 0.2)
    assert SearchSpace.architecture_key(a) == SearchSpace.architecture_key(b)
    ra = train_model(mosi, a, seed=3, device="cpu")
    rb = train_model(mosi, b, seed=3, device="cpu")
    assert ra.metrics == rb.metrics and ra.epochs == rb.epochs
    rc = train_model(mosi, variant(0.1, 0.3, 0.2, 0.45, 0.5, 0.1), seed=3, device="cpu")
    assert rc.metrics != ra.metrics  # a dropout rate the key keeps does change the training


def test_an_epoch_skips_only_a_trailing_batch_of_one_sample():
    from evo_msa.training.trainer import batch_starts

    assert list(batch_starts(65, 32)) == [0, 32]  # 32 + 32 + a lone sample, skipped
    assert list(batch_starts(66, 32)) == [0, 32, 64]  # a last batch of two is kept
    assert list(batch_starts(64, 32)) == [0, 32]
    assert list(batch_starts(1, 32)) == [0]  # one sample in all: it is the epoch
    assert list(batch_starts(3, 1)) == [0, 1, 2]  # batches of one by choice are all kept
