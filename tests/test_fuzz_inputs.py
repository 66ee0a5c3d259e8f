"""Fuzzing the user-facing inputs: MMSA pickles, search-space YAML and run configs.

Every malformed variant must fail with one `UserError` whose message is one line, names the
file (or source) and, where the mutation targeted a key, names that key. Variants that are odd
but valid must load. Generation is deterministic (seeded); nothing here trains a model.
"""
from __future__ import annotations

import copy
import fractions
import math
import pickle
import random
import warnings
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import pytest

from evo_msa.config import RunConfig, load_run_config
from evo_msa.data import load_data
from evo_msa.errors import UserError
from evo_msa.space import load_space, parse_space

SEED = 20240611
SIZES = {"train": 6, "valid": 3, "test": 3}
SPLITS = tuple(SIZES)
DATA_FILE = "fuzz_data.pkl"
SPACE_SOURCE = "fuzz_space.yaml"
CONFIG_SOURCE = "fuzz_config.yaml"


@dataclass(frozen=True)
class Variant:
    name: str
    mutate: Callable[[Any], Any]  # takes a fresh deep copy of the base, returns the variant
    key: str | None  # a string the message must contain (the targeted key), None: file only


def _unique(variants: list[Variant]) -> list[Variant]:
    names = [v.name for v in variants]
    dup = {n for n in names if names.count(n) > 1}
    assert not dup, f"duplicate variant names: {sorted(dup)}"
    return variants


def _expect_user_error(name: str, call: Callable[[], Any], source: str, key: str | None) -> str:
    try:
        call()
    except UserError as exc:
        msg = str(exc)
    except Exception as exc:  # noqa: BLE001 - the point of the test
        pytest.fail(f"variant {name}: raised {type(exc).__name__} instead of UserError: {exc!r}")
    else:
        pytest.fail(f"variant {name}: loaded without error")
    assert "\n" not in msg and "\r" not in msg, f"variant {name}: message not one line: {msg!r}"
    assert source in msg, f"variant {name}: message does not name {source!r}: {msg}"
    if key is not None:
        assert key in msg, f"variant {name}: message does not name {key!r}: {msg}"
    return msg


# =================================================================================================
# Data: MMSA-layout pickles
# =================================================================================================

def base_regression() -> dict:
    rng = np.random.default_rng(0)
    raw = {}
    for s, n in SIZES.items():
        raw[s] = {
            "id": [f"{s}_{i}" for i in range(n)],
            "raw_text": [f"utterance {i}" for i in range(n)],
            "text": rng.normal(size=(n, 1, 5)).astype(np.float32),
            "audio": rng.normal(size=(n, 4, 3)).astype(np.float32),
            "audio_lengths": rng.integers(1, 5, n).astype(np.int64),
            "vision": rng.normal(size=(n, 2, 4)).astype(np.float32),
            "vision_lengths": np.full(n, 2, np.int64),
            "regression_labels": np.linspace(-2.5, 2.5, n).astype(np.float32),
        }
    return raw


def base_classification() -> dict:
    rng = np.random.default_rng(1)
    raw = {s: {"id": [f"{s}_{i}" for i in range(n)],
               "text": rng.normal(size=(n, 5)).astype(np.float32),
               "audio": rng.normal(size=(n, 2, 3)).astype(np.float32),
               "classification_labels": np.arange(n, dtype=np.int64) % 3}
           for s, n in SIZES.items()}
    raw["label_names"] = ["neg", "neu", "pos"]
    return raw


def _write(tmp_path, raw) -> str:
    path = tmp_path / DATA_FILE
    path.write_bytes(pickle.dumps(raw, protocol=4))
    return str(path)


def _set(split: str, key: str, value_fn: Callable[[int], Any]):
    def mutate(raw):
        raw[split][key] = value_fn(SIZES[split])
        return raw
    return mutate


def _edit(fn: Callable[[dict], Any]):
    def mutate(raw):
        fn(raw)
        return raw
    return mutate


def _rows(split: str, n: int):
    """Cut every per-row array of `split` to its first n rows."""
    def mutate(raw):
        for k, v in list(raw[split].items()):
            raw[split][k] = v[:n]
        return raw
    return mutate


def _self_ref(n):
    x = []
    x.append(x)
    return x


# Bad values for any array key (labels, features, lengths): f(n) -> value.
BAD_ARRAYS: dict[str, Callable[[int], Any]] = {
    "none": lambda n: None,
    "string": lambda n: "not an array",
    "bytes": lambda n: b"\x00\x01\x02",
    "scalar": lambda n: 3.5,
    "bool_scalar": lambda n: True,
    "dict": lambda n: {"a": np.zeros(n)},
    "set": lambda n: {1.0, 2.0},
    "empty_list": lambda n: [],
    "ragged_arrays": lambda n: [np.zeros(k + 1, np.float32) for k in range(n)],
    "ragged_lists": lambda n: [[1.0, 2.0]] + [[1.0]] * (n - 1),
    "nones": lambda n: [None] * n,
    "mixed_objects": lambda n: [1.0, "x"] + [None] * (n - 2),
    "number_strings": lambda n: np.array(["1.0"] * n),
    "bools": lambda n: np.ones(n, bool),
    "complex": lambda n: np.ones(n, complex),
    "nested_garbage": lambda n: [{"a": [1, 2]}] * n,
    "four_d": lambda n: np.zeros((n, 1, 1, 1), np.float32),
    "self_referential": _self_ref,
    "huge_ints": lambda n: [2 ** 80] * n,
    "object_scalar": lambda n: np.array(5, dtype=object),
    "nested_deeply": lambda n: _nest([1.0] * n, 40),
}


def _nest(value, depth: int):
    for _ in range(depth):
        value = [value]
    return value
ARRAY_KEYS = ("regression_labels", "text", "audio", "audio_lengths", "vision", "vision_lengths")
LABEL_LIKE = ("regression_labels", "audio_lengths", "vision_lengths")  # 1-D (N,)
FEATURES = ("text", "audio", "vision")


