"""A run survives its user: Ctrl-C, SIGTERM and kill -9 mid-search, two processes on one run,
Ctrl-C in the final trainer, damaged checkpoints, a full disk (real local Ray, tiny space)."""
import errno
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path

import pandas as pd
import pytest

from evo_msa.errors import UserError
from evo_msa.io import StorageError
from evo_msa.nas.options import SearchOptions
from evo_msa.record.rundir import RunDir

ROOT = Path(__file__).resolve().parents[2]
TINY = str(ROOT / "search_spaces" / "tiny.yaml")
pytestmark = pytest.mark.slow
ARGS = ["search", "--space", TINY, "--pop", "6", "--generations", "3", "--seed", "5",
        "--cpus-per-trial", "1", "--batch-genomes", "1"]


def cli(*args, **kw):
    return subprocess.run([sys.executable, "-m", "evo_msa", *args], cwd=ROOT, text=True,
                          capture_output=True, timeout=600, **kw)


def start(*args, out=None):
    """A search in its own process group, as a terminal would run it."""
    return subprocess.Popen([sys.executable, "-u", "-m", "evo_msa", *args], cwd=ROOT, text=True,
                            stdout=out or subprocess.PIPE, stderr=subprocess.STDOUT,
                            start_new_session=True)


def wait_rows(run: Path, n: int, proc, timeout=300):
    board = run / "leaderboard.csv"
    deadline = time.time() + timeout
    while time.time() < deadline:
        if board.is_file() and len(pd.read_csv(board)) >= n:
            return len(pd.read_csv(board))
        assert proc.poll() is None, "the search ended before it could be interrupted"
        time.sleep(0.2)
    raise AssertionError("the search made no progress")


@pytest.fixture(scope="module")
def straight(tmp_path_factory):
    out = tmp_path_factory.mktemp("straight") / "run"
    result = cli(*ARGS, "--final-seeds", "--out", str(out))
    assert result.returncode == 0, result.stderr[-2000:]
    return json.loads((out / "best_genome.json").read_text())


@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143),
                                       (signal.SIGKILL, -9)])
def test_interrupt_then_resume_matches_an_uninterrupted_run(tmp_path, straight, sig, code):
    run = tmp_path / "run"
    proc = start(*ARGS, "--final-seeds", "--out", str(run))
    done_before = wait_rows(run, 8, proc)
    os.killpg(proc.pid, sig)  # the whole process group, as Ctrl-C in a terminal does
    t0 = time.time()
    output, _ = proc.communicate(timeout=60)
    assert proc.returncode == code
    if sig != signal.SIGKILL:
        assert time.time() - t0 < 20  # stops within seconds
        assert f"resume with:  evo-msa search --resume {run}" in output
        assert "evaluations done and checkpointed" in output
    assert not (run / "best_genome.json").exists()  # nothing is concluded from a partial search
    assert not (run / "final.json").exists()
    done = len(json.loads((run / "state.json").read_text())["evaluations"])
    assert done >= done_before

    resumed = cli("search", "--resume", str(run))
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert f"resumed: {done} evaluations already done" in resumed.stdout
    if sig == signal.SIGKILL:
        assert "taking over the stale lock" in resumed.stdout
    best = json.loads((run / "best_genome.json").read_text())
    assert (best["genome"], best["fitness"]) == (straight["genome"], straight["fitness"])
    assert pd.read_csv(run / "leaderboard.csv")["id"].is_unique  # nothing evaluated twice


