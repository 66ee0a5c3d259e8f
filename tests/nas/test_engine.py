"""The search engine and its Tune adapter driven by hand (no Ray runtime): batches, dedup, cheap
constraints, penalties, state round trips, and the leaderboard pinned against the previous
implementation."""
import json
import math
import random
from pathlib import Path

import pytest

from evo_msa.data import DataInfo
from evo_msa.nas.engine import SearchEngine
from evo_msa.nas.evaluators.base import Outcome
from evo_msa.nas.evaluators.haemsa import HaemsaEvaluator
from evo_msa.nas.execution.tune import EngineSearcher
from evo_msa.nas.policies import EvaluationPolicy, seed_start
from evo_msa.nas.selection import FinalSelection
from evo_msa.nas.strategies import StrategySettings, make_strategy
from evo_msa.record.leaderboard import leaderboard_frame
from evo_msa.space import load_space, parse_space
from evo_msa.space.fitness import PENALTY
from evo_msa.status import Status

ROOT = Path(__file__).resolve().parents[2]
TINY = ROOT / "search_spaces" / "tiny.yaml"
INFO = DataInfo(dims={"text": 8, "audio": 4, "vision": 4}, seq_lens={"text": 1, "audio": 1, "vision": 1},
                task="regression", modalities=("text", "audio", "vision"))


def make(space=None, pop=6, generations=3, seed=0, kind="generational", share=0.0):
    """An engine as build_engine makes it; `share`: of the budget, the finalists' (0: none)."""
    space = space or load_space(TINY)
    selection = FinalSelection.for_budget(space, pop * generations, share, seed=seed)
    settings = StrategySettings(pop_size=pop, generations=generations,
                                 budget=pop * generations - selection.trainings)
    strategy = make_strategy(kind, space, settings, seed,
                             objectives=len(space.fitness.objectives))
    return SearchEngine(strategy, EvaluationPolicy(HaemsaEvaluator(space, INFO)),
                        log=lambda line: None, selection=selection)


def fake_loss(config):
    m, t, o = config["model"], config["train"], config["loss"]
    return round(1.0 - 0.1 * len(m["modalities"]) + 0.01 * m["depth"]
                 + 0.001 * sum(m["level_widths"][:m["depth"]])
                 + 0.05 * abs(math.log10(t["lr"]) + 2.5) + 0.02 * o["gamma_kl"], 12)


def ok(ev, loss):
    return [Outcome(ev.id, s, Status.OK, {"loss": loss, "mae": 0.5}, 3) for s in ev.seeds]


def run(engine, batch=1, fail=(), limit=10_000):
    """Drive the engine like a pool of trials: ask a batch, complete it."""
    trials = 0
    while not engine.finished and trials < limit:
        todo = engine.ask(batch)
        if not todo:  # cached/rejected ones settle inside ask and may finish the search
            assert engine.finished, "with nothing in flight the engine must always have work"
            break
        for ev in todo:
            if ev.id in fail:
                engine.complete(ev.id, [Outcome(ev.id, s, Status.ERROR,
                                                error="RuntimeError: boom") for s in ev.seeds])
            else:
                engine.complete(ev.id, ok(ev, fake_loss(ev.config)))
        trials += 1
    return trials


@pytest.mark.parametrize("kind", ["generational", "steady-state", "random"])
def test_the_leaderboard_is_pinned(kind):
    """Same seed, same search: the rows this implementation gave when the budget began to count
    trainings and unordered genes got their own operators (v2; the rows of 919476c before).
    A refactoring that changes one row changes what users get."""
    pinned = json.loads((Path(__file__).parent / "pinned" / f"{kind}_v2.json").read_text())
    engine = make(pop=6, generations=3, seed=7, kind=kind)
    run(engine, fail={4})
    assert sum(e.status.trained for e in engine.evaluations) == 18  # pop x generations
    rows = leaderboard_frame(engine.evaluations, engine.fitness).to_dict("records")
    assert len(rows) == len(pinned)
    for old, new in zip(pinned, rows):
        for key in ("generation", "id", "parents", "status", "fitness", "note", "params"):
            assert old[key] == new[key] or (old[key] in ("", None) and new[key] in ("", None)), \
                (key, old, new)
        assert [round(x, 6) for x in json.loads(new["genome"])] == old["genome"]
        ev = next(e for e in engine.evaluations if e.id == new["id"])  # what trained, or nothing
        assert new["seeds"] == ("" if ev.status is Status.REJECTED else str(seed_start(ev.key)))
        assert {k: v for k, v in old.items() if k.startswith("gene:")} == \
            {k: v for k, v in new.items() if k.startswith("gene:")}


