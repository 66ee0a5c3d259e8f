"""Small files that ask for huge resources or hide something, for the hostile-input tests and
experiments/hostile_checks.py. Each builder only writes a file (or a folder); nothing here
executes a payload, and every payload is refused before it is built."""
from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np

from evo_msa.data.safe_pickle import _numpy_core

_reconstruct = _numpy_core("multiarray")._reconstruct

# Python source for a probe run in a fresh process: `peak_mb()`, the process's own peak RSS.
# ru_maxrss is not that: it keeps the forking parent's (pytest's, GBs late in a suite) across exec.
PEAK_MB = """
def peak_mb():
    import resource
    try:
        with open("/proc/self/status") as fh:
            return next(int(l.split()[1]) / 1024 for l in fh if l.startswith("VmHWM:"))
    except (OSError, StopIteration):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
"""


class _Reduce:
    """Pickles as `func(*args)` (then BUILD with `state`), without ever calling func here."""

    def __init__(self, func, args, state=None):
        self.func, self.args, self.state = func, args, state

    def __reduce__(self):
        return (self.func, self.args) if self.state is None else (self.func, self.args, self.state)


def _mmsa(text, rows: int = 4) -> dict:
    """An MMSA-layout dict whose train/text is `text` (the payload)."""
    split = {"regression_labels": np.zeros(rows, np.float32)}
    return {"train": {**split, "text": text}, "valid": dict(split), "test": dict(split)}


def _dump(path: Path, obj) -> Path:
    path.write_bytes(pickle.dumps(obj, protocol=4))
    return path


def pickle_list_of_range(path: Path) -> Path:
    """~200 bytes that build list(range(10**9)): 8 GB of pointers, 28 GB of ints."""
    return _dump(path, _mmsa(_Reduce(list, (range(10 ** 9),))))


def pickle_bytes_of_size(path: Path) -> Path:
    """bytes(10**10): 10 GB of zeros from an integer."""
    return _dump(path, _mmsa(_Reduce(bytes, (10 ** 10,))))


def pickle_declared_array(path: Path) -> Path:
    """A few MB of real data beside an array whose reconstruction declares 16 GB."""
    big = _Reduce(_reconstruct, (np.ndarray, (4 * 10 ** 9,), b"f"))
    raw = _mmsa(big)
    raw["train"]["audio"] = np.ones((4, 256, 1024), np.float32)  # 4 MB of genuine data
    return _dump(path, raw)


def pickle_short_object_array(path: Path) -> Path:
    """An object array whose state declares 2e9 items and holds 2 (numpy reads past the list)."""
    state = (1, (2 * 10 ** 9,), np.dtype("O"), False, [0.0, 1.0])
    return _dump(path, _mmsa(_Reduce(_reconstruct, (np.ndarray, (0,), b"b"), state)))


def pickle_shared_array(path: Path, rows: int = 20_000) -> Path:
    """One 200 KB array referenced `rows` times (pickle's memo: 2 bytes each): 4 GB once numpy
    stacks the list."""
    one = np.ones((1, 50_000), np.float32)
    return _dump(path, _mmsa([one] * rows, rows=rows))


def yaml_alias_bomb(path: Path, field: str = "model.encoder") -> Path:
    """Billion laughs (< 1 KB): 9 levels of 9 aliases, all of it the value of `field` (a
    string is expected there); its full repr would be ~1e9 strings."""
    section, key = field.split(".", 1)
    lines = [f"{section}:", f"  {key}:",
             '    - &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    prev = "a"
    for name in "bcdefghi":
        lines.append(f"    - &{name} [{', '.join(['*' + prev] * 9)}]")
        prev = name
    path.write_text("\n".join(lines) + "\n")
    return path


def fifo(path: Path) -> Path:
    os.mkfifo(path)
    return path


__all__ = ["pickle_list_of_range", "pickle_bytes_of_size", "pickle_declared_array",
           "pickle_short_object_array", "pickle_shared_array", "yaml_alias_bomb", "fifo"]


DROP = object()  # edit_model_json: remove the key


def edit_model_json(changes: dict):
    """An edit of a saved model folder's model.json: {"signature.dims.text": 10**10, ...}; a
    value may be DROP (remove the key) or a function of the old value."""
    import json

    def edit(folder: Path) -> None:
        meta = json.loads((folder / "model.json").read_text())
        for dotted, value in changes.items():
            *parents, last = dotted.split(".")
            target = meta
            for key in parents:
                target = target[key]
            if value is DROP:
                del target[last]
            else:
                target[last] = value(target[last]) if callable(value) else value
        (folder / "model.json").write_text(json.dumps(meta))
    return edit