def _data_variants() -> list[Variant]:
    rnd = random.Random(SEED)
    out: list[Variant] = []
    add = lambda name, mutate, key: out.append(Variant(name, mutate, key))  # noqa: E731

    # --- wrong types, objects, ragged rows, wrong ndims: every array key of every split
    for s in SPLITS:
        for k in ARRAY_KEYS:
            for bad, fn in BAD_ARRAYS.items():
                add(f"{s}/{k}={bad}", _set(s, k, fn), f"{s}/{k}")
            if k in FEATURES:  # 1-D where (N, D) or (N, T, D) belongs
                add(f"{s}/{k}=1d", _set(s, k, lambda n: np.zeros(n, np.float32)), f"{s}/{k}")
            else:  # 2-D wide where (N,) belongs
                add(f"{s}/{k}=2d", _set(s, k, lambda n: np.zeros((n, 2), np.float32)), f"{s}/{k}")

    # --- dropped keys and splits
    for s in SPLITS:
        add(f"drop split {s}", _edit(lambda r, s=s: r.pop(s)), s)
        for k in ARRAY_KEYS:
            add(f"drop {s}/{k}", _edit(lambda r, s=s, k=k: r[s].pop(k)), k)
        add(f"drop {s}/audio+lengths",
            _edit(lambda r, s=s: [r[s].pop(k) for k in ("audio", "audio_lengths")]), "audio")
    add("drop all labels", _edit(lambda r: [r[s].pop("regression_labels") for s in SPLITS]),
        "regression_labels")

    # --- row counts that disagree with the labels
    for s in SPLITS:
        for k in ARRAY_KEYS[1:] + ("id",):
            for delta in (-1, 1):
                def fn(n, k=k, delta=delta, s=s):
                    base = base_regression()[s][k]
                    extra = base[:1]
                    return base[:n + delta] if delta < 0 else (
                        base + extra if isinstance(base, list) else np.concatenate([base, extra]))
                add(f"{s}/{k} rows{delta:+d}", _set(s, k, fn), "regression_labels")

    # --- shapes: feature dims, T = 0, D = 0, (N, 2) labels
    for s in ("valid", "test"):
        add(f"{s}/text dim 6", _set(s, "text", lambda n: np.zeros((n, 1, 6), np.float32)),
            f"{s}/text")
        add(f"{s}/audio dim 2", _set(s, "audio", lambda n: np.zeros((n, 4, 2), np.float32)),
            f"{s}/audio")
    for s in SPLITS:
        add(f"{s}/audio T=0", _set(s, "audio", lambda n: np.zeros((n, 0, 3), np.float32)),
            f"{s}/audio")
        add(f"{s}/vision D=0", _set(s, "vision", lambda n: np.zeros((n, 2, 0), np.float32)),
            f"{s}/vision")

    # --- split sizes: train >= 2 rows, valid/test >= 1
    add("train 1 row", _rows("train", 1), "train/regression_labels")
    for s in SPLITS:
        add(f"{s} 0 rows", _rows(s, 0), f"{s}/regression_labels")

    # --- non-finite labels; features that hold no finite value
    for s in SPLITS:
        for bad in (np.nan, np.inf, -np.inf):
            i = rnd.randrange(SIZES[s])
            add(f"{s}/regression_labels[{i}]={bad}",
                _edit(lambda r, s=s, i=i, bad=bad: r[s]["regression_labels"].__setitem__(i, bad)),
                f"{s}/regression_labels")
        for m in FEATURES:
            for bad in (np.nan, np.inf):
                add(f"{s}/{m} all {bad}",
                    _edit(lambda r, s=s, m=m, bad=bad: r[s][m].fill(bad)), f"{s}/{m}")

        def nan_valid_steps(r, s=s):  # padding finite, every valid step NaN
            x, lengths = r[s]["audio"], r[s]["audio_lengths"]
            x[np.arange(x.shape[1])[None, :] < lengths[:, None]] = np.nan
        add(f"{s}/audio valid steps all NaN", _edit(nan_valid_steps), f"{s}/audio")

    # --- regression labels outside [-3, 3] (any split), unimodal labels likewise
    for s in SPLITS:
        for bad in (30.0, -30.0, 3.5, -4.0, 1e30):
            i = rnd.randrange(SIZES[s])
            add(f"{s}/regression_labels[{i}]={bad:g}",
                _edit(lambda r, s=s, i=i, bad=bad: r[s]["regression_labels"].__setitem__(i, bad)),
                f"{s}/regression_labels must lie in [-3, 3]")

    def unimodal(r, bad=None, only=None):
        for s in (only or SPLITS):
            r[s]["regression_labels_T"] = r[s]["regression_labels"].copy()
        if bad is not None:
            r["test"]["regression_labels_T"][0] = bad
    add("test/regression_labels_T=nan", _edit(lambda r: unimodal(r, np.nan)), "regression_labels_T")
    add("test/regression_labels_T=9", _edit(lambda r: unimodal(r, 9.0)), "regression_labels_T")
    add("regression_labels_T only in train", _edit(lambda r: unimodal(r, only=["train"])),
        "regression_labels_T")
    add("valid/regression_labels_T wrong rows",
        _edit(lambda r: (unimodal(r), r["valid"].__setitem__("regression_labels_T", np.zeros(2)))),
        "valid/regression_labels_T")

    # --- lengths: negative, non-integer, non-finite, strings
    for s in SPLITS:
        for k in ("audio_lengths", "vision_lengths"):
            for bad in (-1, 1.5, np.nan, np.inf):
                i = rnd.randrange(SIZES[s])

                def fn(n, s=s, k=k, i=i, bad=bad):
                    v = base_regression()[s][k].astype(np.float64)
                    v[i] = bad
                    return v
                add(f"{s}/{k}[{i}]={bad}", _set(s, k, fn), f"{s}/{k}")
            add(f"{s}/{k}=strings", _set(s, k, lambda n: ["2"] * n), f"{s}/{k}")

    # --- lengths key only in some splits
    for s in SPLITS:
        add(f"{s}/audio_lengths only here",
            _edit(lambda r, s=s: [r[x].pop("audio_lengths") for x in SPLITS if x != s]),
            "audio_lengths")

    # --- ids: a list of str of the right length
    bad_ids = {"none": lambda n: None, "string": lambda n: "abc", "int": lambda n: 5,
               "dict": lambda n: {"a": 1}, "ints": lambda n: list(range(n)),
               "with_none": lambda n: [None] + ["x"] * (n - 1),
               "short": lambda n: ["x"] * (n - 1), "long": lambda n: ["x"] * (n + 1),
               "2d_array": lambda n: np.array([["x"]] * n), "int_array": lambda n: np.arange(n),
               "nested": lambda n: [["x"]] * n, "bytes": lambda n: [b"x"] * n}
    for s in SPLITS:
        for bad, fn in bad_ids.items():
            add(f"{s}/id={bad}", _set(s, "id", fn), f"{s}/id")

    # --- top level and splits of the wrong type
    for bad, value in (("list", [1, 2]), ("string", "data"), ("none", None), ("int", 5),
                       ("array", np.zeros(3)), ("train only", None)):
        if bad == "train only":
            add("top=train only", lambda r: {"train": r["train"]}, "valid")
        else:
            add(f"top={bad}", lambda r, value=value: value, None)
    for s in SPLITS:
        for bad, value in (("list", []), ("none", None), ("array", np.zeros(2)), ("string", "x")):
            add(f"split {s}={bad}", _edit(lambda r, s=s, value=value: r.__setitem__(s, value)), s)

    # --- a global outside the allow-list
    add("labels=Fraction",
        _edit(lambda r: r["train"].__setitem__("regression_labels", fractions.Fraction(1, 2))),
        "refusing to unpickle fractions.Fraction")
    return _unique(out)