@pytest.mark.parametrize("kind", ["generational", "steady-state", "random"])
def test_batches_spend_the_same_budget(kind):
    engine = make(pop=8, generations=3, kind=kind)
    trials = run(engine, batch=4)
    trained = [ev for ev in engine.evaluations if ev.status.trained]
    assert len(trained) == 24 and trials < 24  # the budget counts trainings
    assert len({ev.id for ev in engine.evaluations}) == len(engine.evaluations)


def two_seed_searcher():
    """A Tune searcher over a space of 2 training seeds per genome, batches of 3 genomes;
    returns the engine, the searcher and the list its checkpoints append to."""
    raw = {"genes": {"model.depth": {"type": "int", "low": 1, "high": 2},
                     "train.lr": {"type": "log-float", "low": 1e-3, "high": 1e-2}},
           "fitness": {"metric": "loss", "seeds": 2}}
    engine = make(space=parse_space(raw, "two-seeds.yaml"), pop=4, generations=1)
    persisted = []
    searcher = EngineSearcher(engine, batch_size=3, on_change=lambda: persisted.append(1))
    return engine, searcher, persisted


def seeds_by_evaluation(members: list[dict]) -> dict[int, list[int]]:
    out: dict[int, list[int]] = {}
    for m in members:
        out.setdefault(m["eval_id"], []).append(m["seed"])
    return {e: sorted(s) for e, s in out.items()}


def test_trials_get_plain_dicts_and_one_training_per_seed(tmp_path):
    engine, searcher, persisted = two_seed_searcher()
    config = searcher.suggest("t1")
    json.dumps(config)  # plain data only: no DEAP objects travel to the workers
    assert set(config) == {"members", "track"}
    assert len(config["members"]) == 6  # 3 genomes x 2 seeds
    seeds = seeds_by_evaluation(config["members"])
    assert all(len(s) == 2 and s[1] == s[0] + 1 for s in seeds.values())
    outcomes = []
    for m in config["members"]:
        loss = 1.0 if m["seed"] == seeds[m["eval_id"]][0] else 0.5
        outcomes.append(Outcome(m["eval_id"], m["seed"], Status.OK, {"loss": loss}, 2).to_dict())
    searcher.on_trial_complete("t1", {"outcomes": json.dumps(outcomes), "node": "n1",
                                      "device": "cpu", "seconds": 1.5, "population": 6})
    settled = engine.evaluations
    assert [e.fitness for e in settled] == [(0.75,)] * 3  # the mean over the seeds
    assert all(e.node == "n1" and e.population == 6 and e.trial == "t1" for e in settled)
    assert persisted  # a checkpoint after the trial
    searcher.on_trial_complete("unknown-trial", error=True)  # a report for nothing is ignored


def test_an_evaluation_settles_when_its_trainings_have_ended_not_when_its_trial_does():
    engine, searcher, persisted = two_seed_searcher()
    members = searcher.suggest("t1")["members"]
    seeds = seeds_by_evaluation(members)
    a, b, c = sorted(seeds)

    def ended(*pairs, loss=1.0):  # (evaluation, its k-th seed)
        return json.dumps([Outcome(e, seeds[e][k], Status.OK, {"loss": loss}, 2).to_dict()
                           for e, k in pairs])

    # a's two seeds and one of b's have ended: a settles, b waits for its other seed
    searcher.on_trial_result("t1", {"ended": ended((a, 0), (a, 1), (b, 0)), "seconds": 4.0,
                                    "node": "n1", "population": 6})
    assert [e.id for e in engine.evaluations] == [a] and engine.evaluations[0].seconds == 4.0
    assert a not in engine.pending and b in engine.pending and persisted
    searcher.on_trial_result("t1", {"ended": ended((a, 0), (a, 1), (b, 0))})  # nothing new
    assert len(engine.evaluations) == 1
    # the trial's end settles the rest from its final outcomes; a stays as it settled
    final = json.loads(ended((a, 0), (a, 1), (b, 0), (b, 1), (c, 0), (c, 1), loss=0.5))
    searcher.on_trial_complete("t1", {"outcomes": json.dumps(final), "node": "n1"})
    assert [(e.id, e.fitness) for e in engine.evaluations] == [(a, (1.0,)), (b, (0.5,)),
                                                                (c, (0.5,))]
    assert not engine.pending and "t1" not in searcher.trials


