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