def _class_variants() -> list[Variant]:
    out: list[Variant] = []
    add = lambda name, mutate, key: out.append(Variant(name, mutate, key))  # noqa: E731
    key = "classification_labels"
    for s in SPLITS:
        for bad in (-1, 1.5, 3, 99, np.nan, 1e30):
            def fn(n, bad=bad):
                y = (np.arange(n) % 3).astype(np.float64)
                y[-1] = bad
                return y
            add(f"cls {s}/{key}={bad}", _set(s, key, fn), f"{s}/{key}")
        add(f"cls {s}/{key}=bools", _set(s, key, lambda n: np.ones(n, bool)), f"{s}/{key}")
        add(f"cls drop {s}/{key}", _edit(lambda r, s=s: r[s].pop(key)), key)
    for bad, value in (("none", None), ("string", "neg,neu,pos"), ("int", 3),
                       ("ints", [0, 1, 2]), ("one", ["a"]), ("empty", []),
                       ("duplicates", ["a", "a", "b"]), ("dict", {"a": 0}),
                       ("with_none", [None, "b", "c"]), ("2d", np.array([["a", "b", "c"]])),
                       ("too_few", ["a", "b"])):
        add(f"cls label_names={bad}",
            _edit(lambda r, value=value: r.__setitem__("label_names", value)), "label_names")

    def single_class(r):
        r.pop("label_names")
        for s in SPLITS:
            r[s][key] = np.zeros(SIZES[s], np.int64)
    add("cls one class, no names", _edit(single_class), key)

    def huge_class(r):
        r.pop("label_names")
        r["train"][key] = np.array([0, 1, 2, 0, 1, 10 ** 9])
    add("cls class 1e9, no names", _edit(huge_class), f"train/{key}")
    return _unique(out)


DATA_VARIANTS = _data_variants()
CLASS_VARIANTS = _class_variants()


def _check_data_variant(tmp_path, variant: Variant, base: Callable[[], dict]) -> None:
    raw = variant.mutate(copy.deepcopy(base()))
    path = _write(tmp_path, raw)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # the NaN-zeroing warning is not the point
        _expect_user_error(variant.name, lambda: load_data(path), path, variant.key)


@pytest.mark.parametrize("variant", DATA_VARIANTS, ids=lambda v: v.name)
def test_malformed_regression_data(tmp_path, variant):
    _check_data_variant(tmp_path, variant, base_regression)


@pytest.mark.parametrize("variant", CLASS_VARIANTS, ids=lambda v: v.name)
def test_malformed_classification_data(tmp_path, variant):
    _check_data_variant(tmp_path, variant, base_classification)


@pytest.mark.parametrize("name, content", [
    ("not a pickle", b"this is not a pickle"),
    ("empty file", b""),
    ("truncated", pickle.dumps(base_regression(), protocol=4)[:200]),
    ("numpy object", pickle.dumps({"train": np.array([{"a": 1}], dtype=object)}, protocol=4)),
])
def test_unreadable_data_files(tmp_path, name, content):
    path = tmp_path / DATA_FILE
    path.write_bytes(content)
    _expect_user_error(name, lambda: load_data(str(path)), str(path), None)


def test_data_base_files_are_valid(tmp_path):
    data = load_data(_write(tmp_path, base_regression()))
    assert data.task == "regression" and data.scale == 3.0
    assert data.modalities == ("text", "audio", "vision")
    data = load_data(_write(tmp_path, base_classification()))
    assert data.task == "classification" and data.label_names == ["neg", "neu", "pos"]


# --- valid but odd: must load ---------------------------------------------------------------------

def _check(cond: Callable[[Any], bool]):
    return cond


