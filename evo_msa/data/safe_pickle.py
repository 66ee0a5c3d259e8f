"""Load untrusted pickles: only builtin containers/scalars and numpy arrays can come out.

A pickle can name any importable callable and have the loader call it, so `find_class` is
limited to a strict allow-list and every allowed global is resolved from this module's own
table: no module named in the file is ever imported.

The allowed callables are also guarded against small files that build huge objects: the
container constructors only copy containers the file already holds (`list(range(10**9))` and
`bytes(10**10)` are refused), and a numpy array may not declare more bytes than the file has
(numpy allocates a declared shape before it reads the data, and it crashes on an object
array whose data is shorter than its shape).
"""
from __future__ import annotations

import _codecs
import collections
import importlib
import math
import os
import pickle
from pathlib import Path

import numpy as np

from evo_msa.errors import UserError, brief
from evo_msa.io import input_file


def _numpy_core(submodule: str):
    """numpy's private core module (`numpy._core` in numpy 2, `numpy.core` before)."""
    try:
        return importlib.import_module(f"numpy._core.{submodule}")
    except ImportError:
        return importlib.import_module(f"numpy.core.{submodule}")


_MULTIARRAY, _NUMERIC = _numpy_core("multiarray"), _numpy_core("numeric")


class _Refused(pickle.UnpicklingError):
    """A pickle that asks for something the guards refuse (reported as such, one line)."""


def _latin1_encode(obj: str, encoding: str = "utf-8", errors: str = "strict") -> bytes:
    """`_codecs.encode` restricted to what pickle (protocol 2 bytes) and numpy (array
    buffers) use it for: latin-1 text -> bytes."""
    if not isinstance(obj, str) or encoding.lower().replace("-", "").replace("_", "") not in (
            "latin1", "iso88591"):
        raise pickle.UnpicklingError(f"_codecs.encode only allowed with latin1, not "
                                     f"{brief(encoding)}")
    return _codecs.encode(obj, encoding, errors)


# What a pickle hands the container constructors: containers it already built. Never a size
# (bytes(10**10)) or a lazy iterable (range): those expand a few bytes into gigabytes.
_BUILT = (list, tuple, set, frozenset, dict, str, bytes, bytearray)


def _container(cls, *, text: bool = False):
    def build(*args):
        if len(args) > (3 if text else 1) or (args and not isinstance(args[0], _BUILT)) or (
                len(args) > 1 and not all(isinstance(a, str) for a in args[1:])):
            raise _Refused(f"{cls.__name__}() of {brief(args, 40)}: containers are only "
                           "rebuilt from containers the file holds")
        if cls is str and args and not isinstance(args[0], (str, bytes, bytearray)):
            raise _Refused(f"str() of a {type(args[0]).__name__}: only text is read")
        return cls(*args)
    build.__name__ = build.__qualname__ = cls.__name__
    return build


def _prod(shape) -> int:
    if not isinstance(shape, tuple) or not all(
            isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in shape):
        raise _Refused(f"an array shape must be a tuple of sizes, got {brief(shape, 40)}")
    return math.prod(shape)


class _NDArrayName:
    """What `numpy.ndarray` resolves to: numpy pickles name the class only as the argument of
    `_reconstruct`; calling it would allocate any shape the file declares."""

    def __call__(self, *args, **kwargs):
        raise _Refused("numpy.ndarray(...) called directly: numpy never pickles arrays so")


_NDARRAY = _NDArrayName()


class _UnpickledArray(np.ndarray):
    """An array read from a pickle: its state (BUILD) is checked before numpy sees it.
    Behaves as an ndarray; `np.asarray` gives the plain one."""

    def __setstate__(self, state):
        if not isinstance(state, tuple) or len(state) not in (4, 5):
            raise _Refused("an array state that numpy does not write")
        shape, dtype, _, data = state[-4:]
        count = _prod(shape)
        if not isinstance(dtype, np.dtype):
            raise _Refused("an array state without a dtype")
        if dtype.hasobject:
            # numpy reads `count` items of the list whatever its length (a crash if shorter)
            if dtype.kind != "O" or not isinstance(data, list) or len(data) != count:
                raise _Refused(f"an object array of shape {brief(shape, 40)} whose data does "
                               "not match it")
        elif not isinstance(data, (bytes, bytearray, str)) or len(data) != count * dtype.itemsize:
            raise _Refused(f"an array of shape {brief(shape, 40)} and dtype {dtype} whose "
                           "data does not match it")
        return super().__setstate__(state)