def test_a_run_in_use_is_locked(tmp_path):
    run = tmp_path / "run"
    proc = start(*ARGS, "--final-seeds", "--out", str(run))
    try:
        wait_rows(run, 1, proc)
        second = cli("search", "--resume", str(run))
        assert second.returncode == 2
        assert "in use by pid" in second.stderr and len(second.stderr.strip().splitlines()) == 1
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def test_ctrl_c_in_the_final_trainer_resumes_only_the_final_part(tmp_path):
    run = tmp_path / "run"
    proc = start("search", "--space", TINY, "--pop", "4", "--generations", "1", "--seed", "1",
                 "--final-seeds", "0", "1", "2", "3", "--final-epochs", "4",
                 "--data", "synthetic:mosi?n=20000",
                 "--out", str(run))
    lines = []
    for line in proc.stdout:
        lines.append(line)
        if line.startswith("final"):
            break
    time.sleep(1.0)
    os.killpg(proc.pid, signal.SIGINT)
    rest, _ = proc.communicate(timeout=60)
    assert proc.returncode == 130, "".join(lines) + rest
    assert (run / "best_genome.json").is_file() and not (run / "final.json").exists()
    resumed = cli("search", "--resume", str(run), "--final-seeds", "0")
    assert resumed.returncode == 2 and "drop --final-seeds" in resumed.stderr  # its own options
    resumed = cli("search", "--resume", str(run))
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "resumed: 4 evaluations already done" in resumed.stdout
    assert "gen " not in resumed.stdout  # no evaluation again: only the final trainer
    assert json.loads((run / "final.json").read_text())["genomes"][0]["seeds"] == [0, 1, 2, 3]


def _resumable(tmp_path) -> Path:
    run = tmp_path / "run"
    run.mkdir()
    (run / "search.json").write_text(json.dumps(asdict(SearchOptions(space=TINY))))
    (run / "tiny.yaml").write_text(Path(TINY).read_text())
    return run


def test_a_damaged_checkpoint_is_one_line_and_names_the_previous_one(tmp_path):
    run = _resumable(tmp_path)
    (run / "state.json").write_text('{"strategy": {"name": "generational", "rng"')  # cut short
    result = cli("search", "--resume", str(run))
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1
    assert "state.json: damaged" in result.stderr and "no usable previous checkpoint" in result.stderr
    (run / "state.prev.json").write_text(json.dumps({"evaluations": [{}] * 7}))
    result = cli("search", "--resume", str(run))
    assert result.returncode == 2
    assert "previous checkpoint state.prev.json is intact (7 evaluations)" in result.stderr
    assert (run / "state.json").is_file() and (run / "state.prev.json").is_file()  # nothing lost
    (run / "search.json").write_text("{not json")
    result = cli("search", "--resume", str(run))
    assert result.returncode == 2 and "search.json: damaged" in result.stderr


def test_checkpoints_keep_the_previous_one_and_survive_a_full_disk(tmp_path, monkeypatch):
    run = RunDir(tmp_path)
    run.checkpoint({"evaluations": [1]})
    run.checkpoint({"evaluations": [1, 2]})
    assert json.loads((tmp_path / "state.prev.json").read_text()) == {"evaluations": [1]}

    import evo_msa.io as io

    def full(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(io.os, "fsync", full)
    with pytest.raises(StorageError) as err:
        run.checkpoint({"evaluations": [1, 2, 3]})
    message = str(err.value)
    assert "state.json: cannot write (No space left on device)" in message and "\n" not in message
    assert json.loads((tmp_path / "state.json").read_text()) == {"evaluations": [1, 2]}
    assert not [p for p in tmp_path.iterdir() if ".tmp" in p.name]  # no debris
    assert isinstance(err.value, UserError)  # the CLI prints it as one line, exit 2


def test_a_full_disk_stops_a_search_with_one_line_and_an_intact_checkpoint(tmp_path, monkeypatch):
    import evo_msa.io as io

    calls = {"n": 0}
    real = io.os.fsync
    run = tmp_path / "run"

    def fills_up(fd):
        # the disk fills a few writes after the first checkpoint (how many files come before
        # it depends on the order trials finish in)
        calls["n"] += (run / "state.json").exists()
        if calls["n"] > 6:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real(fd)

    monkeypatch.setattr(io.os, "fsync", fills_up)
    from evo_msa.nas.runner import search

    opts = SearchOptions(space=TINY, pop=4, generations=3, seed=2, final_seeds=[],
                         batch_genomes=1, out=str(run))
    with pytest.raises(StorageError, match="No space left on device"):
        search(opts, log=lambda line: None)
    state = json.loads((run / "state.json").read_text())
    assert 1 <= len(state["evaluations"]) < 12
    assert not (run / ".lock").exists()  # the run is released