ODD_DATA: list[tuple[str, Callable[[dict], Any], Callable[[Any], bool]]] = [
    ("text (N, D)", _edit(lambda r: [r[s].__setitem__("text", r[s]["text"][:, 0]) for s in SPLITS]),
     lambda d: d.splits["train"].features["text"].shape == (6, 1, 5)),
    ("labels (N, 1)", _edit(lambda r: [r[s].__setitem__(
        "regression_labels", r[s]["regression_labels"][:, None]) for s in SPLITS]),
     lambda d: d.splits["valid"].regression.shape == (3,)),
    ("labels as lists", _edit(lambda r: [r[s].__setitem__(
        "regression_labels", r[s]["regression_labels"].tolist()) for s in SPLITS]),
     lambda d: d.splits["test"].regression.dtype == np.float32),
    ("int labels", _edit(lambda r: [r[s].__setitem__(
        "regression_labels", np.round(r[s]["regression_labels"]).astype(np.int64)) for s in SPLITS]),
     lambda d: d.scale == 3.0),
    ("labels exactly +-3", _edit(lambda r: r["train"]["regression_labels"].__setitem__(
        slice(0, 2), [-3.0, 3.0])), lambda d: d.scale == 3.0),
    ("labels in [-1, 1]: SIMS scale", _edit(lambda r: [r[s].__setitem__(
        "regression_labels", r[s]["regression_labels"] / 3) for s in SPLITS]),
     lambda d: d.scale == 1.0),
    ("features float64", _edit(lambda r: [r[s].__setitem__("audio", r[s]["audio"].astype(np.float64))
                                          for s in SPLITS]),
     lambda d: d.splits["train"].features["audio"].dtype == np.float32),
    ("features int", _edit(lambda r: [r[s].__setitem__("vision", np.ones(r[s]["vision"].shape, int))
                                      for s in SPLITS]),
     lambda d: d.splits["train"].features["vision"].dtype == np.float32),
    ("features nested lists", _edit(lambda r: [r[s].__setitem__("text", r[s]["text"].tolist())
                                               for s in SPLITS]),
     lambda d: d.splits["valid"].features["text"].shape == (3, 1, 5)),
    ("features object array of equal arrays", _edit(lambda r: [r[s].__setitem__(
        "text", np.array(list(r[s]["text"]) + [None], dtype=object)[:-1]) for s in SPLITS]),
     lambda d: d.splits["train"].features["text"].shape == (6, 1, 5)),
    ("lengths > T are clipped", _edit(lambda r: [r[s].__setitem__(
        "audio_lengths", np.full(SIZES[s], 50)) for s in SPLITS]),
     lambda d: (d.splits["train"].lengths["audio"] == 4).all()),
    ("lengths float integer-valued", _edit(lambda r: [r[s].__setitem__(
        "audio_lengths", r[s]["audio_lengths"].astype(np.float32)) for s in SPLITS]),
     lambda d: d.splits["train"].lengths["audio"].dtype == np.int64),
    ("a zero length", _edit(lambda r: r["train"]["audio_lengths"].__setitem__(0, 0)),
     lambda d: d.splits["train"].lengths["audio"][0] == 0),
    ("id numpy str array", _edit(lambda r: [r[s].__setitem__("id", np.array(r[s]["id"]))
                                            for s in SPLITS]),
     lambda d: d.splits["train"].ids[0] == "train_0"),
    ("id missing in valid", _edit(lambda r: r["valid"].pop("id")),
     lambda d: len(d.splits["valid"].ids) == 3),
    ("no ids at all", _edit(lambda r: [r[s].pop("id") for s in SPLITS]),
     lambda d: len(d.splits["test"].ids) == 3),
    ("MMSA extra keys", _edit(lambda r: [r[s].update(
        text_bert=np.zeros((SIZES[s], 3, 2)), annotations=["Positive"] * SIZES[s],
        classification_labels=np.zeros(SIZES[s])) for s in SPLITS]),
     lambda d: d.task == "regression"),
    ("some NaN/-inf features are zeroed", _edit(lambda r: (
        r["train"]["audio"].__setitem__((0, 0, 0), -np.inf),
        r["test"]["text"].__setitem__((1, 0, 2), np.nan))),
     lambda d: all(np.isfinite(d.splits[s].features[m]).all() for s in SPLITS for m in d.modalities)),
    ("a feature column all NaN", _edit(lambda r: [r[s]["vision"].__setitem__(
        (slice(None), slice(None), 0), np.nan) for s in SPLITS]),
     lambda d: np.isfinite(d.splits["valid"].features["vision"]).all()),
    ("smallest splits 2/1/1", _edit(lambda r: [r.__setitem__(s, {k: v[:n] for k, v in r[s].items()})
                                               for s, n in (("train", 2), ("valid", 1), ("test", 1))]),
     lambda d: [len(d.splits[s]) for s in SPLITS] == [2, 1, 1]),
    ("T differs between splits", _edit(lambda r: r["test"].__setitem__(
        "audio", np.ones((3, 7, 3), np.float32))),
     lambda d: d.splits["train"].features["audio"].shape[1] == 7),
    ("no vision anywhere", _edit(lambda r: [r[s].pop(k) for s in SPLITS
                                            for k in ("vision", "vision_lengths")]),
     lambda d: d.modalities == ("text", "audio")),
    ("unimodal labels everywhere", _edit(lambda r: [r[s].__setitem__(
        "regression_labels_A", -r[s]["regression_labels"]) for s in SPLITS]),
     lambda d: d.has_unimodal_labels),
    ("labels float64", _edit(lambda r: [r[s].__setitem__(
        "regression_labels", r[s]["regression_labels"].astype(np.float64)) for s in SPLITS]),
     lambda d: d.splits["train"].regression.dtype == np.float32),
]

ODD_CLASS: list[tuple[str, Callable[[dict], Any], Callable[[Any], bool]]] = [
    ("float class labels", _edit(lambda r: [r[s].__setitem__(
        "classification_labels", r[s]["classification_labels"].astype(np.float32))
        for s in SPLITS]), lambda d: d.splits["train"].classification.dtype == np.int64),
    ("no label_names", _edit(lambda r: r.pop("label_names")),
     lambda d: d.label_names == ["class0", "class1", "class2"]),
    ("more names than classes seen", _edit(lambda r: r.__setitem__("label_names", list("abcdef"))),
     lambda d: d.num_classes == 6),
    ("label_names tuple", _edit(lambda r: r.__setitem__("label_names", ("x", "y", "z"))),
     lambda d: d.label_names == ["x", "y", "z"]),
    ("labels (N, 1)", _edit(lambda r: [r[s].__setitem__(
        "classification_labels", r[s]["classification_labels"][:, None]) for s in SPLITS]),
     lambda d: d.splits["test"].classification.shape == (3,)),
]


@pytest.mark.parametrize("name, mutate, ok", ODD_DATA, ids=[v[0] for v in ODD_DATA])
def test_odd_but_valid_regression_data_loads(tmp_path, name, mutate, ok):
    path = _write(tmp_path, mutate(base_regression()))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        data = load_data(path)
    assert ok(data), name


@pytest.mark.parametrize("name, mutate, ok", ODD_CLASS, ids=[v[0] for v in ODD_CLASS])
def test_odd_but_valid_classification_data_loads(tmp_path, name, mutate, ok):
    data = load_data(_write(tmp_path, mutate(base_classification())))
    assert ok(data), name


def test_nan_features_warn_and_all_nan_is_named(tmp_path):
    raw = base_regression()
    raw["valid"]["audio"][0, 0, 0] = np.nan
    with pytest.warns(UserWarning, match="replaced 1 non-finite values by 0"):
        load_data(_write(tmp_path, raw))
    raw["valid"]["vision"][:] = -np.inf
    path = _write(tmp_path, raw)
    with pytest.raises(UserError, match="valid/vision holds no finite value"):
        load_data(path)


def test_label_range_message(tmp_path):
    raw = base_regression()
    raw["test"]["regression_labels"][1] = 30.0
    path = _write(tmp_path, raw)
    with pytest.raises(UserError) as err:
        load_data(path)
    assert str(err.value) == (f"{path}: test/regression_labels must lie in [-3, 3] (MOSI/MOSEI) "
                              "or [-1, 1] (CH-SIMS); test has values up to 30")


# =================================================================================================
# Search spaces
# =================================================================================================