def test_identical_architectures_are_not_trained_twice():
    # a space with one 2-valued gene has at most two distinct architectures
    space = parse_space({"genes": {"model.depth": {"type": "int", "low": 1, "high": 2}},
                         "fixed": {"model.modalities": ["text"]}}, "dedup.yaml")
    engine = make(space=space, pop=8, generations=3)
    run(engine)
    trained = [e for e in engine.evaluations if e.status is Status.OK]
    cached = [e for e in engine.evaluations if e.status is Status.CACHED]
    assert len(trained) <= 2 + 1  # two architectures (one may be in flight twice)
    assert cached and all("same architecture as #" in e.note for e in cached)
    assert all(e.params > 0 for e in cached)
    # a known architecture costs no training: the space runs dry long before the budget
    assert engine.finished and "exhausted" in engine.strategy.stopped_reason


def test_too_large_genomes_are_rejected_before_training():
    space = parse_space({"genes": {"model.expert_dim": {"type": "int", "low": 8, "high": 512}},
                         "constraints": {"max_params": 60000}}, "small.yaml")
    engine = make(space=space, pop=8, generations=2)
    run(engine)
    rejected = [e for e in engine.evaluations if e.status is Status.REJECTED]
    assert rejected and all(e.fitness == (PENALTY,) and "max_params" in e.note for e in rejected)
    assert all(e.params <= 60000 for e in engine.evaluations if e.status is Status.OK)


def test_failures_get_a_penalty_and_the_search_goes_on():
    engine = make()
    run(engine, fail={0, 3})
    failed = [e for e in engine.evaluations if e.status is Status.ERROR]
    assert [e.id for e in failed] == [0, 3]
    assert all(e.fitness == (PENALTY,) and "boom" in e.note for e in failed)
    assert engine.finished


def test_a_lost_trial_and_a_diverged_training_are_recorded():
    engine = make()
    a, b = engine.ask(2)
    engine.complete(a.id, [], lost=True)
    engine.complete(b.id, [Outcome(b.id, 0, Status.NAN,
                                   error="non-finite training loss in epoch 2")])
    assert a.status is Status.ERROR and "lost" in a.note
    assert b.status is Status.NAN and b.fitness == (PENALTY,)


def test_a_missing_fitness_metric_is_an_error_of_that_evaluation():
    space = parse_space({"genes": {"model.depth": {"type": "int", "low": 1, "high": 2}},
                         "fitness": {"metric": "corr"}}, "corr.yaml")
    engine = make(space=space)
    ev = engine.ask(1)[0]
    engine.complete(ev.id, ok(ev, 0.5))  # reports loss and mae, not corr
    assert ev.status is Status.ERROR and "not a validation metric" in ev.note
    assert ev.fitness == (-PENALTY,)  # corr is maximised: the penalty is very low


def test_an_evaluation_records_how_far_its_seeds_stray():
    two = make(space=parse_space({"genes": {"model.depth": {"type": "int", "low": 1, "high": 2}},
                                  "fitness": {"seeds": 2}}, "two.yaml"))
    ev = two.ask(1)[0]
    two.complete(ev.id, [Outcome(ev.id, s, Status.OK, {"loss": v}, 3)
                            for s, v in zip(ev.seeds, (0.8, 0.9))])
    assert ev.fitness == pytest.approx((0.85,))
    assert ev.fitness_std == pytest.approx(0.1 / math.sqrt(2))
    row = leaderboard_frame([ev], two.fitness).iloc[0]
    assert row["fitness_std"] == pytest.approx(0.0707, abs=1e-4)
    one = make()  # tiny.yaml: one seed per evaluation, no spread to tell
    ev = one.ask(1)[0]
    one.complete(ev.id, ok(ev, 0.5))
    assert ev.fitness_std is None
    assert leaderboard_frame([ev], one.fitness).iloc[0]["fitness_std"] == ""


