"""Load untrusted pickles: only builtin containers/scalars and numpy arrays can come out.

A pickle can name any importable callable and have the loader call it, so `find_class` is
limited to a strict allow-list and every allowed global is resolved from this module's own
table: no module named in the file is ever imported.
"""
from __future__ import annotations

import _codecs
import collections
import importlib
import pickle
from pathlib import Path

import numpy as np

from evo_msa.errors import UserError


def _numpy_core(submodule: str):
    """numpy's private core module (`numpy._core` in numpy 2, `numpy.core` before)."""
    try:
        return importlib.import_module(f"numpy._core.{submodule}")
    except ImportError:
        return importlib.import_module(f"numpy.core.{submodule}")


def _latin1_encode(obj: str, encoding: str = "utf-8", errors: str = "strict") -> bytes:
    """`_codecs.encode` restricted to what pickle (protocol 2 bytes) and numpy (array
    buffers) use it for: latin-1 text -> bytes."""
    if not isinstance(obj, str) or encoding.lower().replace("-", "").replace("_", "") not in (
            "latin1", "iso88591"):
        raise pickle.UnpicklingError(f"_codecs.encode only allowed with latin1, not {encoding!r}")
    return _codecs.encode(obj, encoding, errors)


def _allowed_globals() -> dict[tuple[str, str], object]:
    multiarray, numeric = _numpy_core("multiarray"), _numpy_core("numeric")
    table: dict[tuple[str, str], object] = {
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
        ("_codecs", "encode"): _latin1_encode,
        ("collections", "OrderedDict"): collections.OrderedDict,
    }
    # Pickles written by numpy 1.x name numpy.core, by numpy 2.x numpy._core.
    for core in ("numpy.core", "numpy._core"):
        table[(f"{core}.multiarray", "_reconstruct")] = multiarray._reconstruct
        table[(f"{core}.multiarray", "scalar")] = multiarray.scalar
        table[(f"{core}.numeric", "_frombuffer")] = numeric._frombuffer
    for cls in (set, frozenset, complex, slice, range, bytes, bytearray,
                list, dict, tuple, str, int, float, bool):
        # Python 2 pickles (and protocol < 3) spell the module __builtin__.
        table[("builtins", cls.__name__)] = cls
        table[("__builtin__", cls.__name__)] = cls
    return table


_ALLOWED = _allowed_globals()


class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, file, path: Path):
        # latin1: the only encoding that reads numpy arrays from Python 2 pickles.
        super().__init__(file, encoding="latin1")
        self._path = path

    def find_class(self, module: str, name: str):
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise UserError(f"{self._path}: refusing to unpickle {module}.{name}: only plain "
                            "containers and numpy arrays are allowed") from None

    def persistent_load(self, pid):
        raise UserError(f"{self._path}: refusing to unpickle a persistent id: only plain "
                        "containers and numpy arrays are allowed")


def safe_load(path: str | Path) -> object:
    """Unpickle `path`, refusing any global outside the allow-list (UserError, not executed)."""
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            return _RestrictedUnpickler(fh, path).load()
    except UserError:
        raise
    except FileNotFoundError:
        raise UserError(f"{path}: no such data file") from None
    except OSError as exc:
        raise UserError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except Exception as exc:  # noqa: BLE001 - any other failure means a damaged or foreign file
        detail = " ".join(str(exc).split()) or "no detail"
        raise UserError(f"{path}: not a readable pickle ({type(exc).__name__}: {detail})") from None