BASE_SPACE = {
    "name": "fz",
    "description": "fuzz base",
    "genes": {
        "model.depth": {"type": "int", "low": 1, "high": 2},
        "model.level_widths": {"type": "int", "low": 8, "high": 32, "log": True, "count": 2},
        "model.modalities": {"type": "mask", "choices": ["text", "audio", "vision"]},
        "model.dropout": {"type": "float", "low": 0.0, "high": 0.5},
        "loss.weighting": {"type": "categorical", "choices": ["fixed", "gdwg"]},
        "train.lr": {"type": "log-float", "low": 1e-3, "high": 1e-2},
    },
    "fixed": {"train.epochs": 3, "model.expert_dim": 16},
    "fitness": {"metric": "loss", "direction": "min"},
    "constraints": {"max_params": 100000},
}
NUMERIC_GENES = ("model.depth", "model.level_widths", "model.dropout", "train.lr")
CHOICE_GENES = ("model.modalities", "loss.weighting")

GARBAGE = {"none": None, "list": [1, 2], "empty_list": [], "string": "x", "int": 5, "bool": True,
           "float": 2.5, "dict": {"a": 1}, "nested": [{"a": [None, {"b": ()}]}],
           "nan": math.nan}


def _space_variants() -> list[Variant]:
    out: list[Variant] = []
    add = lambda name, mutate, key: out.append(Variant(name, mutate, key))  # noqa: E731

    def put(path: tuple, value):
        def mutate(raw):
            node = raw
            for p in path[:-1]:
                node = node[p]
            node[path[-1]] = value
            return raw
        return mutate

    def drop(path: tuple):
        def mutate(raw):
            node = raw
            for p in path[:-1]:
                node = node[p]
            node.pop(path[-1])
            return raw
        return mutate

    # whole document of the wrong type
    for bad, value in (("none", None), ("list", []), ("string", "genes"), ("int", 5), ("bool", True),
                       ("float", 3.5), ("list of base", [BASE_SPACE])):
        add(f"space={bad}", lambda r, value=value: copy.deepcopy(value), None)
    for key in ("gens", 5, None, ("a",)):
        add(f"unknown top key {key!r}", put((key,), 1), repr(key))
    # top-level values
    for bad in ("int", "list", "empty_list", "dict", "none"):
        add(f"name={bad}", put(("name",), GARBAGE[bad]), "name")
    add("name=empty", put(("name",), ""), "name")
    add("name=two lines", put(("name",), "a\nb"), "name")
    for bad in ("int", "list", "dict"):
        add(f"description={bad}", put(("description",), GARBAGE[bad]), "description")
    for bad in ("none", "list", "empty_list", "string", "int", "bool", "nested"):
        add(f"genes={bad}", put(("genes",), GARBAGE[bad]), "genes")
    add("genes={}", put(("genes",), {}), "genes")
    for section in ("fixed", "fitness", "constraints"):
        for bad in ("list", "string", "int", "bool", "nested", "nan"):
            add(f"{section}={bad}", put((section,), GARBAGE[bad]), section)
    # fixed
    for value in ("many", -1, 10 ** 12, True, 1.5, math.nan, math.inf, None, [3], 10 ** 400):
        add(f"fixed train.epochs={value!r:.20}", put(("fixed", "train.epochs"), value),
            "train.epochs")
    for path, value in (("train.epoch", 1), ("model", 1), ("model.depth.x", 1), ("", 1),
                        ("model.dropout", 1.5), ("model.modalities", "xyz"),
                        ("model.modalities", []), ("train.lr", "fast"), ("model.depth", 2),
                        ("model.level_widths", [8, -1]), ("loss.weighting", ["fixed"])):
        add(f"fixed {path}={value!r}", put(("fixed", path), value), path or "''")
    add("fixed int key", put(("fixed", 5), 1), "5")
    add("fixed None key", put(("fixed", None), 1), "None")
    # fitness and constraints
    for value in (5, None, [], "", {"a": 1}, "two\nlines"):
        add(f"fitness.metric={value!r}", put(("fitness", "metric"), value), "fitness.metric")
    for value in ("up", None, 5, [], "MIN", {"min": 1}):
        add(f"fitness.direction={value!r}", put(("fitness", "direction"), value),
            "fitness.direction")
    add("fitness unknown key", put(("fitness", "dir"), "min"), "dir")
    for value in (-1, 0, True, "100", 1.5, [], math.nan):
        add(f"max_params={value!r}", put(("constraints", "max_params"), value), "max_params")
    add("constraints unknown key", put(("constraints", "max_flops"), 1), "max_flops")

    # gene names
    for name in ("model.deep", "model", "", "model.depth.x", "nosection.x", "train", 5, None,
                 ("model", "depth")):
        add(f"gene name {name!r}", put(("genes", name), {"type": "int", "low": 1, "high": 2}),
            repr(name))

    # every gene: spec, type, unknown keys, count
    for g in BASE_SPACE["genes"]:
        for bad in ("none", "list", "empty_list", "string", "int", "bool", "nested"):
            add(f"{g} spec={bad}", put(("genes", g), GARBAGE[bad]), g)
        add(f"{g} spec=[spec]", lambda r, g=g: (r["genes"].__setitem__(g, [r["genes"][g]]), r)[1],
            g)
        add(f"{g} no type", drop(("genes", g, "type")), g)
        for value in ("integer", None, 5, ["int"], True, "INT"):
            add(f"{g} type={value!r}", put(("genes", g, "type"), value), g)
        add(f"{g} unknown key hi", put(("genes", g, "hi"), 1), g)
        add(f"{g} unknown key 7", put(("genes", g, 7), 1), g)
        for value in (0, -1, True, "2", 1.5, 10 ** 6, None, [2]):
            add(f"{g} count={value!r}", put(("genes", g, "count"), value), g)

    # numeric genes: bounds of every wrong kind
    for g in NUMERIC_GENES:
        for bound in ("low", "high"):
            for value in ("1", None, True, math.nan, math.inf, -math.inf, 10 ** 400, [1],
                          {"a": 1}):
                add(f"{g} {bound}={value!r:.12}", put(("genes", g, bound), value), g)
            add(f"{g} no {bound}", drop(("genes", g, bound)), g)
        add(f"{g} low > high", lambda r, g=g: (r["genes"][g].update(low=r["genes"][g]["high"] * 2),
                                               r)[1], g)
        add(f"{g} choices key", put(("genes", g, "choices"), [1, 2]), g)
        for value in ("yes", 1, None):
            add(f"{g} log={value!r}", put(("genes", g, "log"), value), g)
    add("depth count=2 on a scalar field", put(("genes", "model.depth", "count"), 2), "model.depth")
    add("depth low=1.5", put(("genes", "model.depth", "low"), 1.5), "model.depth")
    add("depth low=-1", put(("genes", "model.depth", "low"), -1), "model.depth")
    add("depth high=1e9", put(("genes", "model.depth", "high"), 10 ** 9), "model.depth")
    add("level_widths high=1e12", put(("genes", "model.level_widths", "high"), 10 ** 12),
        "model.level_widths")
    add("level_widths low=0", put(("genes", "model.level_widths", "low"), 0), "model.level_widths")
    add("dropout high=1e300", put(("genes", "model.dropout", "high"), 1e300), "model.dropout")
    add("dropout low=-1e300", put(("genes", "model.dropout", "low"), -1e300), "model.dropout")
    add("dropout log=true", put(("genes", "model.dropout", "log"), True), "model.dropout")
    add("lr low=0", put(("genes", "train.lr", "low"), 0), "train.lr")
    add("lr low=-1", put(("genes", "train.lr", "low"), -1.0), "train.lr")

    # choice genes
    for g in CHOICE_GENES:
        for bad in ("none", "empty_list", "string", "int", "dict", "bool"):
            add(f"{g} choices={bad}", put(("genes", g, "choices"), GARBAGE[bad]), g)
        add(f"{g} no choices", drop(("genes", g, "choices")), g)
        add(f"{g} choices=[None]", put(("genes", g, "choices"), [None]), g)
        add(f"{g} choices=nested", put(("genes", g, "choices"), [["text"], {"a": 1}]), g)
        add(f"{g} choices=ints", put(("genes", g, "choices"), [1, 2]), g)
        add(f"{g} low key", put(("genes", g, "low"), 0), g)
    add("modalities choices=smell", put(("genes", "model.modalities", "choices"), ["smell"]),
        "model.modalities")
    add("modalities choices duplicate",
        put(("genes", "model.modalities", "choices"), ["text", "text"]), "model.modalities")
    add("modalities count=2", put(("genes", "model.modalities", "count"), 2), "model.modalities")
    add("weighting bad middle choice",
        put(("genes", "loss.weighting", "choices"), ["fixed", "nope", "gdwg"]),
        "loss.weighting")
    add("weighting choice nan", put(("genes", "loss.weighting", "choices"), ["fixed", math.nan]),
        "loss.weighting")
    return _unique(out)