def test_an_early_stopped_batch_keeps_its_best_so_far():
    engine = make()
    ev = engine.ask(1)[0]
    engine.complete(ev.id, [Outcome(ev.id, 0, Status.EARLY_STOPPED, {"loss": 0.8}, 1)])
    assert ev.status is Status.EARLY_STOPPED and ev.fitness == (0.8,)
    assert ev.key not in engine.policy.known  # a partial result is not reused


def test_state_round_trip_brings_back_the_whole_search():
    """Tune's restore has lost custom searcher state before: ours must survive a round trip."""
    straight = make()
    run(straight)

    first = make()
    for _ in range(8):
        for ev in first.ask(1):
            first.complete(ev.id, ok(ev, fake_loss(ev.config)))
    first.ask(1)  # in flight: dies with the process
    state = json.loads(json.dumps(first.state_dict()))

    resumed = make(seed=123)  # the seed comes from the state
    resumed.load_state_dict(state)
    assert len(resumed.evaluations) == 8 and resumed.policy.known == first.policy.known
    run(resumed)
    strip = lambda evs: [{k: v for k, v in e.to_dict().items() if k != "seconds"} for e in evs]  # noqa: E731
    assert strip(resumed.evaluations) == strip(straight.evaluations)


def test_several_objectives_mark_the_pareto_front():
    raw = {"genes": {"model.expert_dim": {"type": "int", "low": 8, "high": 64},
                     "model.depth": {"type": "int", "low": 1, "high": 3}},
           "fitness": {"objectives": [{"metric": "loss"}, {"metric": "params"}]}}
    space = parse_space(raw, "pareto.yaml")
    engine = make(space=space, pop=8, generations=3)

    def complete_all():
        while not engine.finished:
            for ev in engine.ask(8):
                # a trade-off: bigger networks get a lower loss
                engine.complete(ev.id, ok(ev, 1.0 / math.log(ev.params)))

    complete_all()
    frame = leaderboard_frame(engine.evaluations, engine.fitness)
    assert {"fitness:loss", "fitness:params", "pareto"} <= set(frame.columns)
    front = frame[frame["pareto"]]
    assert len(front) >= 2
    # nothing on the front is dominated by any row
    for _, r in front.iterrows():
        assert not ((frame["fitness:loss"] <= r["fitness:loss"])
                    & (frame["fitness:params"] <= r["fitness:params"])
                    & ((frame["fitness:loss"] < r["fitness:loss"])
                       | (frame["fitness:params"] < r["fitness:params"]))).any()


def test_batches_are_balanced_by_work():
    from types import SimpleNamespace

    from evo_msa.nas.execution.tune import balanced_batches

    evs = [SimpleNamespace(id=i, params=p) for i, p in enumerate([100, 90, 10, 10, 10, 10, 80, 5])]
    batches = balanced_batches(evs, 4)
    assert len(batches) == 2 and all(len(b) <= 4 for b in batches)
    loads = [sum(e.params for e in b) for b in batches]
    # in candidate order the split would be 210 / 105; with 4 per batch 185 / 130 is the best
    assert sorted(loads) == [130, 185]
    assert sorted(e.id for b in batches for e in b) == list(range(8))
    assert balanced_batches([], 4) == []
    # a short round (4 re-trainings on 2 slots) fills both slots instead of one trial of 4
    assert sorted(len(b) for b in balanced_batches(evs[:4], 4, at_least=2)) == [2, 2]
    assert [len(b) for b in balanced_batches(evs[:1], 4, at_least=2)] == [1]


