"""End-to-end searches on a real local Ray (slow-ish: each starts Ray once)."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

from evo_msa.nas.runner import SearchOptions, search

ROOT = Path(__file__).resolve().parents[2]
TINY = str(ROOT / "search_spaces" / "tiny.yaml")
pytestmark = pytest.mark.slow

OUTPUTS = ["search.json", "tiny.yaml", "state.json", "leaderboard.csv", "best_genome.json",
           "progress.png", "final.json", "final.csv"]


def cli(*args, **kw):
    return subprocess.run([sys.executable, "-m", "evo_msa", *args], cwd=ROOT, text=True,
                          capture_output=True, timeout=600, **kw)


def test_noise_only_modality_is_masked_out(tmp_path):
    # the tiny space with its modality mask evolved and the rest fixed, trained long enough
    # (10 epochs) for a noise-only input to cost validation loss
    space = yaml.safe_load(Path(TINY).read_text())
    space["genes"] = {"model.modalities": space["genes"]["model.modalities"]}
    space["fixed"].update({"model.depth": 1, "train.epochs": 10, "train.patience": 10,
                           "train.batch_size": 64, "train.lr": 3.0e-3})
    # each mask is trained once (repeats are cached): a 3-seed mean keeps one lucky draw
    # from deciding it
    space["fitness"] = {"metric": "loss", "seeds": 3}
    space["final"] = {"epochs": 10}  # the final trainer as the search's (not up to 50 epochs)
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(space))
    run = search(SearchOptions(space=str(path), data="synthetic:mosi?noise=vision&seed=3", pop=10,
                               generations=3, seed=0, final_seeds=[0], out=str(tmp_path / "run")),
                 log=lambda line: None)
    for name in OUTPUTS:
        assert (run / name).is_file(), name
    best = json.loads((run / "best_genome.json").read_text())
    assert "vision" not in best["decoded"]["model.modalities"]
    assert "text" in best["decoded"]["model.modalities"]
    board = pd.read_csv(run / "leaderboard.csv")
    assert (board["status"] == "ok").sum() >= 4
    assert (board["status"] == "cached").sum() >= 1  # 7 masks only: repeats are not retrained
    final = json.loads((run / "final.json").read_text())
    assert final["genomes"][0]["test"]["mae"]["mean"] > 0  # test metrics only from the final trainer
    assert not any(c.startswith("test") for c in board.columns)  # selection never saw test


def test_failing_trials_are_penalised_and_the_search_finishes(tmp_path):
    space = yaml.safe_load(Path(TINY).read_text())
    # 7 coarse classes are not defined for [-1, 1] labels: those trials raise inside the worker
    space["genes"]["loss.coarse_classes"] = {"type": "categorical", "choices": [3, 7]}
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(space))
    run = search(SearchOptions(space=str(path), data="synthetic:sims?n=400", pop=6, generations=2,
                               seed=1, final_seeds=[], out=str(tmp_path / "run")),
                 log=lambda line: None)
    board = pd.read_csv(run / "leaderboard.csv")
    bad = board[board["status"] == "error"]
    assert len(bad) >= 1 and (bad["fitness"] == 1e6).all()
    assert bad["note"].str.contains("coarse classes are not defined").all()
    assert (board[board["gene:loss.coarse_classes"] == 3]["status"] == "ok").any()
    best = json.loads((run / "best_genome.json").read_text())
    assert best["decoded"]["loss.coarse_classes"] == 3


def test_resume_after_sigkill_matches_an_uninterrupted_run(tmp_path):
    args = ["search", "--space", TINY, "--pop", "6", "--generations", "3", "--seed", "5",
            "--final-seeds", "--cpus-per-trial", "1", "--batch-genomes", "1"]
    straight = cli(*args, "--out", str(tmp_path / "straight"))
    assert straight.returncode == 0, straight.stderr[-2000:]

    killed = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, "-m", "evo_msa", *args, "--out", str(killed)],
                            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    board = killed / "leaderboard.csv"
    deadline = time.time() + 300
    while time.time() < deadline:  # kill it in the middle of the second generation
        if board.is_file() and len(pd.read_csv(board)) >= 8:
            break
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    done_before = len(pd.read_csv(board))
    assert 8 <= done_before < 18, "the kill must land mid-search"

    resumed = cli("search", "--resume", str(killed))
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert f"resumed: {done_before} evaluations already done" in resumed.stdout
    a = json.loads((tmp_path / "straight" / "best_genome.json").read_text())
    b = json.loads((killed / "best_genome.json").read_text())
    assert (a["genome"], a["fitness"]) == (b["genome"], b["fitness"])
    ids = pd.read_csv(board)["id"]
    assert ids.is_unique  # nothing finished was evaluated twice


@pytest.mark.parametrize("args, message", [
    (["--space", "search_spaces/missing.yaml"], "no such search-space file"),
    (["--space", TINY, "--data", "/nonexistent/mosi.pkl"], "no such data file"),
    (["--space", TINY, "--pop", "1"], "--pop must be"),
    (["--space", TINY, "--gpus-per-trial", "-1"], "--gpus-per-trial must be"),
])
def test_bad_input_is_one_line_exit_2_and_no_run_directory(tmp_path, args, message):
    out = tmp_path / "run"
    result = cli("search", *args, "--out", str(out))
    assert result.returncode == 2
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not out.exists()


def test_bad_yaml_is_exit_2(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("genes:\n  model.depth: {type: int, low: 3, high: 1}\n")
    result = cli("search", "--space", str(bad), "--out", str(tmp_path / "run"))
    assert result.returncode == 2 and "low (3) > high (1)" in result.stderr
    assert not (tmp_path / "run").exists()


def test_steady_state_with_asha_spends_its_budget(tmp_path):
    run = search(SearchOptions(space=TINY, pop=6, generations=2, mode="steady-state", asha=True,
                               seed=2, final_seeds=[], out=str(tmp_path / "run")),
                 log=lambda line: None)
    board = pd.read_csv(run / "leaderboard.csv")
    # the budget counts trainings: rows answered from the cache come on top (their number
    # depends on the order asynchronous trials finish in)
    assert board["id"].is_unique and (board["status"] != "cached").sum() == 12
    assert set(board["status"]) <= {"ok", "cached", "early-stopped"}
    children = board[board["id"] >= 6]
    assert children["parents"].notna().all()  # every child came from a tournament
    assert (run / "best_genome.json").is_file() and (run / "progress.png").is_file()


def _tfrecords(path: Path):
    """The records of a TensorBoard event file (TFRecord framing: length, crc, data, crc)."""
    import struct

    data, at = path.read_bytes(), 0
    while at < len(data):
        (n,) = struct.unpack("<Q", data[at:at + 8])
        yield data[at + 12:at + 12 + n]
        at += 12 + n + 4


def test_pareto_search_retrains_the_front_and_tracks_to_tensorboard(tmp_path):
    from tensorboardX.proto.event_pb2 import Event

    space = yaml.safe_load(Path(TINY).read_text())
    space["fitness"] = {"objectives": [{"metric": "loss"}, {"metric": "params"}]}
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(space))
    run = search(SearchOptions(space=str(path), data="synthetic:mosi?n=300", pop=6,
                               generations=2, seed=0, final_seeds=[0], final_epochs=2,
                               track="tensorboard", out=str(tmp_path / "run")),
                 log=lambda line: None)
    board = pd.read_csv(run / "leaderboard.csv")
    front = board[board["pareto"]]
    assert len(front) >= 1 and (run / "pareto.png").stat().st_size > 1000
    final = json.loads((run / "final.json").read_text())
    retrained = [g["id"] for g in final["genomes"]]
    assert set(retrained) <= set(front["id"]) and len(retrained) == min(len(front), 8)
    for g in final["genomes"]:
        assert (run / "final" / f"rank{g['rank']}-id{g['id']}" / "seed_0" / "model.pt").is_file()

    tags, hparams = set(), 0
    folders = sorted((run / "tensorboard").glob("eval_*"))
    assert len(folders) >= (board["status"] == "ok").sum()
    for event_file in (run / "tensorboard").rglob("events.out.tfevents.*"):
        for record in _tfrecords(event_file):
            event = Event.FromString(record)
            tags |= {v.tag for v in event.summary.value}
            hparams += any(v.tag == "_hparams_/session_start_info" for v in event.summary.value)
    assert "valid/loss/seed_0" in tags and "fitness/loss" in tags
    assert hparams >= (board["status"] == "ok").sum()  # every trained genome's genes


def test_a_fine_tuning_search_screens_on_the_frozen_encoder(tmp_path, mosi_pickle, tiny_encoder):
    # the shipped fine-tuning space with a tiny random BERT and two short epochs
    raw = yaml.safe_load((ROOT / "search_spaces" / "haemsa_finetune.yaml").read_text())
    raw["genes"]["pretrained.finetune_layers"] = {"type": "categorical", "choices": [1, -1]}
    raw["fixed"].update({"pretrained.model": tiny_encoder, "pretrained.max_tokens": 16,
                         "train.epochs": 2, "train.patience": 2})
    assert raw["fidelity"] == {"screen": "frozen", "keep": "1/2"}
    space = tmp_path / "ft.yaml"
    space.write_text(yaml.safe_dump(raw))
    lines = []
    run = search(SearchOptions(space=str(space), data=mosi_pickle, budget=10, seed=1,
                               final_seeds=[], out=str(tmp_path / "run")), log=lines.append)
    assert any(line.startswith("trials 4 genome(s)") for line in lines)
    board = pd.read_csv(run / "leaderboard.csv")
    screened = board[board["status"] == "early-stopped"]
    assert len(screened) >= 2 and (screened["rung"] == 1).all()
    assert screened["note"].str.contains("screened out on the frozen encoder").all()
    best = json.loads((run / "best_genome.json").read_text())
    assert board.set_index("id").loc[best["id"], "status"] == "ok"  # never a screened one
