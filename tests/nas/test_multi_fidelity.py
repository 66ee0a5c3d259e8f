"""Multi-fidelity searches: a genome stopped at a rung is learnt from, never taken for a result
(not the best, not the pick, not reused as a cache hit), and a re-evaluation trains whole."""
from pathlib import Path

import pytest

from evo_msa.data import DataInfo, make_synthetic
from evo_msa.data.loader import normalize
from evo_msa.metrics import Objective
from evo_msa.nas.engine import SearchEngine
from evo_msa.nas.evaluators.base import Member, Outcome
from evo_msa.nas.evaluators.haemsa import HaemsaEvaluator, screen
from evo_msa.nas.policies import EvaluationPolicy
from evo_msa.nas.selection import FinalSelection
from evo_msa.nas.strategies import StrategySettings, make_strategy
from evo_msa.record.leaderboard import leaderboard_frame
from evo_msa.space import load_space, parse_space
from evo_msa.status import Status

ROOT = Path(__file__).resolve().parents[2]
INFO = DataInfo(dims={"text": 8, "audio": 4, "vision": 4},
                seq_lens={"text": 1, "audio": 1, "vision": 1}, task="regression",
                modalities=("text", "audio", "vision"))


def engine(kind, pop=6, generations=3):
    space = load_space(ROOT / "search_spaces" / "tiny.yaml")
    selection = FinalSelection.for_budget(space, pop * generations)  # finalists re-trained
    settings = StrategySettings(pop_size=pop, budget=pop * generations - selection.trainings)
    strategy = make_strategy(kind, space, settings, 0)
    return SearchEngine(strategy, EvaluationPolicy(HaemsaEvaluator(space, INFO)),
                        log=lambda line: None, selection=selection)


def run_halved(e):
    """Every other evaluation stops at rung 1 with the lowest loss of all (a low-fidelity
    value that must not win)."""
    n = 0
    while not e.finished:
        todo = e.ask(4)
        if not todo:
            break
        for ev in todo:
            n += 1
            if n % 2:
                e.complete(ev.id, [Outcome(ev.id, s, Status.EARLY_STOPPED, {"loss": 0.1}, 2,
                                           rung=1) for s in ev.seeds])
            else:
                e.complete(ev.id, [Outcome(ev.id, s, Status.OK, {"loss": 1.0 + ev.id / 100}, 4)
                                   for s in ev.seeds])


def test_a_stopped_genome_is_no_result():
    for kind in ("surrogate", "generational", "random"):
        e = engine(kind)
        run_halved(e)
        stopped = [ev for ev in e.evaluations if ev.status is Status.EARLY_STOPPED]
        assert stopped and all(ev.rung == 1 and "stopped at rung 1" in ev.note
                               for ev in stopped)
        by_id = {ev.id: ev for ev in e.evaluations}
        # never a cache hit: what a known architecture answers with was trained whole
        assert all(by_id[cid].status is Status.OK for _, cid in e.policy.known.values())
        pick = e.pick()
        assert pick.status is Status.OK, kind
        assert any(ev.repeat and ev.status is Status.OK for ev in e.evaluations), kind
        assert all(c.partial == (by_id[c.id].status is Status.EARLY_STOPPED)
                   for c in e.strategy.candidates.values() if c.score is not None)
        assert all(-b >= 1.0 for b in e.strategy.best_per_generation)  # the 0.1s never win
        board = leaderboard_frame(e.evaluations, e.fitness)
        assert set(board.loc[board["status"] == "early-stopped", "rung"]) == {1}


def test_halving_in_the_evaluator_and_a_re_evaluation_trains_whole():
    data = normalize(make_synthetic("mosi", seed=0, n=200))
    raw = {"genes": {"model.depth": {"type": "int", "low": 1, "high": 2}},
           "fixed": {"model.expert_dim": 8, "model.unified_dim": 8, "model.tower_dim": 4,
                     "model.level_widths": [8, 8], "train.epochs": 3, "train.patience": 3,
                     "train.batch_size": 100},
           "fitness": {"metric": "loss", "seeds": 2}, "fidelity": {"rungs": [1], "keep": 0.5}}
    space = parse_space(raw, "halved.yaml")
    ev = HaemsaEvaluator(space, DataInfo.from_data(data), data=data, device="cpu")
    configs = [space.to_config([u], available=data.modalities).to_dict() for u in (0.2, 0.8)]
    members = [Member(g, s, configs[g % 2], whole=(g == 3)) for g in range(4) for s in (0, 1)]
    outcomes = ev.evaluate(members)
    rungs = {o.eval_id: o.rung for o in outcomes}
    assert sum(r == 1 for r in rungs.values()) == 1  # of the 3 ranked genomes, 1 goes on
    assert rungs[3] == 0  # a re-evaluation is not ranked
    for o in outcomes:
        assert o.status is (Status.EARLY_STOPPED if o.rung else Status.OK)
        assert o.epochs == (1 if o.rung else 3) and "loss" in o.metrics