def test_cpu_trials_are_cut_smaller_while_halving_still_has_genomes_to_rank():
    from evo_msa.nas.execution.tune import default_batch

    assert default_batch(32, 2, gpu=False) == 8  # two trials per slot and generation
    assert default_batch(32, 2, gpu=True) == 16  # a GPU fills its slots once
    assert default_batch(16, 2, gpu=False) == 8  # halves of 4 would leave halving 2 -> 1
    assert default_batch(32, 16, gpu=False) == 2 and default_batch(5, 1, gpu=False) == 5
    assert default_batch(1, 4, gpu=False) == 1
    # a fine-tuned encoder: batching saves nothing on a CPU, every result is heard at once
    assert default_batch(32, 2, gpu=False, cpu_cap=1) == 1
    assert default_batch(32, 2, gpu=True, cpu_cap=1) == 16
    assert default_batch(32, 2, gpu=False, cpu_cap=4) == 4  # a frozen-encoder screen's batch


def test_re_evaluations_in_flight_together_train_different_seeds():
    # the default strategy re-trains its finalists; two re-evaluations of one architecture
    # asked before either finished must not train the same seeds (nor count one draw twice)
    from evo_msa.nas.strategies.base import Candidate

    policy = EvaluationPolicy(HaemsaEvaluator(load_space(TINY), INFO))
    genome = [0.5] * policy.space.size
    first = policy.propose(Candidate(0, genome, 0))
    policy.complete(first, ok(first, 0.7))
    again = [policy.propose(Candidate(i, genome, 1, repeat=True)) for i in (5, 6)]
    s0 = seed_start(first.key)
    assert [e.seeds for e in again] == [[s0 + 1], [s0 + 2]] and first.seeds == [s0]
    assert [e.note for e in again] == ["re-evaluation 2 of #0", "re-evaluation 3 of #0"]
    assert policy.propose(Candidate(6, genome, 1, repeat=True)).seeds == [s0 + 2]  # asked again
    for e, loss in zip(again, (0.8, 0.9)):
        policy.complete(e, ok(e, loss))
    assert policy.known[first.key][0] == pytest.approx((0.8,))  # the mean of three draws


def test_each_architecture_trains_seeds_of_its_own_and_one_architecture_the_same():
    # common seeds would give near-twins one shared draw of the training noise (and the final
    # trainer's seeds 0-4 the search's own trainings)
    from evo_msa.nas.strategies.base import Candidate

    raw = {"genes": {"model.depth": {"type": "int", "low": 1, "high": 2},
                     "train.lr": {"type": "log-float", "low": 1e-3, "high": 1e-2}},
           "fitness": {"metric": "loss", "seeds": 3}}
    space = parse_space(raw, "three-seeds.yaml")
    genomes = [[0.5] * space.size, [0.5] * (space.size - 1) + [0.9]]
    seeds = {}
    for trial_seed in (0, 7):
        policy = EvaluationPolicy(HaemsaEvaluator(space, INFO), trial_seed=trial_seed)
        evs = [policy.propose(Candidate(i, g, 0)) for i, g in enumerate(genomes)]
        assert evs[0].key != evs[1].key
        for ev in evs:
            start = seed_start(ev.key)
            assert ev.seeds == [start + trial_seed + k for k in range(3)]
            seeds[trial_seed, ev.key] = ev.seeds
        assert not set(evs[0].seeds) & set(evs[1].seeds)
        assert not set(range(5)) & {s for ev in evs for s in ev.seeds}
    again = EvaluationPolicy(HaemsaEvaluator(space, INFO)).propose(Candidate(9, genomes[1], 3))
    assert again.seeds == seeds[0, again.key]  # another search, the same architecture


def run_in_parallel(engine, slots, order_seed, window=True, stop_after=None):
    """A pool of `slots` one-genome trials that end in a random order (as parallel trials do);
    returns the evaluations still in flight when it stopped."""
    rng = random.Random(order_seed)
    if window:
        engine.set_window(2 * slots)
    running, done = [], 0
    while not engine.finished and (stop_after is None or done < stop_after):
        while len(running) < slots:
            todo = engine.ask(1)
            if not todo:
                break
            running += todo
        if not running:  # nothing in flight: the engine told everything and must be done
            assert engine.finished
            break
        ev = running.pop(rng.randrange(len(running)))
        engine.complete(ev.id, ok(ev, fake_loss(ev.config)))
        done += 1
    return running


def search_record(engine):
    return ({e.id: (e.genome, e.fitness) for e in engine.evaluations},
            engine.strategy.best_per_generation, engine.strategy.stopped_reason,
            engine.pick().id)


