"""The final selection is the engine's, one stage for every strategy: the last share of the
budget re-trains the best distinct configurations with fresh seeds, in rounds, and the pick is
the re-trained configuration with the best robust estimate."""
import json
import random
from collections import Counter
from pathlib import Path

import pytest

from evo_msa.data import DataInfo
from evo_msa.nas.engine import SearchEngine
from evo_msa.nas.evaluators.base import Outcome
from evo_msa.nas.evaluators.haemsa import HaemsaEvaluator
from evo_msa.nas.options import SearchOptions
from evo_msa.nas.policies import EvaluationPolicy
from evo_msa.nas.runner import build_engine
from evo_msa.nas.selection import FinalSelection
from evo_msa.nas.strategies import STRATEGIES, StrategySettings, make_strategy
from evo_msa.space import load_space
from evo_msa.status import Status

ROOT = Path(__file__).resolve().parents[2]
TINY = load_space(ROOT / "search_spaces" / "tiny.yaml")
INFO = DataInfo(dims={"text": 8, "audio": 4, "vision": 4},
                seq_lens={"text": 1, "audio": 1, "vision": 1}, task="regression",
                modalities=("text", "audio", "vision"))
OPTIONS = {"surrogate": {"mode": "surrogate"}, "generational": {"mode": "generational"},
           "steady-state": {"mode": "steady-state"}, "random": {"strategy": "random"},
           "tpe": {"strategy": "tpe"}, "cmaes": {"strategy": "cmaes"}}


def noisy_loss(ev, seed, noise=0.05):
    """A smooth landscape (best at 0.8 in every gene) plus the noise of one training."""
    true = sum((x - 0.8) ** 2 for x in ev.genome)
    return true + random.Random(seed * 7919 + ev.id).gauss(0, noise)


def drive(engine, batch=1, noise=0.05):
    while not engine.finished:
        todo = engine.ask(batch)
        if not todo:
            break
        for ev in todo:
            engine.complete(ev.id, [Outcome(ev.id, s, Status.OK,
                                            {"loss": noisy_loss(ev, s, noise)}, 3)
                                    for s in ev.seeds])
    return engine


def test_every_strategy_gets_the_same_stage():
    assert set(OPTIONS) == set(STRATEGIES)  # a new strategy is added here too
    for kind, options in OPTIONS.items():
        opts = SearchOptions(space="tiny", budget=60, pop=8, seed=1, **options)
        opts.validate()
        engine = drive(build_engine(opts, HaemsaEvaluator(TINY, INFO), log=lambda line: None))
        assert engine.strategy.budget == 54 and engine.budget == 60, kind
        trained = [e for e in engine.evaluations if e.status.trained]
        retrained = [e for e in engine.evaluations if e.id in engine.selection.ids]
        assert len(trained) == 60 and len(retrained) == 6, kind
        assert all(e.repeat and e.note.startswith("re-evaluation") for e in retrained), kind
        first_round = sorted(retrained, key=lambda e: e.id)[:5]  # the 5 finalists (default)
        assert len({e.key for e in first_round}) == 5, kind
        # the strategy is never told of them: its history is the search's
        assert not set(engine.selection.ids) & set(engine.strategy.candidates), kind
        pick = engine.pick()
        assert pick.key in {e.key for e in retrained}, kind
        assert pick.id == engine.selection.pick(engine.evaluations).id  # the one rule


def test_a_round_re_trains_each_finalist_once_and_waits_for_the_results():
    """Asked for all at once (parallel trials), a round gives each finalist one re-training;
    the next round is planned only once every result is in."""
    space = TINY
    selection = FinalSelection.for_budget(space, 100, share=0.2, finalists=4)
    strategy = make_strategy("random", space, StrategySettings(pop_size=8, budget=80), 0)
    engine = SearchEngine(strategy, EvaluationPolicy(HaemsaEvaluator(space, INFO)),
                          log=lambda line: None, selection=selection)
    while not strategy.done:  # the search, one by one
        for ev in engine.ask(1):
            engine.complete(ev.id, [Outcome(ev.id, s, Status.OK, {"loss": noisy_loss(ev, s)}, 3)
                                    for s in ev.seeds])
    first = engine.ask(10)
    assert len(first) == 4 and len({e.key for e in first}) == 4
    assert engine.ask(10) == []  # the round's results are not in: no new round yet
    for ev in first:
        engine.complete(ev.id, [Outcome(ev.id, s, Status.OK, {"loss": noisy_loss(ev, s)}, 3)
                                for s in ev.seeds])
    drive(engine, batch=10)
    assert selection.rounds == 5 and selection.planned == 20 and engine.finished
    per_config = Counter(e.key for e in engine.evaluations if e.id in selection.ids)
    assert sum(per_config.values()) == 20


def test_a_lucky_single_draw_is_not_the_pick_once_finalists_are_re_trained():
    opts = SearchOptions(space="tiny", budget=40, pop=8, strategy="random")
    engine = drive(build_engine(opts, HaemsaEvaluator(TINY, INFO), log=lambda line: None))
    retrained = {e.key for e in engine.evaluations if e.repeat}
    assert engine.pick().key in retrained
    lucky = engine.policy.propose(engine.strategy._new([0.3] * TINY.size))  # far from 0.8
    engine.policy.complete(lucky, [Outcome(lucky.id, s, Status.OK, {"loss": -5.0}, 3)
                                   for s in lucky.seeds])
    engine.evaluations.append(lucky)  # the best single training by far
    assert engine.pick().key in retrained


def test_the_robust_estimate_beats_the_luckiest_draw_for_random_search():
    """Under noise the stage's pick (re-trained finalists, robust estimate) is truly better
    than the best single training, over 12 searches of random sampling."""
    picked, luckiest = [], []
    for seed in range(12):
        opts = SearchOptions(space="tiny", budget=50, pop=8, strategy="random", seed=seed)
        engine = drive(build_engine(opts, HaemsaEvaluator(TINY, INFO), log=lambda line: None),
                       noise=0.3)  # about the spread of the true losses of random genomes
        truth = {e.key: sum((x - 0.8) ** 2 for x in e.genome) for e in engine.evaluations}
        picked.append(truth[engine.pick().key])
        best_draw = min((e for e in engine.evaluations if e.status is Status.OK),
                        key=lambda e: e.fitness[0])
        luckiest.append(truth[best_draw.key])
    assert sum(picked) < sum(luckiest)


def test_with_several_objectives_nothing_is_re_trained():
    raw = json.loads(json.dumps({"genes": {"train.lr": {"type": "log-float", "low": 1e-4,
                                                         "high": 1e-2}},
                                 "fitness": {"objectives": [{"metric": "loss"},
                                                            {"metric": "params"}]}}))
    from evo_msa.space import parse_space

    space = parse_space(raw, "two.yaml")
    assert FinalSelection.for_budget(space, 100).trainings == 0


@pytest.mark.parametrize("share, budget, expected", [(0.1, 100, 10), (0.1, 4, 0), (0.5, 1, 0),
                                                      (0.0, 300, 0), (0.2, 300, 60)])
def test_the_share_of_the_budget(share, budget, expected):
    assert FinalSelection.for_budget(TINY, budget, share).trainings == expected
