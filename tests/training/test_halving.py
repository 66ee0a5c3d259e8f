"""Successive halving inside a population, and members leaving a population (compaction):
what stops frees its compute without changing anybody else's training."""
import math

import pytest

from evo_msa.config import RunConfig
from evo_msa.data import make_synthetic
from evo_msa.data.loader import normalize
from evo_msa.metrics import Objective
from evo_msa.status import Status
from evo_msa.training import PopulationTrainer, train_population
from evo_msa.training.halving import Halving
from tests.conftest import run_config

SMALL = {"model": {"expert_dim": 16, "unified_dim": 16, "level_widths": [16, 16, 8, 8],
                   "tower_dim": 8}, "train": {"epochs": 4, "patience": 4, "batch_size": 64}}


@pytest.fixture(scope="module")
def mosi():
    return normalize(make_synthetic("mosi", seed=0, n=300))


def cfg(**sections):
    return run_config(SMALL, **sections)


def valid_loss(results):
    return [r.metrics["valid"]["loss"] for r in results]


def test_genomes_are_ranked_by_the_mean_over_their_seeds():
    h = Halving(rungs=(2, 5), keep=0.5, groups=(0, 0, 1, 1, 2, 2, 3, 3))
    running = [True] * 8
    # genome 1 has the best seed (0.1) but the worse mean; genome 3 failed (inf)
    values = [0.5, 0.5, 0.1, 1.5, 0.6, 0.7, math.inf, 0.2]
    assert h.stopped(1, running, values) == set()  # not a rung
    assert h.stopped(2, running, values) == {2, 3, 6, 7}  # keep ceil(0.5 x 4) = 2 genomes
    # a genome that stopped on its own (patience) is no longer ranked; its seeds are
    assert h.stopped(5, [False, False, True, True, True, False, False, False],
                     values) == {2, 3}
    assert Halving((3,), 1 / 3, (0, 1)).stopped(3, [True, True], [0.2, 0.1]) == {0}
    assert Halving((3,), 0.9, (0, 1)).stopped(3, [True, True], [0.2, 0.1]) == set()


def test_members_that_leave_change_nobody_elses_training(mosi):
    """Members stop at different epochs (budget, patience), so the population is rebuilt
    without them several times; each member trains exactly as it would alone."""
    configs = [cfg(train={"epochs": 2}), cfg(model={"expert_dim": 40, "depth": 2},
                                             train={"ema": 0.9}),
               cfg(objective={"weighting": "gdwg"}, train={"epochs": 3}),
               cfg(model={"modalities": ["text"]}, objective={"weighting": "attention"})]
    seeds = [0, 1, 2, 3]
    batched = train_population(mosi, configs, seeds, device="cpu", eval_splits=("valid",))
    alone = [train_population(mosi, [c], [s], device="cpu", eval_splits=("valid",))[0]
             for c, s in zip(configs, seeds)]
    assert [r.epochs for r in batched] == [2, 4, 3, 4] == [r.epochs for r in alone]
    assert valid_loss(batched) == pytest.approx(valid_loss(alone), abs=1e-5)
    assert [r.params for r in batched] == [r.params for r in alone]
    assert [r.population for r in batched] == [4] * 4


def test_successive_halving_stops_the_worse_genomes_at_each_rung(mosi):
    genomes = [cfg(), cfg(model={"depth": 2}), cfg(train={"lr": 3e-3}), cfg(model={"dropout": 0.0})]
    configs = [c for c in genomes for _ in range(2)]
    seeds = [0, 1] * 4
    halving = Halving(rungs=(1, 2), keep=0.5, groups=(0, 0, 1, 1, 2, 2, 3, 3),
                      rank=Objective("loss"))
    results = train_population(mosi, configs, seeds, device="cpu", eval_splits=("valid",),
                               halving=halving)
    # what each genome scores after one epoch, trained alone
    first = [RunConfig.from_dict(c.to_dict()) for c in configs]
    for c in first:
        c.train.epochs = 1
    one_epoch = valid_loss(train_population(mosi, first, seeds, device="cpu",
                                            eval_splits=("valid",)))
    means = [(one_epoch[2 * g] + one_epoch[2 * g + 1]) / 2 for g in range(4)]
    order = sorted(range(4), key=lambda g: means[g])
    rungs = [results[2 * g].rung for g in range(4)]
    assert [rungs[g] for g in order] == [0, 2, 1, 1]  # 2 of 4 go on, then 1 of 2
    for g in range(4):
        a, b = results[2 * g], results[2 * g + 1]
        assert a.rung == b.rung and a.status == b.status  # the seeds of a genome stop together
        assert a.status is (Status.EARLY_STOPPED if a.rung else Status.OK)
        assert a.epochs == {0: 4, 1: 1, 2: 2}[a.rung]
    for g in order[2:]:  # stopped at the first rung: their value after one epoch, exactly
        assert valid_loss(results[2 * g:2 * g + 2]) == pytest.approx(
            one_epoch[2 * g:2 * g + 2], abs=1e-5)


def test_fit_ends_with_every_member_in_its_best_state(mosi):
    configs = [cfg(train={"epochs": 1}), cfg(train={"epochs": 3}), cfg(model={"depth": 2})]
    trainer = PopulationTrainer(mosi, configs, [0, 1, 2], device="cpu")
    results = trainer.fit()
    assert trainer.P == 3  # the members that left are back, for saving
    assert [r.epochs for r in results] == [1, 3, 4]
    for split in ("valid", "test"):
        again = [m["loss"] for m in trainer.evaluate(split)]
        assert again == pytest.approx([r.metrics[split]["loss"] for r in results], abs=1e-6)


def test_members_are_reported_in_the_epoch_they_end_with_their_final_results(mosi):
    """A search trial reports a training as soon as it ends (at a rung, by patience or at its
    budget), so its genome settles then: what is reported is what is returned at the end."""
    genomes = [cfg(train={"epochs": 2}), cfg(model={"depth": 2}), cfg(train={"lr": 3e-3}),
               cfg(model={"dropout": 0.0}), cfg(train={"lr": 1e12, "grad_clip": 0.0})]
    configs = [c for c in genomes for _ in range(2)]
    halving = Halving(rungs=(1, 3), keep=0.5, groups=tuple(g for g in range(5) for _ in range(2)),
                      rank=Objective("loss"))
    ended, epochs = {}, []

    def on_end(results):
        assert not set(results) & set(ended)  # once each
        ended.update({i: (len(epochs) + 1, r) for i, r in results.items()})

    results = train_population(mosi, configs, [0, 1] * 5, device="cpu", eval_splits=("valid",),
                               halving=halving, on_epoch=lambda e, v: epochs.append(e),
                               on_end=on_end)
    assert sorted(ended) == list(range(10))
    statuses = set()
    for i, r in enumerate(results):
        epoch, early = ended[i]
        assert epoch == r.epochs  # reported in the epoch it ended, not later
        assert (early.status, early.metrics, early.epochs, early.rung, early.best_epoch,
                early.params) == (r.status, r.metrics, r.epochs, r.rung, r.best_epoch, r.params)
        statuses.add(r.status)
    assert statuses == {Status.OK, Status.EARLY_STOPPED, Status.NAN}
    assert min(r.epochs for r in results) < max(r.epochs for r in results)
    # a training that also reports test metrics (restored at the end) is not reported early
    late = []
    train_population(mosi, genomes[:2], [0, 1], device="cpu", on_end=late.append)
    assert late == []