@pytest.mark.parametrize("kind", ["surrogate", "tpe", "steady-state"])
def test_the_order_parallel_trials_end_in_does_not_change_the_search(kind):
    """Results reach the strategy in id order through a window: three completion orders, one
    search; and a search killed mid-way (its trials in flight lost) resumes into the same."""
    records = []
    for order in range(3):  # the finalists' rounds too (a quarter of the budget)
        engine = make(kind=kind, pop=6, generations=4, share=0.25)
        run_in_parallel(engine, slots=3, order_seed=order)
        records.append(search_record(engine))
        assert sum(e.id in engine.selection.ids for e in engine.evaluations) == 6
    assert records[0] == records[1] == records[2]
    assert len(records[0][0]) >= 24

    for stop in (13, 20):  # mid-search, and mid-way through the finalists' re-trainings
        engine = make(kind=kind, pop=6, generations=4, share=0.25)
        run_in_parallel(engine, slots=3, order_seed=7, stop_after=stop)
        # results settled and not told yet, or re-trainings planned: they survive the resume
        assert engine.held if stop == 13 else engine.selection.round
        state = json.loads(json.dumps(engine.state_dict()))
        resumed = make(kind=kind, pop=6, generations=4, share=0.25)
        resumed.load_state_dict(state)
        run_in_parallel(resumed, slots=3, order_seed=8)
        assert search_record(resumed) == records[0]


def test_without_the_window_the_completion_order_changes_the_search():
    """What the window is for: told as they end, the same surrogate search differs."""
    records = []
    for order in range(3):
        engine = make(kind="surrogate", pop=6, generations=4)
        run_in_parallel(engine, slots=3, order_seed=order, window=False)
        records.append(search_record(engine)[0])
    assert not records[0] == records[1] == records[2]


def test_every_generation_gets_its_progress_line_with_the_window():
    """The last results are told only once nothing is in flight: the last line still comes."""
    lines = []
    engine = make(kind="surrogate", pop=6, generations=4)
    engine.log = lines.append
    run_in_parallel(engine, slots=3, order_seed=0)
    assert engine.finished
    assert [line.split()[1] for line in lines] == ["1/4", "2/4", "3/4", "4/4"]


def test_the_surrogate_proposes_no_twin_of_a_known_architecture():
    """Genomes that differ only in a gene their architecture does not use (the width of a
    dormant level: tiny.yaml's depth 1 of 2) are one architecture. The surrogate asks the
    evaluator's identity, so it neither trains a twin again nor has one answered from the
    cache; only its finalists' re-trainings repeat an architecture."""
    engine = make(kind="surrogate", pop=8, generations=8, share=0.1)
    run(engine, batch=3)
    assert engine.finished and engine.strategy.identity is not None
    first = [e.key for e in engine.evaluations if not e.repeat]
    assert len(first) == len(set(first)) == 64 - engine.selection.trainings
    assert not [e for e in engine.evaluations if e.status is Status.CACHED]


def test_the_policy_checkpoints_its_own_state_and_says_what_a_genome_stands_by():
    engine = make(share=0.2)
    run(engine)
    policy = engine.policy
    state = json.loads(json.dumps(policy.state_dict()))
    assert set(state) == {"known", "seeds", "repeats", "reruns"}
    again = EvaluationPolicy(policy.evaluator)
    again.load_state_dict(state, engine.evaluations)
    assert again.known == policy.known and again.repeats == policy.repeats
    assert again.reruns == policy.reruns and again.seeds == policy.seeds
    repeated = next(e for e in engine.evaluations if e.repeat)
    values, n = engine.standing(repeated)
    assert n == policy.repeats[repeated.key] > 1 and values == policy.known[repeated.key][0]
    once = next(e for e in engine.evaluations
                if e.status is Status.OK and e.key not in policy.repeats)
    assert engine.standing(once) == (policy.known[once.key][0], 1)


def test_the_engine_tells_the_strategy_the_evaluators_identity_through_its_interface():
    engine = make()
    genome = [0.5] * engine.policy.space.size
    assert engine.strategy.identity(genome) == engine.policy.evaluator.identity(genome)


