"""safe_load: plain containers and numpy arrays load; anything that could run code is refused."""
import builtins
import os
import pickle
import subprocess
from collections import OrderedDict

import numpy as np
import pytest

from evo_msa.data.safe_pickle import safe_load
from evo_msa.errors import UserError
from tests import hostile_files


class _Pwn:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


class _Popen:
    def __reduce__(self):
        return subprocess.Popen, (["true"],)


class _Eval:
    def __reduce__(self):
        return builtins.eval, ("1 + 1",)


def _dump(tmp_path, obj, protocol=pickle.HIGHEST_PROTOCOL, name="x.pkl"):
    path = tmp_path / name
    path.write_bytes(pickle.dumps(obj, protocol=protocol))
    return path


def test_malicious_reduce_is_refused_and_not_executed(tmp_path):
    marker = tmp_path / "pwned"
    path = _dump(tmp_path, {"train": [_Pwn(marker)]})
    with pytest.raises(UserError, match=r"refusing to unpickle (posix|nt)\.system"):
        safe_load(path)
    assert not marker.exists()


@pytest.mark.parametrize("payload, name", [(_Popen(), "subprocess.Popen"),
                                           (_Eval(), "builtins.eval")])
def test_dangerous_globals_are_refused(tmp_path, payload, name):
    path = _dump(tmp_path, [1, payload])
    with pytest.raises(UserError) as err:
        safe_load(path)
    msg = str(err.value)
    assert str(path) in msg and name in msg and "\n" not in msg


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_plain_data_round_trips(tmp_path, protocol):
    data = {
        "train": {
            "id": ["a_1", "b_2"],
            "text": np.arange(12, dtype=np.float32).reshape(2, 2, 3),
            "lengths": np.array([2, 1], dtype=np.int64),
            "mask": np.array([True, False]),
            "big_endian": np.array([1.5, -2.0], dtype=">f8"),
            "scalars": (np.float32(0.5), np.int64(7), np.bool_(True)),
            "bytes": b"\x00\xffraw",
        },
        "misc": OrderedDict(a={1, 2}, b=frozenset({3}), c=1 + 2j, d=slice(1, 5), e=None),
    }
    path = _dump(tmp_path, data, protocol)
    out, trusted = safe_load(path), pickle.loads(path.read_bytes())
    assert out["train"]["id"] == data["train"]["id"]
    for key in ("text", "lengths", "mask", "big_endian"):
        np.testing.assert_array_equal(out["train"][key], data["train"][key])
        # same dtype as a plain pickle.load (numpy drops '>' below protocol 5 either way)
        assert out["train"][key].dtype == trusted["train"][key].dtype
    assert out["train"]["scalars"] == data["train"]["scalars"]
    assert type(out["train"]["scalars"][1]) is np.int64
    assert out["train"]["bytes"] == data["train"]["bytes"]
    assert out["misc"] == data["misc"]


def test_damaged_files_give_one_line_errors(tmp_path):
    truncated = tmp_path / "cut.pkl"
    truncated.write_bytes(pickle.dumps({"a": np.zeros(100)}, protocol=4)[:50])
    text = tmp_path / "notes.pkl"
    text.write_text("not a pickle at all\nsecond line\n")
    for path in (truncated, text):
        with pytest.raises(UserError) as err:
            safe_load(path)
        assert str(path) in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(UserError, match="no such data file"):
        safe_load(tmp_path / "missing.pkl")


def test_real_files_load(shared_data):
    for path in sorted(shared_data.glob("*/*.pkl")):
        data = safe_load(path)
        assert {"train", "valid", "test"} <= set(data)


# ---- small files that ask for gigabytes ---------------------------------------------------------

_HOSTILE_PICKLES = {  # builder -> words the one-line message must hold
    "pickle_list_of_range": "builtins.range",
    "pickle_bytes_of_size": "bytes()",
    "pickle_declared_array": "16,000,000,000 bytes",
    "pickle_short_object_array": "object array",
    "pickle_shared_array": "train/text expands",
}

# Loads each file in a fresh process (a regression could crash numpy or take GBs) and prints
# per file: the error, the seconds and the process's peak RSS so far.
_PROBE = hostile_files.PEAK_MB + """
import json, sys, time
from evo_msa.data import load_data
from evo_msa.errors import UserError
for path in sys.argv[1:]:
    start, msg = time.perf_counter(), None
    try:
        load_data(path)
    except UserError as exc:
        msg = str(exc)
    print(json.dumps({"path": path, "msg": msg, "s": time.perf_counter() - start,
                      "rss_mb": peak_mb()}))
"""


def test_small_pickles_that_ask_for_gigabytes_are_refused_fast(tmp_path):
    import json
    import sys


    paths = {name: getattr(hostile_files, name)(tmp_path / f"{name}.pkl")
             for name in _HOSTILE_PICKLES}
    assert all(p.stat().st_size < 5_000_000 for p in paths.values())
    proc = subprocess.run([sys.executable, "-c", _PROBE, *map(str, paths.values())],
                          capture_output=True, text=True, timeout=120, cwd=os.getcwd())
    assert proc.returncode == 0, proc.stderr[-2000:]
    results = [json.loads(line) for line in proc.stdout.splitlines()]
    assert len(results) == len(paths)
    for (name, words), res in zip(_HOSTILE_PICKLES.items(), results):
        assert res["msg"] is not None, f"{name} loaded"
        assert words in res["msg"] and res["path"] in res["msg"], res["msg"]
        assert "\n" not in res["msg"]
        assert res["s"] < 10, (name, res["s"])
        assert res["rss_mb"] < 1000, (name, res["rss_mb"])  # the probe itself needs ~100 MB


def test_guarded_constructors_still_rebuild_what_pickles_hold(tmp_path):
    data = {"s": {1, 2}, "f": frozenset({3}), "b": b"", "ba": bytearray(b"ab"),
            "od": OrderedDict(a=[1, (2, 3)]), "o": np.array([np.zeros(2), None], dtype=object),
            "u": np.array(["x", "yz"]), "r": np.arange(6, dtype=np.float32).reshape(2, 3).T}
    for protocol in (2, 4, 5):
        out = safe_load(_dump(tmp_path, data, protocol))
        assert out["s"] == {1, 2} and out["f"] == frozenset({3}) and out["b"] == b""
        assert out["ba"] == bytearray(b"ab") and out["od"] == data["od"]
        np.testing.assert_array_equal(out["r"], data["r"])
        np.testing.assert_array_equal(out["u"], data["u"])
        assert out["o"][1] is None and out["o"][0].tolist() == [0.0, 0.0]


@pytest.mark.parametrize("make, words", [
    (lambda: _Reduce(list, (b"x" * 3,)), None),  # fine: a container the file holds
    (lambda: _Reduce(bytearray, (10 ** 9,)), "bytearray()"),
    (lambda: _Reduce(tuple, (range(5),)), "builtins.range"),
    (lambda: _Reduce(str, ([1] * 3,)), "str() of a list"),
    (lambda: _Reduce(np.ndarray, ((10 ** 9,), "f4")), "numpy.ndarray(...) called directly"),
])
def test_expanding_constructors_are_refused(tmp_path, make, words):
    path = _dump(tmp_path, {"train": make()})
    if words is None:
        assert safe_load(path) == {"train": [120, 120, 120]}
        return
    with pytest.raises(UserError) as err:
        safe_load(path)
    assert words in str(err.value) and str(path) in str(err.value)


class _Reduce:
    def __init__(self, func, args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args