def test_the_screen_fine_tunes_the_best_genomes_by_their_frozen_fitness():
    fine, frozen = {"pretrained": {"model": "m", "finetune_layers": -1}}, {"pretrained": {}}
    # genomes 0-3 fine-tune (two seeds each); 4 never does; 5 is a re-evaluation (whole)
    members = [Member(g, s, fine, whole=(g == 5)) for g in (0, 1, 2, 3, 5) for s in (0, 1)]
    members.insert(0, Member(4, 0, frozen))
    loss = {0: [0.9, 0.9], 1: [0.5, 0.7], 2: [0.6, float("nan")], 3: [0.55, 0.55]}
    asked = []

    def train_frozen(ids):
        asked.append([(members[i].eval_id, members[i].seed) for i in ids])
        return [Outcome(members[i].eval_id, members[i].seed,
                        Status.OK if loss[members[i].eval_id][members[i].seed] < 1 else
                        Status.NAN, {"loss": loss[members[i].eval_id][members[i].seed]}, 5)
                for i in ids]

    out = screen(members, 0.5, Objective("loss"), train_frozen)
    # only the fine-tuning genomes are screened: 1 (mean 0.6) and 3 (0.55) go on; 2 diverged
    # on one seed and 0 is worst
    assert asked == [[(g, s) for g in (0, 1, 2, 3) for s in (0, 1)]]
    assert sorted({(members[i].eval_id, o.status) for i, o in out.items()}) == [
        (0, Status.EARLY_STOPPED), (2, Status.EARLY_STOPPED), (2, Status.NAN)]
    assert all(o.rung == 1 and "frozen encoder" in o.stage for o in out.values())
    # a batch whose share keeps every genome trains nothing frozen
    assert screen(members[:3], 0.5, Objective("loss"), train_frozen) == {} and len(asked) == 1


def test_a_screened_batch_in_the_evaluator(tiny_encoder):
    data = normalize(make_synthetic("mosi", seed=0, n=120))
    raw = {"genes": {"model.tower_dim": {"type": "int", "low": 4, "high": 8}},
           "fixed": {"pretrained.model": tiny_encoder, "pretrained.finetune_layers": 1,
                     "pretrained.max_tokens": 16, "model.modalities": ["text"],
                     "model.expert_dim": 8, "model.unified_dim": 8, "model.depth": 1,
                     "model.level_widths": [8, 8], "train.epochs": 2, "train.patience": 2,
                     "train.batch_size": 40},
           "fitness": {"metric": "loss", "seeds": 1},
           "fidelity": {"screen": "frozen", "keep": 0.5}}
    space = parse_space(raw, "screened.yaml")
    ev = HaemsaEvaluator(space, DataInfo.from_data(data), data=data, device="cpu")
    assert ev.cpu_batch_cap() == 4  # the screen ranks a batch: trials hold several genomes
    configs = [space.to_config([u], available=data.modalities).to_dict() for u in (0.1, 0.9)]
    members = [Member(g, 0, configs[g % 2], whole=(g == 3)) for g in range(4)]
    ended = []
    outcomes = ev.evaluate(members, progress=lambda epoch, best, done: ended.extend(done))
    rungs = {o.eval_id: o.rung for o in outcomes}
    assert sum(r == 1 for r in rungs.values()) == 1 and rungs[3] == 0
    for o in outcomes:
        assert o.status is (Status.EARLY_STOPPED if o.rung else Status.OK)
        assert o.epochs == 2 and "loss" in o.metrics
    assert {o.eval_id for o in ended} >= {g for g, r in rungs.items() if r}


def test_final_candidates_are_architectures_ranked_by_their_mean_and_named_by_their_first():
    from evo_msa.nas.options import SearchOptions
    from evo_msa.nas.runner import _final_genomes

    e = engine("random")
    while not e.finished:
        todo = e.ask(4)
        if not todo:
            break
        for ev in todo:
            # a re-training draws far better than its architecture's first training
            loss = 0.5 if ev.repeat else 1.0 + ev.id / 100
            e.complete(ev.id, [Outcome(ev.id, s, Status.OK, {"loss": loss}, 4)
                               for s in ev.seeds])
    repeats = [ev for ev in e.evaluations if ev.repeat]
    assert repeats
    chosen = _final_genomes(e, e.policy.evaluator.space, SearchOptions(final_top=4, ensemble=1))
    assert chosen[0] is e.pick() and len({ev.key for ev in chosen}) == 4
    assert not any(ev.repeat for ev in chosen)  # named by the first training, not a re-training
    means = [e.policy.standing(ev)[0][0] for ev in chosen[1:]]  # valid losses
    assert means == sorted(means) and means[0] == pytest.approx(0.75)  # re-trained: (1 + 0.5) / 2
