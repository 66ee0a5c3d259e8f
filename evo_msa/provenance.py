"""Where a result came from: the data file's hash, the software versions, the git commit."""
from __future__ import annotations

import hashlib
import json
import platform
import subprocess
import time
from importlib import metadata
from pathlib import Path

from evo_msa._version import __version__


def provenance(data_spec: str) -> dict:
    """Where and with what a run ran: data (and its sha256), versions, git commit, host, time."""
    return {"data": data_spec, "data_sha256": data_sha256(data_spec), "versions": versions(),
            "git_commit": git_commit(), "host": platform.node(),
            "time": time.strftime("%Y-%m-%d %H:%M:%S")}


def data_sha256(spec: str) -> str | None:
    """sha256 of a pickle (None for the built-in synthetic data: the spec says it all)."""
    path = Path(spec)
    if spec.startswith("synthetic:") or not path.is_file():
        return None
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def fingerprint(space_file: str | Path, data_spec: str, options: dict) -> dict[str, str]:
    """sha256 of what a search was started with: the space file, the data (the file's bytes,
    or a synthetic spec's text) and the options; a resume compares them."""
    def digest(data: bytes) -> str:
        return hashlib.sha256(data).hexdigest()

    options = {k: v for k, v in options.items() if k not in ("provenance", "fingerprint")}
    return {"space": digest(Path(space_file).read_bytes()),
            "data": data_sha256(data_spec) or digest(data_spec.encode()),
            "options": digest(json.dumps(options, sort_keys=True, default=str).encode())}


def versions() -> dict:
    """The versions of Python, evo-msa and the libraries that decide its results."""
    out = {"python": platform.python_version(), "evo-msa": __version__}
    for package in ("torch", "ray", "deap", "numpy"):
        try:
            out[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            out[package] = None
    return out


def git_commit() -> str | None:
    """The commit of the evo-msa source tree, with "+dirty" for uncommitted changes; None
    outside a git checkout (an installed wheel)."""
    root = Path(__file__).resolve().parents[1]
    if not (root / ".git").exists():
        return None
    try:
        head = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True,
                              text=True, timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--",
                                "evo_msa"], capture_output=True, text=True, timeout=10).stdout
        return head + ("+dirty" if dirty.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return None