SPACE_VARIANTS = _space_variants()


@pytest.mark.parametrize("variant", SPACE_VARIANTS, ids=lambda v: v.name)
def test_malformed_search_space(variant):
    raw = variant.mutate(copy.deepcopy(BASE_SPACE))
    _expect_user_error(variant.name, lambda: parse_space(raw, SPACE_SOURCE), SPACE_SOURCE,
                       variant.key)


ODD_SPACES: list[tuple[str, Callable[[dict], Any]]] = [
    ("fixed/fitness/constraints empty", lambda r: {**r, "fixed": None, "fitness": None,
                                                  "constraints": None}),
    ("no optional sections", lambda r: {"genes": r["genes"]}),
    ("description None", lambda r: {**r, "description": None}),
    ("max_params None", lambda r: {**r, "constraints": {"max_params": None}}),
    ("int bounds as floats", lambda r: (r["genes"]["model.depth"].update(low=1.0, high=2.0), r)[1]),
    ("log-float with log: true", lambda r: (r["genes"]["train.lr"].update(log=True), r)[1]),
    ("categorical list field", lambda r: (r["genes"].__setitem__(
        "model.level_widths", {"type": "categorical", "choices": [8, 16], "count": 2}), r)[1]),
    ("fitness direction only", lambda r: {**r, "fitness": {"direction": "max"}}),
    ("fixed modalities shorthand", lambda r: {**r, "genes": {"model.depth": r["genes"]["model.depth"]},
                                              "fixed": {"model.modalities": "ta"}}),
    ("one gene", lambda r: {"genes": {"model.dropout": r["genes"]["model.dropout"]}}),
]


@pytest.mark.parametrize("name, mutate", ODD_SPACES, ids=[v[0] for v in ODD_SPACES])
def test_odd_but_valid_space_parses(name, mutate):
    space = parse_space(mutate(copy.deepcopy(BASE_SPACE)), SPACE_SOURCE)
    cfg = space.to_config([0.5] * space.size)
    assert cfg.model.modalities, name


@pytest.mark.parametrize("name, text", [
    ("scalar", "42\n"), ("string", "just a string\n"), ("list", "- a\n- b\n"),
    ("broken", "genes: [unclosed\n"), ("genes list", "genes:\n  - model.depth\n"),
    ("inf bound", "genes:\n  model.dropout: {type: float, low: 0, high: .inf}\n"),
    ("nan bound", "genes:\n  model.dropout: {type: float, low: .nan, high: 0.5}\n"),
    ("exponent string bound", "genes:\n  train.lr: {type: log-float, low: 1e-4, high: 1.0e-2}\n"),
    ("date bound", "genes:\n  model.depth: {type: int, low: 2020-01-01, high: 2}\n"),
])
def test_malformed_space_files(tmp_path, name, text):
    path = tmp_path / SPACE_SOURCE
    path.write_text(text)
    _expect_user_error(name, lambda: load_space(path), str(path), None)


# =================================================================================================
# Run configs
# =================================================================================================

BASE_CONFIG = {
    "model": {"depth": 2, "level_widths": [16, 16, 8, 8], "modalities": ["text", "audio"],
              "dropout": 0.1, "encoder": "gru"},
    "loss": {"weighting": "gdwg", "lambda_main": 1.0},
    "train": {"epochs": 3, "lr": 0.01, "batch_size": 8},
}
# int fields whose negative or astronomically large values are errors
BOUNDED_INTS = {"model.depth", "model.expert_dim", "model.unified_dim", "model.tower_dim",
                "loss.coarse_classes", "train.epochs", "train.batch_size", "train.patience"}
# float fields that must not be negative
NON_NEGATIVE_FLOATS = {"model.dropout", "loss.smooth_beta", "loss.lambda_main",
                       "loss.lambda_coarse", "loss.lambda_unimodal",
                       "loss.lambda_unified", "loss.gamma_kl", "loss.lambda_contrast",
                       "loss.corr_weight", "loss.contrast_tau", "loss.gdwg_tau",
                       "train.lr", "train.weight_decay"}
