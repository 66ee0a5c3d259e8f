"""Hand check of issue #20: every hostile file or option is refused by the real command in
under 60 s with one line on stderr, exit code 2, and under 3 GB of peak RSS.

    python experiments/hostile_checks.py

Builds each hostile input in a temporary folder (tests/hostile_files.py builds the files;
nothing here runs a payload), runs `python -m evo_msa ...` on it and prints, per check: the
exit code, the seconds, the child's peak RSS (os.wait4) and its stderr line(s).
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from tests import hostile_files as H  # noqa: E402

TINY = str(ROOT / "search_spaces" / "tiny.yaml")
LIMIT_S, LIMIT_MB = 60, 3 * 1024


def run(args: list[str], timeout: float = 120) -> tuple[int, float, float, list[str]]:
    """exit code, seconds, peak RSS (MB) and stderr lines of `python -m evo_msa ARGS`."""
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "evo_msa", *args], cwd=ROOT,
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    killer = threading.Timer(timeout, proc.kill)
    killer.start()
    err = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    killer.cancel()
    proc.returncode = os.waitstatus_to_exitcode(status)
    return (proc.returncode, time.perf_counter() - start, usage.ru_maxrss / 1024,
            err.strip().splitlines())


def trained_model(tmp: Path) -> Path:
    """A small genuine model folder to spoil (setup, not a check)."""
    arch = tmp / "arch.yaml"
    arch.write_text("model: {depth: 1, expert_dim: 8, unified_dim: 8, level_widths: [8], "
                    "tower_dim: 4}\ntrain: {epochs: 1, batch_size: 16}\n")
    out = tmp / "trained"
    subprocess.run([sys.executable, "-m", "evo_msa", "train", "--data", "synthetic:mosi?n=60",
                    "--arch", str(arch), "--seeds", "0", "--device", "cpu", "--out", str(out)],
                   cwd=ROOT, check=True, capture_output=True)
    return out / "seed_0"


def spoiled(model: Path, tmp: Path, name: str, edit) -> str:
    folder = tmp / f"model-{name}"
    shutil.copytree(model, folder)
    edit(folder)
    return str(folder)


def edit_json(**changes):
    """edit_model_json with keyword paths (a__b = "a.b"); None removes the key."""
    return H.edit_model_json({k.replace("__", "."): H.DROP if v is None else v
                              for k, v in changes.items()})


class _Code:
    def __reduce__(self):  # what the file asks for; weights_only must refuse it unread
        return os.system, ("echo pwned > /tmp/evo-msa-hostile-pwned",)


def resume_dir(tmp: Path, name: str, **edits) -> str:
    run = tmp / f"run-{name}"
    run.mkdir()
    shutil.copy(TINY, run / "tiny.yaml")
    from dataclasses import asdict

    from evo_msa.nas.options import SearchOptions

    (run / "search.json").write_text(json.dumps(
        {**asdict(SearchOptions(space=TINY, pop=4, generations=1)), **edits}))
    return str(run)


def checks(tmp: Path) -> dict[str, list[str]]:
    model = trained_model(tmp)
    study = H.yaml_alias_bomb(tmp / "study.yaml", "x.name")
    out = str(tmp / "out")
    return {
        "pickle list(range(1e9))": ["data", str(H.pickle_list_of_range(tmp / "a.pkl"))],
        "pickle bytes(1e10)": ["data", str(H.pickle_bytes_of_size(tmp / "b.pkl"))],
        "pickle 4 MB + 16 GB array": ["data", str(H.pickle_declared_array(tmp / "c.pkl"))],
        "pickle short object array": ["data", str(H.pickle_short_object_array(tmp / "d.pkl"))],
        "pickle shared array x20000": ["train", "--data", str(H.pickle_shared_array(
            tmp / "e.pkl")), "--out", out],
        "yaml bomb: train --arch": ["train", "--arch", str(H.yaml_alias_bomb(
            tmp / "arch-bomb.yaml")), "--out", out],
        "yaml bomb: search --space": ["search", "--space", str(H.yaml_alias_bomb(
            tmp / "space-bomb.yaml", "genes.model.depth")), "--out", out],
        "yaml bomb: study": ["study", str(study), "--quick", "--out", out],
        "search --pop 1e9": ["search", "--space", TINY, "--pop", str(10 ** 9), "--out", out],
        "search --final-top 1e6": ["search", "--space", TINY, "--final-top", str(10 ** 6)],
        "resume: search.json pop 1e9": ["search", "--resume", resume_dir(tmp, "pop",
                                                                         pop=10 ** 9)],
        "resume: evolution typo": ["search", "--resume", resume_dir(
            tmp, "evo", evolution={"elitez": 1})],
        "resume: elites >= pop": ["search", "--resume", resume_dir(
            tmp, "elites", evolution={"elites": 4})],
        "train --epochs 1e9": ["train", "--epochs", str(10 ** 9), "--out", out],
        "train --seeds x1000": ["train", "--seeds", *map(str, range(1000)), "--out", out],
        "model.pt with code": ["predict", "--model", spoiled(model, tmp, "code", lambda f: torch.save(
            {"x": _Code()}, f / "model.pt")), "--data", "synthetic:mosi?n=60"],
        "model.pt garbage": ["predict", "--model", spoiled(model, tmp, "garbage", lambda f: (
            f / "model.pt").write_bytes(os.urandom(4096))), "--data", "synthetic:mosi?n=60"],
        "model.pt bare tensor": ["export", "--model", spoiled(model, tmp, "tensor", lambda f: (
            torch.save(torch.zeros(3), f / "model.pt"))), "--out", str(tmp / "m.onnx")],
        "model.json no signature": ["predict", "--model", spoiled(
            model, tmp, "nosig", edit_json(signature=None)), "--data", "synthetic:mosi?n=60"],
        "model.json text stats": ["predict", "--model", spoiled(
            model, tmp, "stats", edit_json(normalization__text__mean=lambda v: ["a"] * len(v))),
            "--data", "synthetic:mosi?n=60"],
        "model.json 1e10-wide text": ["predict", "--model", spoiled(
            model, tmp, "wide", edit_json(signature__dims__text=10 ** 10)),
            "--data", "synthetic:mosi?n=60"],
        "model.json widths 8192": ["predict", "--model", spoiled(
            model, tmp, "widths", edit_json(run_config__model__expert_dim=8192,
                                            run_config__model__unified_dim=8192)),
            "--data", "synthetic:mosi?n=60"],
        "--data directory": ["data", str(tmp)],
        "--data FIFO": ["data", str(H.fifo(tmp / "fifo"))],
        "--data /dev/zero": ["data", "/dev/zero"],
        "--arch FIFO": ["train", "--arch", str(tmp / "fifo"), "--out", out],
        "--genome directory": ["train", "--genome", str(tmp), "--space", TINY, "--out", out],
        "--model FIFO": ["predict", "--model", str(tmp / "fifo"), "--data", "synthetic:mosi"],
    }


def tampered_run(tmp: Path) -> str:
    """A finished search (a lookup table: seconds, no Ray) whose space copy is then edited."""
    run = tmp / "run-tampered"
    subprocess.run([sys.executable, "-m", "evo_msa", "search", "--space",
                    str(ROOT / "search_spaces" / "nb201_cifar10.yaml"), "--budget", "12",
                    "--pop", "6", "--out", str(run)], cwd=ROOT, check=True, capture_output=True)
    copy = run / "nb201_cifar10.yaml"
    copy.write_text(copy.read_text().replace("nor_conv_1x1, ", "", 1))
    return str(run)


def disk_full(tmp: Path) -> str:
    """A search into a 1.2 MB tmpfs, which fills while it runs (needs root to mount)."""
    mount = tmp / "small-disk"
    mount.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1200k", "tmpfs", str(mount)],
                       capture_output=True)
    if r.returncode != 0:
        return ""
    return str(mount)


def ray_exposure(tmp: Path) -> tuple[bool, list[str], str]:
    """`evo-msa search --space tiny.yaml --pop 6 --generations 3` (no --address): every port its
    Ray listens on (the search's process and its children), and the token file's mode after."""
    import re

    proc = subprocess.Popen([sys.executable, "-m", "evo_msa", "search", "--space", TINY,
                             "--pop", "6", "--generations", "3", "--final-seeds", "--out",
                             str(tmp / "run-ray")], cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)

    def family(pid: int) -> set[int]:
        kids = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True,
                              text=True).stdout.split()
        return {pid}.union(*[family(int(k)) for k in kids])

    seen: set[str] = set()
    while proc.poll() is None:
        mine = family(proc.pid)
        for line in subprocess.run(["ss", "-ltnpH"], capture_output=True,
                                   text=True).stdout.splitlines():
            if {int(p) for p in re.findall(r"pid=(\d+)", line)} & mine:
                seen.add(line.split()[3])
        time.sleep(1)
    loopback = bool(seen) and all(a.rsplit(":", 1)[0].strip("[]").removeprefix("::ffff:")
                                  .startswith("127.") for a in seen)
    token = Path(os.environ.get("RAY_AUTH_TOKEN_PATH") or Path.home() / ".ray" / "auth_token")
    mode = oct(token.stat().st_mode & 0o777) if token.exists() else "missing"
    return loopback, sorted(seen), mode


def main() -> int:
    failed = 0
    with tempfile.TemporaryDirectory(prefix="evo-msa-hostile-") as name:
        tmp = Path(name)
        print(f"{'check':30s} {'exit':>4s} {'s':>5s} {'RSS MB':>7s}  stderr")
        cases = checks(tmp)
        cases["resume: space copy edited"] = ["search", "--resume", tampered_run(tmp)]
        small = disk_full(tmp)
        if small:
            cases["disk full during a search"] = ["search", "--space", TINY, "--pop", "6",
                                                  "--generations", "4", "--final-seeds",
                                                  "--out", f"{small}/run"]
        else:
            print("(disk full: skipped, mounting a small tmpfs needs root)")
        for label, args in cases.items():
            code, secs, rss, lines = run(args, 900 if label.startswith("disk full") else 120)
            slow_ok = label.startswith("disk full")  # it trains until the disk fills
            ok = (code == 2 and (secs < LIMIT_S or slow_ok) and rss < LIMIT_MB
                  and len(lines) == 1 and not (tmp / "out").exists())
            failed += not ok
            shown = " | ".join(lines)
            print(f"{label:30s} {code:4d} {secs:5.1f} {rss:7.0f}  {shown.replace(name, 'TMP')}"
                  + ("" if ok else "   <-- FAILS THE BAR"), flush=True)
        if small:
            subprocess.run(["umount", small], capture_output=True)
        loopback, ports, mode = ray_exposure(tmp)
        print(f"a local search's Ray listened on {', '.join(ports) or 'nothing seen'}: "
              f"{'loopback only' if loopback else 'NOT ONLY LOOPBACK'}; token file mode {mode}")
        failed += not loopback or mode != "0o600"
    pwned = Path("/tmp/evo-msa-hostile-pwned")
    if pwned.exists():
        print("a payload ran: /tmp/evo-msa-hostile-pwned exists")
        failed += 1
    print(f"{failed} check(s) fail the bar (exit 2, one line, < {LIMIT_S} s, "
          f"< {LIMIT_MB} MB)")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
