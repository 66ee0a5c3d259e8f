"""Joining a cluster fails in one line; a search's own Ray always has token authentication; trials
can read the data from its path (--data-on-nodes)."""
import os
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from evo_msa.data import load_data
from evo_msa.nas.evaluators.haemsa import search_split

ROOT = Path(__file__).resolve().parents[2]


def test_an_unreachable_address_is_one_line_and_exit_2(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        address = f"127.0.0.1:{s.getsockname()[1]}"  # nothing listens once it is closed
    t0 = time.time()
    result = subprocess.run([sys.executable, "-m", "evo_msa", "search", "--space",
                             "search_spaces/tiny.yaml", "--address", address, "--out",
                             str(tmp_path / "run")], cwd=ROOT, text=True, capture_output=True,
                            timeout=120)
    took = time.time() - t0
    assert result.returncode == 2, result.stderr[-2000:]
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    assert f"cannot reach the Ray cluster at {address}: Connection refused" in lines[0]
    assert not (tmp_path / "run").exists()
    assert took < 20, took


# A search's own Ray, started with RAY_AUTH_MODE=disabled in the environment; a client without
# the token is refused, one with it (Ray's default file, ~/.ray/auth_token) gets in.
LOCAL = textwrap.dedent("""
    import os, re, subprocess, sys
    import ray
    from ray._raylet import AuthenticationMode, get_authentication_mode
    from evo_msa.nas.options import SearchOptions
    from evo_msa.nas.ray_session import connect_ray

    join = "import ray; ray.init(address=%r); print('JOINED')"
    with connect_ray(SearchOptions()):
        # a client on this machine, with this session's environment but for its token mode
        env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_AUTH")}
        env["RAY_gcs_server_port_wait_time_s"] = "2"
        print("mode", get_authentication_mode() == AuthenticationMode.TOKEN)
        gcs = ray.get_runtime_context().gcs_address
        # every port of this Ray (its processes are ours and our children's) is on loopback
        def family(pid):
            kids = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True,
                                  text=True).stdout.split()
            return {pid}.union(*[family(int(k)) for k in kids])
        mine = family(os.getpid())
        listening = [line.split()[3] for line in subprocess.run(
            ["ss", "-ltnpH"], capture_output=True, text=True).stdout.splitlines()
            if {int(p) for p in re.findall(r"pid=(\\d+)", line)} & mine]
        print("loopback", bool(listening) and all(
            a.rsplit(":", 1)[0].strip("[]").removeprefix("::ffff:").startswith("127.")
            for a in listening))
        for mode in ("disabled", "token"):
            r = subprocess.run([sys.executable, "-c", join % gcs], capture_output=True,
                               text=True, env={**env, "RAY_AUTH_MODE": mode}, timeout=120)
            print(mode, "JOINED" in r.stdout, "InvalidAuthToken" in r.stderr)
    # every process of that Ray is gone (killed at once: they ignore SIGTERM), the agents the
    # raylet started included
    import time
    def running(pid):
        try:
            with open(f"/proc/{pid}/stat") as fh:
                return fh.read().rsplit(")", 1)[1].split()[0] != "Z"  # a zombie is dead
        except OSError:
            return False
    ray_pids = mine - {os.getpid()}
    deadline = time.time() + 10
    while any(running(p) for p in ray_pids) and time.time() < deadline:
        time.sleep(0.2)
    print("stopped", len(ray_pids) >= 3 and not any(running(p) for p in ray_pids))
    # the environment is back as it was: the user's RAY_AUTH_MODE, no variable of ours left
    print("restored", os.environ.get("RAY_AUTH_MODE") == "disabled"
          and "TUNE_DISABLE_SIGINT_HANDLER" not in os.environ
          and "TUNE_MAX_PENDING_TRIALS_PG" not in os.environ
          and "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER" not in os.environ)
""")


@pytest.mark.slow
def test_a_local_search_starts_ray_with_token_auth(tmp_path):
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", "PYTHONPATH": str(ROOT)}
    env.pop("RAY_ADDRESS", None)
    result = subprocess.run([sys.executable, "-c", LOCAL], cwd=tmp_path, env=env, text=True,
                            capture_output=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    said = [w for line in result.stdout.splitlines() if not line.startswith("note")
            for w in line.split()]  # "note": a token file that was not private yet
    assert said == ["mode", "True", "loopback", "True", "disabled", "False", "True",
            "token", "True", "False", "stopped", "True", "restored", "True"], result.stdout


def test_trials_can_read_the_data_themselves():
    search_split.cache_clear()
    data = search_split("synthetic:mosi?n=300")
    assert sorted(data.splits) == ["train", "valid"]  # selection never sees test
    full = load_data("synthetic:mosi?n=300")
    assert (data.splits["train"].features["text"] == full.splits["train"].features["text"]).all()
    assert search_split("synthetic:mosi?n=300") is data  # read once per trial actor
