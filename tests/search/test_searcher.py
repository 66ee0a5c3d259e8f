"""The Tune searcher driven by hand (no Ray runtime): dedup, cheap constraints, penalties and
save/restore of the whole search state."""
import json
import math
from pathlib import Path

import pandas as pd

from evo_msa.models import DataInfo
from evo_msa.search.policies import PENALTY, EvaluationPolicy
from evo_msa.search.searcher import EvolutionSearcher
from evo_msa.search.strategy import EvolutionSettings, make_strategy
from evo_msa.space import load_space, parse_space

ROOT = Path(__file__).resolve().parents[2]
INFO = DataInfo(dims={"text": 8, "audio": 4, "vision": 4}, seq_lens={"text": 1, "audio": 1, "vision": 1},
                task="regression", coarse_classes=3, modalities=("text", "audio", "vision"))


def make(tmp_path, space=None, pop=6, generations=3, seed=0, kind="generational"):
    space = space or load_space(ROOT / "search_spaces" / "tiny.yaml")
    strategy = make_strategy(kind, space, EvolutionSettings(pop_size=pop, generations=generations), seed)
    return EvolutionSearcher(strategy, EvaluationPolicy(space, INFO), run_dir=tmp_path,
                             log=lambda line: None)


def fake_fitness(config):
    m = config["run_config"]["model"]
    return 1.0 - 0.1 * len(m["modalities"]) + 0.01 * m["depth"]


def run(searcher, fitness=fake_fitness, max_trials=1000, fail=()):
    n = 0
    while n < max_trials:
        config = searcher.suggest(f"t{n}")
        if config == EvolutionSearcher.FINISHED:
            break
        assert config is not None  # driven one at a time, a generation never waits
        if config["candidate"] in fail:
            searcher.on_trial_complete(f"t{n}", {"fitness": math.nan, "status": "error",
                                                 "error": "RuntimeError: boom"})
        else:
            searcher.on_trial_complete(f"t{n}", {"fitness": fitness(config), "status": "ok",
                                                 "valid_mae": 0.5})
        n += 1
    return n


def test_trials_get_plain_dicts_and_every_evaluation_is_a_row(tmp_path):
    s = make(tmp_path)
    config = s.suggest("a")
    json.dumps(config)  # plain data only: no DEAP objects travel to the workers
    assert set(config) == {"run_config", "candidate", "seed", "device", "metric"}
    s.on_trial_complete("a", {"fitness": 0.7, "status": "ok"})
    run(s)
    board = pd.read_csv(tmp_path / "leaderboard.csv")
    assert len(board) == len(s.rows) >= 6 + 2 * 4
    assert {"generation", "id", "parents", "fitness", "status", "gene:model.depth",
            "gene:model.modalities", "params", "genome"} <= set(board.columns)


def test_identical_architectures_are_not_trained_twice(tmp_path):
    # a space with one 2-valued gene has at most two distinct architectures
    space = parse_space({"genes": {"model.depth": {"type": "int", "low": 1, "high": 2}},
                         "fixed": {"model.modalities": ["text"]}}, "dedup.yaml")
    s = make(tmp_path, space=space, pop=8, generations=3)
    trained = run(s)
    assert trained <= 2
    cached = [r for r in s.rows if r["status"] == "cached"]
    assert cached and all("same architecture as #" in r["note"] for r in cached)
    assert len(s.rows) == 8 + 2 * 6


def test_too_large_genomes_are_rejected_before_training(tmp_path):
    space = parse_space({"genes": {"model.expert_dim": {"type": "int", "low": 8, "high": 512}},
                         "constraints": {"max_params": 60000}}, "small.yaml")
    s = make(tmp_path, space=space, pop=8, generations=2)
    run(s)
    rejected = [r for r in s.rows if r["status"] == "rejected"]
    assert rejected and all(r["fitness"] == PENALTY and "max_params" in r["note"] for r in rejected)
    assert all(r["params"] <= 60000 for r in s.rows if r["status"] == "ok")


def test_failures_get_a_penalty_and_the_search_goes_on(tmp_path):
    s = make(tmp_path)
    run(s, fail={0, 3})
    failed = [r for r in s.rows if r["status"] == "error"]
    assert [r["id"] for r in failed] == [0, 3]
    assert all(r["fitness"] == PENALTY and "boom" in r["note"] for r in failed)
    assert s.strategy.done
    s.on_trial_complete("unknown-trial", error=True)  # a crash report for nothing pending is ignored


def test_a_crashed_trial_process_is_recorded_as_error(tmp_path):
    s = make(tmp_path)
    s.suggest("x")
    s.on_trial_complete("x", None, error=True)
    assert s.rows[0]["status"] == "error" and "trial process failed" in s.rows[0]["note"]


def test_save_and_restore_bring_back_the_whole_search(tmp_path):
    """Tune's restore has lost custom searcher state before: ours must survive a round trip."""
    straight = make(tmp_path / "a")
    (tmp_path / "a").mkdir(exist_ok=True)
    run(straight)

    (tmp_path / "b").mkdir()
    first = make(tmp_path / "b")
    run(first, max_trials=8)
    first.suggest("in-flight")  # dies with the process
    first.save(str(tmp_path / "ckpt.json"))

    resumed = make(tmp_path / "b", seed=123)
    resumed.restore(str(tmp_path / "ckpt.json"))
    assert len(resumed.rows) == len(first.rows) and resumed.policy.known == first.policy.known
    run(resumed)
    strip = lambda rows: [{k: v for k, v in r.items() if k != "seconds"} for r in rows]  # noqa: E731
    assert strip(resumed.rows) == strip(straight.rows)
