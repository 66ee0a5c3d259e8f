"""Environment variables for a block only: every command leaves the process's environment as
it found it."""
from __future__ import annotations

import contextlib
import os
from pathlib import Path


@contextlib.contextmanager
def environment(values: dict[str, str], defaults: dict[str, str] | None = None):
    """Set `values`, and `defaults` where the user has not set them, for the block only: every
    variable is back as it was afterwards."""
    defaults = {k: v for k, v in (defaults or {}).items() if k not in os.environ}
    changes = {**defaults, **values}
    saved = {k: os.environ.get(k) for k in changes}
    os.environ.update(changes)
    try:
        yield
    finally:
        for k, old in saved.items():
            if old is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = old


@contextlib.contextmanager
def restored():
    """The whole environment back as it was after the block, whatever set it on the way: Ray's
    init exports variables of its own (PYTHONBREAKPOINT to its remote debugger,
    RAY_USAGE_STATS_ENABLED, ...) that would outlive the search in the caller's process."""
    before = dict(os.environ)
    try:
        yield
    finally:
        for k in [k for k in os.environ if k not in before]:
            del os.environ[k]
        for k, v in before.items():
            if os.environ.get(k) != v:
                os.environ[k] = v


def with_this_checkout(pythonpath: str) -> str:
    """A local Ray's workers inherit our environment: the folder evo_msa was imported from goes
    first on their PYTHONPATH, so trials run this code even when it is not installed (a checkout
    run with `python -m evo_msa`) or another version is. A cluster's nodes install it themselves."""
    root = str(Path(__file__).resolve().parents[3])
    paths = [p for p in pythonpath.split(os.pathsep) if p]
    return os.pathsep.join(paths if root in paths else [root, *paths])