CHOICE_FIELDS = {"model.encoder", "loss.regression_loss", "loss.weighting"}
BAD_BY_TYPE = {
    int: ("many", "10", True, False, None, [1], {"a": 1}, 1.5, math.nan, math.inf, 10 ** 400, "1e400"),
    float: ("abc", "0.1", True, None, [0.1], {"a": 1}, math.nan, math.inf, -math.inf, 10 ** 400,
            "nan", "1e400", "-inf"),
    str: (5, None, ["x"], True, {"a": 1}, 1.5),
    bool: ("yes", "true", 1, 0, None, [True], 1.0),
}
BAD_LISTS = {
    "model.modalities": (5, None, {"a": 1}, [], ["smell"], [1], "xyz", [["text"]], [None], True),
    "model.level_widths": ("abc", [1.5], [-1], [], [10 ** 9], None, [[8]], [True], 5, {"a": 1},
                           ["8"], [16, math.nan]),
}


def _config_variants() -> list[Variant]:
    out: list[Variant] = []
    add = lambda name, mutate, key: out.append(Variant(name, mutate, key))  # noqa: E731

    def put(section, field, value):
        def mutate(raw):
            raw.setdefault(section, {})[field] = value
            return raw
        return mutate

    for bad, value in (("list", []), ("string", "model"), ("int", 5), ("zero", 0),
                       ("empty string", ""), ("false", False), ("true", True), ("float", 3.5),
                       ("list of base", [BASE_CONFIG])):
        add(f"config={bad}", lambda r, value=value: copy.deepcopy(value), None)
    for section in ("model", "loss", "train"):
        for bad in ("list", "empty_list", "string", "int", "bool", "nested", "nan"):
            add(f"{section}={bad}", lambda r, s=section, b=bad: {**r, s: GARBAGE[b]}, section)
        add(f"{section}=0", lambda r, s=section: {**r, s: 0}, section)
        add(f"{section} unknown field", put(section, "depht", 1), "depht")
        add(f"{section} int field key", put(section, 7, 1), "7")
    for key in ("modle", 5, None, ("model",)):
        add(f"unknown section {key!r}", lambda r, key=key: {**r, key: {}}, repr(key))

    defaults = RunConfig().to_dict()
    for section, fields in defaults.items():
        for field, default in fields.items():
            path = f"{section}.{field}"
            if isinstance(default, list):
                bads = BAD_LISTS.get(path, (5, None, {"a": 1}))
            else:
                bads = BAD_BY_TYPE[type(default)]
            for value in bads:
                add(f"{path}={value!r:.16}", put(section, field, value), path)
            if path in BOUNDED_INTS:
                for value in (-1, -10 ** 30, 10 ** 12, 2.0 ** 70):
                    add(f"{path}={value!r:.16}", put(section, field, value), path)
            if path in NON_NEGATIVE_FLOATS:
                add(f"{path}=-0.5", put(section, field, -0.5), path)
            if path in CHOICE_FIELDS:
                add(f"{path}=bogus", put(section, field, "bogus"), path)
    add("model.dropout=1.0", put("model", "dropout", 1.0), "model.dropout")
    add("train.select_metric=empty", put("train", "select_metric", ""), "train.select_metric")
    return _unique(out)


CONFIG_VARIANTS = _config_variants()


@pytest.mark.parametrize("variant", CONFIG_VARIANTS, ids=lambda v: v.name)
def test_malformed_run_config(variant):
    raw = variant.mutate(copy.deepcopy(BASE_CONFIG))
    _expect_user_error(variant.name, lambda: RunConfig.from_dict(raw, CONFIG_SOURCE),
                       CONFIG_SOURCE, variant.key)


ODD_CONFIGS: list[tuple[str, Any, Callable[[RunConfig], bool]]] = [
    ("empty file", None, lambda c: c == RunConfig.from_dict({})),
    ("empty mapping", {}, lambda c: c.model.depth == RunConfig().model.depth),
    ("sections null", {"model": None, "train": None}, lambda c: c.train.epochs >= 1),
    ("lr 1e-3 as YAML 1.1 string", {"train": {"lr": "1e-3"}}, lambda c: c.train.lr == 1e-3),
    ("int field as 3.0", {"train": {"epochs": 3.0}}, lambda c: c.train.epochs == 3),
    ("float field as int", {"train": {"lr": 1}}, lambda c: c.train.lr == 1.0),
    ("modalities shorthand", {"model": {"modalities": "tv"}},
     lambda c: c.model.modalities == ["text", "vision"]),
    ("modalities duplicated, unordered", {"model": {"modalities": ["vision", "text", "text"]}},
     lambda c: c.model.modalities == ["text", "vision"]),
    ("level_widths tuple", {"model": {"level_widths": (8, 8, 8, 8)}},
     lambda c: c.model.level_widths == [8, 8, 8, 8]),
    ("grad_clip 0: no clipping", {"train": {"grad_clip": 0}}, lambda c: c.train.grad_clip == 0.0),
]


@pytest.mark.parametrize("name, raw, ok", ODD_CONFIGS, ids=[v[0] for v in ODD_CONFIGS])
def test_odd_but_valid_run_config(name, raw, ok):
    assert ok(RunConfig.from_dict(copy.deepcopy(raw), CONFIG_SOURCE)), name


@pytest.mark.parametrize("name, text", [
    ("scalar", "42\n"), ("list", "- model\n"), ("broken", "model: {depth: 1\n"),
    ("section list", "model: [1, 2]\n"), ("inf", "train: {lr: .inf}\n"),
    ("exponent overflow", "train: {epochs: 1e400}\n"), ("date", "train: {lr: 2020-01-01}\n"),
    ("bool for int", "train: {epochs: yes}\n"),
])
def test_malformed_run_config_files(tmp_path, name, text):
    path = tmp_path / CONFIG_SOURCE
    path.write_text(text)
    _expect_user_error(name, lambda: load_run_config(path), str(path), None)


def test_variant_counts():
    assert len(DATA_VARIANTS) + len(CLASS_VARIANTS) >= 200
    assert len(SPACE_VARIANTS) >= 100
    assert len(CONFIG_VARIANTS) >= 100


# =================================================================================================
# End to end through the CLI: exit code 2, one line on stderr, no output directory
# =================================================================================================

def _cli_bad_labels(tmp_path):
    raw = base_regression()
    raw["test"]["regression_labels"][0] = 30.0
    return ["--data", _write(tmp_path, raw)], "test/regression_labels"


def _cli_ragged_text(tmp_path):
    raw = base_regression()
    raw["valid"]["text"] = [np.zeros(k + 1) for k in range(3)]
    return ["--data", _write(tmp_path, raw)], "valid/text"


def _cli_empty_valid(tmp_path):
    raw = base_regression()
    raw["valid"] = {k: v[:0] for k, v in raw["valid"].items()}
    return ["--data", _write(tmp_path, raw)], "valid/regression_labels"


