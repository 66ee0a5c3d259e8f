"""`--track mlflow`: a search leaves a local MLflow store beside it, one run per leaderboard row
and one for the final model; the API's on_final callback gets the final training's record."""
import math
from pathlib import Path

import pandas as pd
import pytest

mlflow = pytest.importorskip("mlflow")

from evo_msa import search  # noqa: E402
from evo_msa.cli import build_parser  # noqa: E402
from evo_msa.nas.mlflow_tracker import EXPERIMENT, STORE, store_uri  # noqa: E402
from evo_msa.nas.options import SearchOptions  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
BAR = ["search", "--space", "search_spaces/tiny.yaml", "--pop", "4", "--generations", "2",
       "--final-seeds", "0", "--track", "mlflow", "--out", "RUN"]


@pytest.fixture(scope="module")
def tracked(tmp_path_factory):
    """The issue's command (BAR) through the API, with a short final training."""
    args = build_parser().parse_args(BAR)
    opts = SearchOptions.from_args(args, out=None)
    finals = []
    out = tmp_path_factory.mktemp("mlflow") / "RUN"
    result = search(str(ROOT / opts.space), out=out, pop=opts.pop,
                    generations=opts.generations, final_seeds=opts.final_seeds,
                    track=opts.track, final_epochs=4, log=lambda line: None,
                    on_final=finals.append)
    return result, finals


def test_the_store_has_a_run_per_leaderboard_row_and_one_for_the_final_model(tracked):
    result, _ = tracked
    assert (result / STORE).is_file()
    runs = _runs(result)
    board = pd.read_csv(result / "leaderboard.csv")
    evals = runs[runs["tags.evo_msa.kind"] == "evaluation"]
    assert sorted(evals["tags.evo_msa.id"].astype(int)) == sorted(board["id"])
    mine = evals.set_index(evals["tags.evo_msa.id"].astype(int)).loc[board["id"]]
    ok = board["status"].eq("ok").to_numpy()
    assert mine["metrics.fitness"].to_numpy()[ok] == pytest.approx(board["fitness"][ok])
    assert (mine["params.model.depth"].astype(int).to_numpy() == board["gene:model.depth"]).all()
    model = runs[runs["tags.evo_msa.kind"] == "final_model"]
    assert len(model) == 1  # the final model: the pick or an ensemble
    assert math.isfinite(model["metrics.test_per_seed_mae_mean"].iloc[0])
    genomes = runs[runs["tags.evo_msa.kind"] == "final_genome"]
    assert len(genomes) == len(result.final["genomes"]) >= 1


def test_on_final_gets_the_final_record_and_the_result_its_metrics(tracked):
    result, finals = tracked
    assert len(finals) == 1 and finals[0]["genomes"][0]["seeds"] == [0]
    per_seed = finals[0]["final_model"]["test"]["per_seed"]
    assert result.final_metrics["mae"]["mean"] == per_seed["mae"]["mean"]


def _runs(result) -> pd.DataFrame:
    """mlflow.search_runs over the run's own store (the tracking URI restored after)."""
    before = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(store_uri(result))
    try:
        return mlflow.search_runs(experiment_names=[EXPERIMENT])
    finally:
        mlflow.set_tracking_uri(before)
