"""Writing files safely: the project's one atomic writer and its JSON encoding.

A file is written to a temporary sibling, flushed to disk, then renamed over the target, so a
reader (or a resume after a crash) sees the old file or the new one, never half of one. A write
that fails (a full disk, a read-only folder) leaves the old file as it was and raises
`StorageError`, one line naming the file.
"""
from __future__ import annotations

import json
import os
import stat
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
    """Write `obj` as JSON (see `to_json`) to `path`, atomically."""
    text = to_json(obj)
    return atomic_write(path, lambda tmp: tmp.write_text(text))


def file_kind(mode: int) -> str:
    """What a stat mode is, in words: 'a directory', 'a FIFO (named pipe)'..."""
    for test, name in ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                       (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return name
    return "not a regular file"


def input_file(path: str | Path, what: str, max_bytes: int | None = None) -> Path:
    """`path` if it is a regular file (of at most `max_bytes`), else a one-line UserError that
    says what it is instead. Checked before any open: opening a FIFO would block."""
    path = Path(path)
    try:
        info = path.stat()
    except (FileNotFoundError, NotADirectoryError):
        raise UserError(f"{path}: no such {what} file") from None
    except OSError as exc:
        raise UserError(f"{path}: cannot read ({exc.strerror or exc})") from None
    if not stat.S_ISREG(info.st_mode):
        raise UserError(f"{path}: is {file_kind(info.st_mode)}, not a {what} file")
    if max_bytes is not None and info.st_size > max_bytes:
        raise UserError(f"{path}: {info.st_size:,} bytes; a {what} file has at most "
                        f"{max_bytes:,}")
    return path


def read_text(path: str | Path, what: str, max_bytes: int) -> str:
    """The UTF-8 text of a small input file (see `input_file`), or a one-line UserError."""
    path = input_file(path, what, max_bytes)
    try:
        with open(path, "rb") as fh:
            data = fh.read(max_bytes + 1)  # the file may have grown since the check
    except OSError as exc:
        raise UserError(f"{path}: cannot read ({exc.strerror or exc})") from None
    if len(data) > max_bytes:
        raise UserError(f"{path}: more than {max_bytes:,} bytes; a {what} file has fewer")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UserError(f"{path}: not UTF-8 text (byte {exc.start}); expected a {what} "
                        "file") from None


def read_json(path: str | Path, what: str, max_bytes: int) -> object:
    """A small JSON input file, parsed; a damaged or too deeply nested one is a UserError."""
    text = read_text(path, what, max_bytes)
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise UserError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
    except RecursionError:
        raise UserError(f"{path}: not a usable {what} file (nested too deeply)") from None