def test_the_evaluator_says_how_many_epochs_a_training_runs():
    space = load_space(TINY)
    assert HaemsaEvaluator(space, INFO).max_epochs() == space.to_config([0.5] * space.size
                                                                         ).train.epochs
    ranged = parse_space({"genes": {"train.epochs": {"type": "int", "low": 2, "high": 9}}})
    assert HaemsaEvaluator(ranged, INFO).max_epochs() == 9
    chosen = parse_space({"genes": {"train.epochs": {"type": "categorical",
                                                     "choices": [8, 3, 5]}}})
    assert HaemsaEvaluator(chosen, INFO).max_epochs() == 8


def test_tune_keeps_no_second_copy_of_the_checkpoint(tmp_path):
    """The run's state.json is the one checkpoint; Tune's searcher save writes nothing."""
    searcher = EngineSearcher(make(), batch_size=2)
    searcher.save_to_dir(str(tmp_path), "session")
    assert not list(tmp_path.iterdir())


def test_progress_inside_a_generation_counts_trainings_of_the_budget():
    engine = make(pop=4, generations=3, kind="surrogate")
    assert engine.progress_line().split() [:5] == ["trainings", "0/12", "done,", "0",
                                                   "running"]
    todo = engine.ask(3)
    for ev in todo[:2]:
        engine.complete(ev.id, ok(ev, fake_loss(ev.config)))
    line = engine.progress_line()
    assert "trainings 2/12 done, 1 running or queued" in line
    assert "eta" in line and "[random design" in line


def test_the_heartbeat_shows_how_far_running_trials_are():
    """A trial's per-epoch reports reach the progress line (a fine-tuning trial runs for
    minutes); a trial not started yet shows no epoch, and a settled one drops out."""
    engine, searcher, _ = two_seed_searcher()
    first = searcher.suggest("t1")
    searcher.suggest("t2")
    assert "past epoch" not in engine.progress_line()
    searcher.on_trial_result("t1", {"epoch": 2, "ended": "[]"})
    assert "4 running or queued (3 past epoch 2)" in engine.progress_line()
    searcher.on_trial_result("t2", {"epoch": 1, "ended": "[]"})
    assert "(4 past epochs 1-2)" in engine.progress_line()
    outcomes = [Outcome(m["eval_id"], m["seed"], Status.OK, {"loss": 1.0}, 3).to_dict()
                for m in first["members"]]
    searcher.on_trial_complete("t1", {"outcomes": json.dumps(outcomes)})
    assert "1 running or queued (1 past epoch 1)" in engine.progress_line()


def test_a_cpu_trial_holds_one_genome_where_it_may_fine_tune_an_encoder_unscreened():
    genes = {"model.depth": {"type": "int", "low": 0, "high": 1}}
    frozen = parse_space({"genes": genes, "fixed": {"pretrained.model": "m"}}, "f.yaml")
    tuned = parse_space({"genes": {**genes, "pretrained.finetune_layers":
                                   {"type": "categorical", "choices": [0, 2]}},
                         "fixed": {"pretrained.model": "m"}}, "t.yaml")
    fixed = parse_space({"genes": genes, "fixed": {"pretrained.model": "m",
                                                   "pretrained.finetune_layers": -1}}, "x.yaml")
    assert HaemsaEvaluator(load_space(TINY), INFO).cpu_batch_cap() is None  # no encoder
    assert HaemsaEvaluator(frozen, INFO).cpu_batch_cap() is None  # an encoder, never trained
    assert HaemsaEvaluator(tuned, INFO).cpu_batch_cap() == 1
    assert HaemsaEvaluator(fixed, INFO).cpu_batch_cap() == 1
    ranged = parse_space({"genes": {**genes, "pretrained.finetune_layers":
                                    {"type": "int", "low": 0, "high": 2}},
                          "fixed": {"pretrained.model": "m"}}, "r.yaml")
    assert HaemsaEvaluator(ranged, INFO).cpu_batch_cap() == 1  # an int gene may train layers too
    screened = parse_space({"genes": genes, "fixed": {"pretrained.model": "m",
                                                      "pretrained.finetune_layers": -1},
                            "fidelity": {"screen": "frozen"}}, "s.yaml")
    assert HaemsaEvaluator(screened, INFO).cpu_batch_cap() == 4  # the screen ranks a batch
