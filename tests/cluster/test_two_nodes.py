"""A real two-node Ray cluster on this machine: a head and a second raylet on 127.0.0.1, each with
one CPU, token authentication on, in a temp dir and on a free port of their own (no other Ray on
the machine is touched: `ray stop` would stop them all, so each node's process group is killed).

Trials here are made long enough (16 epochs on 3000 rows, two genomes each) that the second
node's trial actor is up before the first node has finished its trial: Tune hands a pending trial
to an idle actor, so with trials shorter than an actor's start everything ends on one node.
"""
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(shutil.which("ray") is None, reason="no `ray` CLI")]
DATA = "synthetic:mosi?n=3000"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Cluster:
    def __init__(self, root: Path):
        self.root = root
        self.token = root / "auth_token"
        self.token.write_text(os.urandom(32).hex() + "\n")
        self.token.chmod(0o600)
        self.address = f"127.0.0.1:{_free_port()}"
        self.env = {k: v for k, v in os.environ.items()
                    if not k.startswith(("RAY_AUTH", "RAY_ADDRESS"))}
        self.env.update(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN_PATH=str(self.token))
        self.groups: list[int] = []

    def ray_start(self, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
        """`ray start ...` in a process group of its own: every process it leaves behind is in
        it (the raylet's workers are not, but they die with their raylet)."""
        proc = subprocess.Popen(["ray", "start", "--num-cpus", "1", "--disable-usage-stats",
                                 *args], env=env or self.env, text=True, start_new_session=True,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        self.groups.append(proc.pid)
        out, _ = proc.communicate(timeout=120)
        return subprocess.CompletedProcess(proc.args, proc.returncode, out)

    def start_head(self):
        port = self.address.rsplit(":", 1)[1]
        started = self.ray_start("--head", "--node-ip-address", "127.0.0.1", "--port", port,
                                 "--resources", '{"head_node": 1}', "--include-dashboard",
                                 "false", "--temp-dir", str(self.root / "ray"))
        assert started.returncode == 0, started.stdout[-3000:]

    def start_worker(self) -> int:
        started = self.ray_start("--address", self.address, "--node-ip-address", "127.0.0.1",
                                 "--resources", '{"worker_node": 1}')
        assert started.returncode == 0, started.stdout[-3000:]
        self.wait_nodes(2)
        return self.groups[-1]

    def wait_nodes(self, n: int, timeout=60):
        deadline = time.time() + timeout
        while time.time() < deadline:
            status = subprocess.run(["ray", "status", "--address", self.address], env=self.env,
                                    capture_output=True, text=True, timeout=60).stdout
            if status.split("Pending:")[0].count(" node_") == n:
                return
            time.sleep(1)
        raise AssertionError(f"the cluster did not reach {n} nodes")

    def kill(self, group: int) -> None:
        """SIGKILL a node: its process group, and the workers its raylet started."""
        pids = _members(group)
        for pid in pids + [p for p in _all_pids() if _ppid(p) in pids]:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def node_workers(self, group: int, title: str) -> list[int]:
        """Workers of that node's raylet whose process title starts with TITLE."""
        raylets = [p for p in _members(group) if "raylet/raylet" in _cmdline(p)]
        return [p for p in _all_pids() if _ppid(p) in raylets and _cmdline(p).startswith(title)]

    def search(self, *args, env=None, **kw):
        return subprocess.run([sys.executable, "-m", "evo_msa", "search", *args], cwd=ROOT,
                              env=env or self.env, text=True, capture_output=True, timeout=300,
                              **kw)

    def start_search(self, *args) -> subprocess.Popen:
        return subprocess.Popen([sys.executable, "-u", "-m", "evo_msa", "search", *args],
                                cwd=ROOT, env=self.env, text=True, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, start_new_session=True)


def _all_pids() -> list[int]:
    return [int(p) for p in os.listdir("/proc") if p.isdigit()]


def _stat(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return ["?", "0", "0"]


def _ppid(pid: int) -> int:
    return int(_stat(pid)[1])


def _members(group: int) -> list[int]:
    return [p for p in _all_pids() if int(_stat(p)[2]) == group]


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_text().replace("\0", " ").strip()
    except OSError:
        return ""


@pytest.fixture(scope="module")
def cluster():
    # a short path: Ray's unix sockets live under the temp dir (108 bytes at most)
    root = Path(tempfile.mkdtemp(prefix="evo-ray-"))
    c = Cluster(root)
    try:
        c.start_head()
        yield c
    finally:
        for group in c.groups:
            c.kill(group)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def worker(cluster):
    group = cluster.start_worker()
    yield group
    cluster.kill(group)
    cluster.wait_nodes(1)


@pytest.fixture(scope="module")
def space(tmp_path_factory) -> str:
    """The tiny space with trials of a few seconds (see the module's note)."""
    s = yaml.safe_load((ROOT / "search_spaces" / "tiny.yaml").read_text())
    s["fixed"].update({"train.epochs": 16, "train.patience": 16})
    path = tmp_path_factory.mktemp("space") / "tiny.yaml"
    path.write_text(yaml.safe_dump(s))
    return str(path)


def board(run: Path) -> pd.DataFrame:
    return pd.read_csv(run / "leaderboard.csv")


def test_a_search_runs_on_both_nodes(cluster, worker, space, tmp_path):
    # the data reaches the trials from its path (--data-on-nodes), given relative to the cwd
    # (the search's): trials run in folders of their own
    import pickle

    from evo_msa.data import load_data

    data = tmp_path / "d.pkl"
    data.write_bytes(pickle.dumps(_mmsa(load_data("synthetic:mosi?n=3000", normalize=False))))
    run = tmp_path / "run"
    t0 = time.time()
    result = cluster.search("--space", space, "--pop", "4", "--generations", "2", "--address",
                            cluster.address, "--data", os.path.relpath(data, ROOT),
                            "--data-on-nodes", "--final-seeds", "--out", str(run))
    took = time.time() - t0
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    b = board(run)
    # trained on either node: whole, or stopped at a rung by successive halving (a batch of 4)
    assert len(b) == 8 and b["status"].isin(["ok", "early-stopped"]).all(), b[["status", "note"]]
    nodes = set(b["node"])
    assert len(nodes) == 2, nodes  # host:node-id, one per raylet though both share the host
    assert all(n.startswith(socket.gethostname() + ":") for n in nodes)
    assert set(b["device"]) == {"cpu"}
    print(f"two-node search: {took:.1f}s, nodes {sorted(nodes)}")


def _mmsa(data) -> dict:
    """MSAData back to the MMSA pickle layout the loader reads."""
    out = {}
    for name, split in data.splits.items():
        part = {"id": list(split.ids) or [f"{name}_{i}" for i in range(len(split))],
                "regression_labels": split.regression}
        for m, x in split.features.items():
            part[m] = x
            part[f"{m}_lengths"] = split.lengths[m]
        out[name] = part
    return out


def test_losing_a_node_mid_search(cluster, worker, space, tmp_path):
    run = tmp_path / "run"
    proc = cluster.start_search("--space", space, "--pop", "6", "--generations", "2",
                                "--address", cluster.address, "--data", DATA, "--final-seeds",
                                "--out", str(run))
    try:
        deadline = time.time() + 120
        while not cluster.node_workers(worker, "ray::ImplicitFunc.train"):
            assert proc.poll() is None and time.time() < deadline, "no trial ran on the worker"
            time.sleep(0.2)
        before = set(board(run)["id"]) if (run / "leaderboard.csv").is_file() else set()
        cluster.kill(worker)  # mid-trial: its actor is training
        out, _ = proc.communicate(timeout=240)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 0, out[-3000:]
    b = board(run)
    # every training of the budget is recorded (whole, stopped at a rung, or lost with its node);
    # a known architecture answered from the cache comes on top
    assert (b["status"] != "cached").sum() == 12 and b["id"].is_unique
    assert set(b["status"]) <= {"ok", "early-stopped", "error", "cached"}, b[["status", "note"]]
    lost = b[b["status"] == "error"]["note"].astype(str)
    assert lost.str.contains("node was lost").all(), lost
    # Tune saw the trial die with its node; it was retried (max_failures=1) or penalised
    errors = list((run / "ray").glob("tune-*/*/error.txt"))
    assert errors, "no trial failed: the worker was killed between trials"
    assert "actor" in errors[0].read_text().lower()  # the trial's actor died with the node
    after = b[~b["id"].isin(before)]
    head_nodes = set(after["node"]) - {""}
    assert len(head_nodes) == 1, head_nodes  # what finished after the loss ran on the head
    print(f"node loss: {len(errors)} trial error(s), statuses {b['status'].value_counts().to_dict()}")


def test_resume_after_the_driver_is_killed(cluster, space, tmp_path):
    run = tmp_path / "run"
    args = ["--space", space, "--pop", "4", "--generations", "2", "--batch-genomes", "1",
            "--address", cluster.address, "--data", DATA, "--final-seeds", "--out", str(run)]
    proc = cluster.start_search(*args)
    try:
        deadline = time.time() + 120
        while not ((run / "leaderboard.csv").is_file() and len(board(run)) >= 2):
            assert proc.poll() is None and time.time() < deadline, "the search made no progress"
            time.sleep(0.2)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    done = len(json.loads((run / "state.json").read_text())["evaluations"])
    resumed = cluster.search("--resume", str(run))  # the address comes from its search.json
    assert resumed.returncode == 0, resumed.stdout[-2000:] + resumed.stderr[-2000:]
    assert f"resumed: {done} evaluations already done" in resumed.stdout
    b = board(run)
    assert len(b) == 8 and b["id"].is_unique and (run / "best_genome.json").is_file()


def test_a_worker_without_the_token_is_refused(cluster):
    env = {k: v for k, v in cluster.env.items() if not k.startswith("RAY_AUTH")}
    env.update(HOME=str(cluster.root / "nobody"), RAY_gcs_server_port_wait_time_s="3")
    refused = cluster.ray_start("--address", cluster.address, env=env)
    assert refused.returncode != 0
    assert "InvalidAuthToken" in refused.stdout or "Authentication" in refused.stdout
    cluster.kill(cluster.groups[-1])
    cluster.wait_nodes(1, timeout=10)


def test_a_driver_with_a_wrong_token_gets_one_line(cluster, tmp_path):
    bad = tmp_path / "token"
    bad.write_text("not-the-token\n")
    t0 = time.time()
    result = cluster.search("--space", str(ROOT / "search_spaces" / "tiny.yaml"), "--address",
                            cluster.address, "--out", str(tmp_path / "run"),
                            env={**cluster.env, "RAY_AUTH_TOKEN_PATH": str(bad)})
    took = time.time() - t0
    assert result.returncode == 2, result.stderr[-2000:]
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and cluster.address in lines[0] and "token" in lines[0], lines
    assert not (tmp_path / "run").exists()
    assert took < 30, took
    print(f"wrong token: exit 2 after {took:.1f}s")