class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, file, path: Path, size: int):
        # latin1: the only encoding that reads numpy arrays from Python 2 pickles.
        super().__init__(file, encoding="latin1")
        self._path = path
        self._size = size  # bytes of the file: no array it declares can hold more
        self._table = self._allowed_globals()

    def _allowed_globals(self) -> dict[tuple[str, str], object]:
        table: dict[tuple[str, str], object] = {
            ("numpy", "ndarray"): _NDARRAY,
            ("numpy", "dtype"): np.dtype,
            ("_codecs", "encode"): _latin1_encode,
            ("collections", "OrderedDict"): _container(collections.OrderedDict),
        }
        # Pickles written by numpy 1.x name numpy.core, by numpy 2.x numpy._core.
        for core in ("numpy.core", "numpy._core"):
            table[(f"{core}.multiarray", "_reconstruct")] = self._reconstruct
            table[(f"{core}.multiarray", "scalar")] = self._scalar
            table[(f"{core}.numeric", "_frombuffer")] = self._frombuffer
        builtins = {cls: cls for cls in (complex, slice, int, float, bool)}
        builtins.update({cls: _container(cls) for cls in (set, frozenset, list, dict, tuple)})
        builtins.update({cls: _container(cls, text=True) for cls in (bytes, bytearray, str)})
        for cls, build in builtins.items():
            # Python 2 pickles (and protocol < 3) spell the module __builtin__.
            table[("builtins", cls.__name__)] = build
            table[("__builtin__", cls.__name__)] = build
        return table

    def _fits(self, nbytes: int, what: str) -> None:
        if nbytes > self._size:
            raise _Refused(f"{what} declares {nbytes:,} bytes, more than the whole file "
                           f"({self._size:,} bytes)")

    def _reconstruct(self, subtype, shape, dtype):
        if subtype is not _NDARRAY:
            raise _Refused("_reconstruct of something other than numpy.ndarray")
        dtype = np.dtype(dtype)
        self._fits(_prod(shape) * dtype.itemsize, f"an array of shape {brief(shape, 40)}")
        return _UnpickledArray(shape, dtype)  # allocated as numpy does; BUILD fills it

    def _scalar(self, dtype, obj=None):
        if not isinstance(dtype, np.dtype):
            raise _Refused("a numpy scalar without a dtype")
        if not dtype.hasobject:
            self._fits(dtype.itemsize, f"a numpy scalar of dtype {dtype}")
            if not isinstance(obj, (bytes, str)) or len(obj) != dtype.itemsize:
                raise _Refused(f"a numpy scalar of dtype {dtype} whose data does not match it")
        return _MULTIARRAY.scalar(dtype, obj)

    def _frombuffer(self, buf, dtype, shape, order):
        dtype = np.dtype(dtype)
        if dtype.hasobject or not isinstance(buf, (bytes, bytearray, pickle.PickleBuffer)):
            raise _Refused("an array buffer that numpy does not write")
        if _prod(shape) * dtype.itemsize != memoryview(buf).nbytes:
            raise _Refused(f"an array of shape {brief(shape, 40)} and dtype {dtype} whose "
                           "data does not match it")
        return _NUMERIC._frombuffer(buf, dtype, shape, order)

    def find_class(self, module: str, name: str):
        try:
            return self._table[(module, name)]
        except KeyError:
            what = " ".join(f"{module}.{name}".split())  # STACK_GLOBAL names may hold newlines
            raise UserError(f"{self._path}: refusing to unpickle {what[:100]}: only plain "
                            "containers and numpy arrays are allowed") from None
        except TypeError:  # an unhashable module or name
            raise _Refused("a global named by something other than text") from None

    def persistent_load(self, pid):
        raise UserError(f"{self._path}: refusing to unpickle a persistent id: only plain "
                        "containers and numpy arrays are allowed")


def safe_load(path: str | Path) -> object:
    """Unpickle `path`, refusing any global outside the allow-list (UserError, not executed)."""
    path = input_file(path, "data")
    try:
        with open(path, "rb") as fh:
            return _RestrictedUnpickler(fh, path, os.fstat(fh.fileno()).st_size).load()
    except UserError:
        raise
    except _Refused as exc:
        raise UserError(f"{path}: refusing to unpickle: {exc}") from None
    except OSError as exc:
        raise UserError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except MemoryError:
        raise UserError(f"{path}: not a usable pickle (it asks for more memory than there "
                        "is)") from None
    except Exception as exc:  # noqa: BLE001 - any other failure means a damaged or foreign file
        detail = " ".join(str(exc).split())[:160] or "no detail"
        raise UserError(f"{path}: not a readable pickle ({type(exc).__name__}: {detail})") from None
