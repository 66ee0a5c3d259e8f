"""Search options and evolution settings: every count and budget has a sane upper bound, on
the command line, in the Python API and in a search.json edited before --resume."""
import json
import shutil
import subprocess
import sys
import time
from dataclasses import asdict

import pytest

from evo_msa.errors import UserError
from evo_msa.nas.options import SearchOptions
from evo_msa.nas.strategies import StrategySettings

TINY = "search_spaces/tiny.yaml"

TOO_BIG = [
    ("pop", 10 ** 9, "--pop must be an integer in 2..10000"),
    ("generations", 10 ** 9, "--generations must be"),
    ("patience", 10 ** 9, "--patience must be"),
    ("batch_genomes", 10 ** 9, "--batch-genomes must be"),
    ("final_top", 10 ** 6, "--final-top must be"),
    ("final_epochs", 10 ** 9, "--final-epochs must be"),
    ("final_seeds", list(range(1000)), "--final-seeds must be"),
    ("final_seeds", [2 ** 40], "--final-seeds must be"),
    ("final_seeds", [1, 1], "--final-seeds must be"),
    ("cpus_per_trial", 1e9, "--cpus-per-trial must be"),
    ("gpus_per_trial", float("inf"), "--gpus-per-trial must be"),
    ("seed", -1, "--seed must be"),
    ("finalists", 0, "--finalists must be an integer in 1..100"),
    ("finalist_share", 0.9, "--finalist-share must be a number in 0..0.5"),
    ("finalist_share", float("nan"), "--finalist-share must be"),
    ("pop", "32", "--pop must be"),  # a string edited into search.json
    ("pop", True, "--pop must be"),
    ("cpus_per_trial", float("nan"), "--cpus-per-trial must be"),
    ("data", 5, "--data must be"),
    ("evolution", [1], "evolution must be a mapping"),
    ("out", ["x"], "out must be a path"),
]


@pytest.mark.parametrize("field, value, message", TOO_BIG)
def test_out_of_range_options_are_one_line(field, value, message):
    opts = SearchOptions(space=TINY, **{field: value})
    start = time.perf_counter()
    with pytest.raises(UserError) as err:
        opts.validate()
    assert time.perf_counter() - start < 1
    assert message in str(err.value) and "\n" not in str(err.value)


def test_budget_product_is_bounded():
    with pytest.raises(UserError, match="--pop x --generations must be at most"):
        SearchOptions(space=TINY, pop=10_000, generations=10_000).validate()
    SearchOptions(space=TINY, pop=3, generations=2).validate()


@pytest.mark.parametrize("evolution, message", [
    ({"elitez": 1}, "evolution: unknown setting 'elitez'"),
    ({"pop_size": 8}, "evolution.pop_size is set by --pop"),
    ({"elites": 6}, "evolution.elites must be an integer in 0..5"),
    ({"elites": -1}, "evolution.elites must be"),
    ({"cx_prob": 1.5}, "evolution.cx_prob must be a probability"),
    ({"mut_sigma": "big"}, "evolution.mut_sigma must be"),
    ({"tournament_k": 10 ** 9}, "evolution.tournament_k must be"),
])
def test_evolution_overrides_are_checked(evolution, message):
    with pytest.raises(UserError, match=message.replace(".", r"\.")):
        SearchOptions(space=TINY, pop=6, evolution=evolution).validate()


def test_evolution_settings_check_themselves():
    with pytest.raises(UserError, match="evolution.elites must be an integer in 0..1"):
        StrategySettings(pop_size=2)  # elites 2 of 2: no child would ever be bred
    with pytest.raises(UserError, match="--pop must be"):
        StrategySettings(pop_size=10 ** 9)
    assert StrategySettings(pop_size=3).elites == 2
    settings = SearchOptions(space=TINY, pop=4, evolution={"elites": 1}).evolution_settings()
    assert (settings.pop_size, settings.elites) == (4, 1)


def _run_dir(tmp_path, **edits):
    run = tmp_path / "run"
    run.mkdir()
    shutil.copy(TINY, run / "tiny.yaml")
    saved = {**asdict(SearchOptions(space=TINY, pop=4, generations=1)), **edits}
    (run / "search.json").write_text(json.dumps(saved))
    return run


@pytest.mark.parametrize("edits, message", [
    ({"pop": 10 ** 9}, "--pop must be"),
    ({"final_seeds": list(range(10 ** 4))}, "--final-seeds must be"),
    ({"evolution": {"elites": 4}}, "evolution.elites must be"),
    ({"evolution": {"typo": 1}}, "unknown setting 'typo'"),
])
def test_resume_rechecks_an_edited_search_json(tmp_path, edits, message):
    from evo_msa.nas.runner import search

    run = _run_dir(tmp_path, **edits)
    with pytest.raises(UserError, match=message):
        search(SearchOptions(), resume=str(run))
    assert sorted(p.name for p in run.iterdir()) == ["search.json", "tiny.yaml"]


def test_cli_pop_of_a_billion_is_refused_fast(tmp_path):
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "evo_msa", "search", "--space", TINY,
                           "--pop", str(10 ** 9), "--out", str(tmp_path / "run")],
                          capture_output=True, text=True, timeout=120)
    assert time.perf_counter() - start < 60
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "--pop must be an integer in 2..10000" in lines[0]
    assert not (tmp_path / "run").exists()
