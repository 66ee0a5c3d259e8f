"""The record layer: leaderboard rows round-trip through the one CSV reader, best_genome.json
through its one reader, and a run's JSON files through the one JSON reader."""
import math

import pytest

from evo_msa.errors import UserError
from evo_msa.metrics import Objective
from evo_msa.record import rundir
from evo_msa.record.best import best_genome_record, loss_of, objectives, read_best
from evo_msa.record.evaluation import Evaluation
from evo_msa.record.leaderboard import (
    leaderboard_frame,
    read_leaderboard,
    read_leaderboards,
    run_objective,
    usable_rows,
)
from evo_msa.record.ranking import pareto_front, ranked
from evo_msa.record.rundir import RunDir, load_json
from evo_msa.space.fitness import Fitness
from evo_msa.status import Status


def _ev(i, fit, status=Status.OK, key=None, genes=None):
    return Evaluation(id=i, generation=0, parents=[], genome=[0.5], genes=genes or {"g": i},
                      config={}, key=key or f"k{i}", params=10 * (i + 1), status=status,
                      fitness=fit, seeds=[0])


def test_the_status_nan_survives_the_csv_and_empty_cells_stay_missing(tmp_path):
    fitness = Fitness((Objective("mae", "min"),))
    evs = [_ev(0, (0.5,)), _ev(1, None, Status.NAN), _ev(2, (0.4,), genes={"g": "None"})]
    run = RunDir(tmp_path)
    run.write_csv(rundir.LEADERBOARD, leaderboard_frame(evs, fitness))
    frame = read_leaderboard(tmp_path / rundir.LEADERBOARD)
    assert list(frame["status"]) == ["ok", "nan", "ok"]
    assert frame["gene:g"].tolist()[2] == "None"  # a gene's text is not read as missing
    assert math.isnan(frame["fitness"][1])
    assert list(usable_rows(frame)["id"]) == [0, 2]
    merged = read_leaderboards([str(tmp_path)])
    assert list(merged["run"].unique()) == [tmp_path.name]


def test_a_damaged_or_missing_leaderboard_is_one_line(tmp_path):
    bad = tmp_path / rundir.LEADERBOARD
    bad.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(UserError, match="damaged"):
        read_leaderboard(bad)
    with pytest.raises(UserError, match="no leaderboard.csv there"):
        read_leaderboards([str(tmp_path / "nowhere")])


def test_ranking_keeps_one_per_architecture_and_the_front_is_non_dominated():
    fitness = Fitness((Objective("mae", "min"), Objective("params", "min")))
    evs = [_ev(0, (0.5, 10.0)), _ev(1, (0.4, 20.0)), _ev(2, (0.6, 30.0)),
           _ev(3, (0.3, 40.0), key="k1"), _ev(4, None, Status.ERROR)]
    assert [e.id for e in ranked(evs, fitness, 3)] == [3, 0, 2]  # 1 shares 3's architecture
    assert {e.id for e in pareto_front(evs, fitness)} == {0, 3}


def test_best_genome_json_is_written_and_read_in_one_place(tmp_path):
    fitness = Fitness((Objective("corr", "max"), Objective("params", "min")))
    record = best_genome_record(_ev(7, (0.8, 70.0)), (0.75, 70.0), 2, fitness, "tiny.yaml")
    RunDir(tmp_path).write_json(rundir.BEST, record)
    best = read_best(tmp_path)
    assert best["id"] == 7 and best["fitness"] == 0.75 and best["evaluations"] == 2
    assert objectives(best) == [Objective("corr", "max"), Objective("params", "min")]
    assert loss_of(best) == Objective("corr", "max").loss(0.75)
    assert run_objective([str(tmp_path)]) == Objective("corr", "max")
    # an older record names only its primary objective
    assert objectives({"metric": "mae", "direction": "min"}) == [Objective("mae", "min")]
    assert read_best(tmp_path / "elsewhere") is None


def test_one_json_reader_for_run_files(tmp_path):
    (tmp_path / "x.json").write_text("{not json")
    with pytest.raises(UserError, match=r"x.json: damaged, not valid JSON"):
        load_json(tmp_path / "x.json", "a test file")
    assert load_json(tmp_path / "y.json", "a test file", required=False) is None
    with pytest.raises(UserError, match="missing"):
        load_json(tmp_path / "y.json", "a test file")
    (tmp_path / "d.json").mkdir()
    with pytest.raises(UserError, match="is a directory"):
        load_json(tmp_path / "d.json", "a test file")
    (tmp_path / rundir.BEST).write_text("[1, 2]")
    with pytest.raises(UserError, match="not a best genome record"):
        read_best(tmp_path)


def test_one_csv_reader_for_run_files(tmp_path):
    from evo_msa.record.rundir import load_csv

    (tmp_path / "a.csv").write_text("status,x\nnan,1\nok,\n")
    frame = load_csv(tmp_path / "a.csv", "a test table")
    assert list(frame["status"]) == ["nan", "ok"] and math.isnan(frame["x"][1])
    assert RunDir(tmp_path).read_csv("a.csv", "a test table").equals(frame)
    with pytest.raises(UserError, match="missing"):
        load_csv(tmp_path / "b.csv", "a test table")
    (tmp_path / "c.csv").write_text("")
    with pytest.raises(UserError, match="damaged, not a readable CSV"):
        load_csv(tmp_path / "c.csv", "a test table")


def test_a_genome_file_a_user_names_is_read_in_the_same_place(tmp_path):
    from evo_msa.record.best import read_genome

    fitness = Fitness((Objective("mae", "min"),))
    RunDir(tmp_path).write_json(rundir.BEST, best_genome_record(_ev(1, (0.5,)), (0.5,), 1,
                                                                fitness, "s.yaml"))
    assert read_genome(tmp_path / rundir.BEST, 1) == [0.5]
    (tmp_path / "bare.json").write_text("[0.25, 1]")
    assert read_genome(tmp_path / "bare.json", 2) == [0.25, 1.0]
    with pytest.raises(UserError, match="'genome' must be a list of 3 numbers"):
        read_genome(tmp_path / "bare.json", 3)