def _cli_bad_arch(tmp_path):
    arch = tmp_path / "arch.yaml"
    arch.write_text("model:\n  depth: many\n")
    return ["--data", _write(tmp_path, base_regression()), "--arch", str(arch)], "model.depth"


@pytest.mark.parametrize("make", [_cli_bad_labels, _cli_ragged_text, _cli_empty_valid,
                                  _cli_bad_arch], ids=lambda f: f.__name__[5:])
def test_cli_train_fails_in_one_line(tmp_path, capsys, make):
    from evo_msa.cli import main

    args, key = make(tmp_path)
    out = tmp_path / "o"
    code = main(["train", *args, "--out", str(out)])
    captured = capsys.readouterr()
    lines = captured.err.splitlines()
    assert code == 2, captured
    assert len(lines) == 1 and lines[0].startswith("evo-msa train: error: "), captured.err
    assert key in lines[0]
    assert not out.exists()


# =================================================================================================
# Hostile YAML: alias bombs, recursive anchors, deep nesting, huge files (fast, one line)
# =================================================================================================

@pytest.mark.parametrize("field", ["model.encoder", "train.select_metric", "model.modalities"])
def test_yaml_alias_bomb_is_refused_fast(tmp_path, field):
    import time

    from tests.hostile_files import yaml_alias_bomb

    path = yaml_alias_bomb(tmp_path / CONFIG_SOURCE, field)
    assert path.stat().st_size < 1024
    start = time.perf_counter()
    msg = _expect_user_error("alias bomb", lambda: load_run_config(path), str(path), None)
    assert time.perf_counter() - start < 5
    assert "alias" in msg


@pytest.mark.parametrize("loader", ["space", "study"])
def test_yaml_alias_bomb_in_spaces_and_studies(tmp_path, loader):
    from evo_msa.studies import load_study
    from tests.hostile_files import yaml_alias_bomb

    path = yaml_alias_bomb(tmp_path / "bomb.yaml", "x.name")
    load = load_space if loader == "space" else load_study
    _expect_user_error(loader, lambda: load(path), str(path), "alias")


@pytest.mark.parametrize("name, text, key", [
    ("recursive anchor", "model: &a [*a]\n", "recursive"),
    ("deep nesting", "model: " + "[" * 5000 + "]" * 5000 + "\n", "nested"),
    ("huge integer", "train: {epochs: " + "9" * 5000 + "}\n", "usable"),
    ("not utf-8", "train: {lr: \xff}\n", "UTF-8"),
])
def test_hostile_yaml_is_one_line(tmp_path, name, text, key):
    path = tmp_path / CONFIG_SOURCE
    path.write_bytes(text.encode("latin-1"))
    _expect_user_error(name, lambda: load_run_config(path), str(path), key)


def test_huge_yaml_file_is_refused_before_reading(tmp_path):
    from evo_msa.config import MAX_YAML_BYTES

    path = tmp_path / CONFIG_SOURCE
    with open(path, "wb") as fh:
        fh.truncate(MAX_YAML_BYTES + 1)  # sparse: no disk used
    _expect_user_error("huge", lambda: load_run_config(path), str(path), "bytes")


def test_a_few_yaml_aliases_still_work(tmp_path):
    path = tmp_path / CONFIG_SOURCE
    path.write_text("model: {level_widths: &w [16, 16, 8, 8], expert_dim: &d 16}\n"
                    "train: {batch_size: *d}\n")
    cfg = load_run_config(path)
    assert cfg.model.level_widths == [16, 16, 8, 8] and cfg.train.batch_size == 16


@pytest.mark.parametrize("argv, key", [
    (["train", "--epochs", str(10 ** 9)], "--epochs must be an integer in 1..100000"),
    (["train", "--seeds", *map(str, range(101))], "--seeds must be at most 100 seeds"),
    (["train", "--seeds", "-1"], "--seeds must be a list of integers in 0..4294967295"),
    (["train", "--seeds", "3", "3"], "--seeds must be distinct"),
    (["baseline", "--model", "ridge", "--seeds", str(2 ** 40)], "--seeds must be"),
    (["leaderboard", "RUN", "--top", "-5"], "--top must be an integer in 1..100000"),
    (["report", "RUN", "--top", str(10 ** 9)], "--top must be an integer in 1..100000"),
], ids=["epochs", "seed-count", "negative-seed", "same-seed", "baseline-seed", "lb-top",
        "report-top"])
def test_cli_counts_have_upper_bounds(tmp_path, capsys, argv, key):
    from evo_msa.cli import main

    out = tmp_path / "o"
    argv = [a.replace("RUN", str(tmp_path)) for a in argv]
    if argv[0] in ("train", "baseline"):
        argv += ["--out", str(out)]
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2 and len(err.splitlines()) == 1 and key in err, err
    assert not out.exists()


# =================================================================================================
# File arguments that exist but are no regular file: say what they are (a FIFO is never opened)
# =================================================================================================

def _not_a_file(tmp_path, kind):
    import os

    path = tmp_path / f"arg-{kind}"
    if kind == "directory":
        path.mkdir()
    else:
        os.mkfifo(path)
    return str(path)


@pytest.mark.parametrize("kind", ["directory", "fifo"])
@pytest.mark.parametrize("argv", [
    ["data", "{p}"],
    ["train", "--data", "{p}", "--out", "{out}"],
    ["train", "--arch", "{p}", "--out", "{out}"],
    ["train", "--genome", "{p}", "--space", "search_spaces/tiny.yaml", "--out", "{out}"],
    ["train", "--genome", "{g}", "--space", "{p}", "--out", "{out}"],
    ["predict", "--model", "{p}", "--data", "synthetic:mosi"],
    ["export", "--model", "{p}", "--out", "{out}"],
    ["report", "{p}", "--out", "{out}"],
    ["leaderboard", "{p}", "--out", "{out}"],
], ids=["data", "train-data", "arch", "genome", "space", "predict-model", "export-model",
        "report", "leaderboard"])
def test_file_arguments_say_what_they_are(tmp_path, capsys, argv, kind):
    from evo_msa.cli import main

    path = _not_a_file(tmp_path, kind)
    genome = tmp_path / "g.json"
    genome.write_text("[0.5]")
    out = tmp_path / "o"
    argv = [a.format(p=path, out=out, g=genome) for a in argv]
    code = main(argv)
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1, err
    assert path in err and "no such" not in err
    assert ("directory" if kind == "directory" else "FIFO") in err, err
    assert not out.exists()
