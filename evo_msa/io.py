"""Writing files safely: the project's one atomic writer and its JSON encoding.

A file is written to a temporary sibling, flushed to disk, then renamed over the target, so a
reader (or a resume after a crash) sees the old file or the new one, never half of one. A write
that fails (a full disk, a read-only folder) leaves the old file as it was and raises
`StorageError`, one line naming the file.
"""
from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any, Callable

from evo_msa.errors import UserError


class StorageError(UserError):
    """A run file could not be written (disk full, permissions); the previous version is intact."""


def atomic_write(path: str | Path, write: Callable[[Path], None]) -> Path:
    """Call `write(tmp)` to produce the content, then rename it over `path`."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        write(tmp)
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise StorageError(f"{path}: cannot write ({exc.strerror or exc}); "
                           f"its previous version is left as it was") from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def to_json(obj: Any) -> str:
    """JSON text of run records: numpy scalars become numbers, non-finite floats stay readable
    (NaN, Infinity are valid for Python's json and pandas)."""
    return json.dumps(obj, indent=2, default=_default, allow_nan=True)


def _default(x):
    if hasattr(x, "item"):  # numpy / torch scalars
        return x.item()
    if hasattr(x, "tolist"):
        return x.tolist()
    if hasattr(x, "value") and hasattr(x, "name"):  # enums
        return x.value
    raise TypeError(f"not JSON serialisable: {type(x).__name__}")


def write_json(path: str | Path, obj: Any) -> Path:
    text = to_json(obj)
    return atomic_write(path, lambda tmp: tmp.write_text(text))


def finite_or_none(x: float | None) -> float | None:
    return None if x is None or not math.isfinite(x) else float(x)
