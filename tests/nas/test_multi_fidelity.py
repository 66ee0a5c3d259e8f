"""Multi-fidelity searches: a genome stopped at a rung is learnt from, never taken for a result
(not the best, not the pick, not reused as a cache hit), and a re-evaluation trains whole."""
from pathlib import Path

from evo_msa.data import DataInfo, make_synthetic
from evo_msa.data.loader import normalize
from evo_msa.nas.engine import SearchEngine
from evo_msa.nas.evaluators.base import Member, Outcome
from evo_msa.nas.evaluators.haemsa import HaemsaEvaluator
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
