"""Turn a data spec (an MMSA-layout pickle path, or `synthetic:NAME?opts`) into `MSAData`.

This is the one place data specs are parsed and pickles are validated; every problem with the
file is a one-line UserError naming the file and the key.
"""
from __future__ import annotations

import dataclasses
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from evo_msa.data.dataset import MODALITIES, SPLITS, MSAData, Split
from evo_msa.data.safe_pickle import safe_load
from evo_msa.data.synthetic import NAMES as SYNTHETIC_NAMES
from evo_msa.data.synthetic import SPLIT_SIZES as SYNTHETIC_SIZES
from evo_msa.data.synthetic import make_synthetic, noise_modalities
from evo_msa.errors import UserError, brief

SYNTHETIC_OPTIONS = ("seed", "n", "noise", "seq")
_UNIMODAL_KEYS = {"text": "regression_labels_T", "audio": "regression_labels_A",
                  "vision": "regression_labels_V"}
_STD_FLOOR = 1e-6
MAX_SYNTHETIC_STEPS = 5_000_000  # samples x time steps of synthetic data (~2.5 GB of features)


@dataclass(frozen=True)
class DataSpec:
    """A parsed data spec: a pickle `path`, or a synthetic data set and its options."""

    path: Path | None = None
    synthetic: str | None = None
    seed: int = 0
    n: int | None = None
    noise: tuple[str, ...] = ()
    seq_len: int = 1


def _int_option(spec: str, key: str, value: str, minimum: int) -> int:
    try:
        number = int(value)
    except ValueError:
        raise UserError(f"{spec}: option {key} must be an integer, got {value!r}") from None
    if number < minimum:
        raise UserError(f"{spec}: option {key} must be >= {minimum}, got {number}")
    return number


def parse_data_spec(spec: str) -> DataSpec:
    """`synthetic:NAME[?seed=1&n=600&noise=vision,audio&seq=5]`, else a pickle path."""
    if not spec.startswith("synthetic:"):
        return DataSpec(path=Path(spec))
    name, _, query = spec[len("synthetic:"):].partition("?")
    if name not in SYNTHETIC_NAMES:
        raise UserError(f"{spec}: unknown synthetic data set {name!r} "
                        f"(choose from {', '.join(SYNTHETIC_NAMES)})")
    opts: dict = {}
    seen: set[str] = set()
    for item in filter(None, query.split("&")):
        key, eq, value = item.partition("=")
        if key not in SYNTHETIC_OPTIONS:
            raise UserError(f"{spec}: unknown option {key!r} "
                            f"(valid options: {', '.join(SYNTHETIC_OPTIONS)})")
        if not eq:
            raise UserError(f"{spec}: option {key} needs a value ({key}=...)")
        if key in seen:
            raise UserError(f"{spec}: option {key} is given twice")
        seen.add(key)
        if key == "noise":
            opts["noise"] = noise_modalities(filter(None, value.split(",")), spec)
        elif key == "seq":
            opts["seq_len"] = _int_option(spec, key, value, 1)
        else:
            opts[key] = _int_option(spec, key, value, 0 if key == "seed" else 1)
    default_n = sum(SYNTHETIC_SIZES["mosi" if name == "sims" else name])
    steps = (opts.get("n") or default_n) * opts.get("seq_len", 1)
    if steps > MAX_SYNTHETIC_STEPS:
        raise UserError(f"{spec}: n x seq must be at most {MAX_SYNTHETIC_STEPS:,} "
                        f"(time steps to generate), got {steps:,}")
    return DataSpec(synthetic=name, **opts)


# --- pickles -------------------------------------------------------------------------------------

MIN_ROWS = {"train": 2, "valid": 1, "test": 1}  # train: a z-score and a batch need 2 rows
MAX_SCALE = 3.0  # regression labels: [-3, 3] (MOSI/MOSEI) or [-1, 1] (CH-SIMS)
MAX_CLASSES_UNNAMED = 1000  # classification without label_names: classes 0..K-1, K <= this
MAX_NAME_CHARS = 1000  # an id or a label name
_KINDS = {"b": "booleans", "c": "complex numbers", "U": "strings", "S": "bytes",
          "M": "dates", "m": "time deltas", "V": "records"}


def _what(value) -> str:
    """A short description of what was found, for messages."""
    if isinstance(value, np.ndarray):
        return f"an array of dtype {value.dtype} and shape {value.shape}"
    if value is None:
        return "None"
    name = {str: "string", bool: "boolean", int: "single integer", float: "single number"}.get(
        type(value), type(value).__name__)
    return f"{'an' if name[0] in 'aeiou' else 'a'} {name}"


def _non_numeric(arr: np.ndarray) -> str:
    """What makes an object array non-numeric: its first element that is not a number."""
    for item in arr.flat:
        if isinstance(item, bool) or not isinstance(item, (int, float, np.number)):
            return f"non-numeric values (e.g. {type(item).__name__} {brief(item)})"
    return "integers too large for int64"


MAX_NESTING = 32  # numpy arrays have at most 64 dims; features have 3


def _check_expansion(path: Path, where: str, value) -> None:
    """Refuse a list (or object array) that numpy would expand to more values than the file
    could hold: a pickle can repeat one shared array a million times in a few bytes."""
    if not isinstance(value, (list, tuple)) and not (
            isinstance(value, np.ndarray) and value.dtype.kind == "O"):
        return
    try:
        size = path.stat().st_size
    except OSError:
        size = 0
    limit = size + (1 << 20)
    count, stack = 0, [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, np.ndarray) and item.dtype.kind != "O":
            count += item.size
        elif isinstance(item, (str, bytes, bytearray)):
            count += len(item)
        elif isinstance(item, (list, tuple, np.ndarray)):
            if depth >= MAX_NESTING:
                raise UserError(f"{path}: {where} is nested more than {MAX_NESTING} levels deep "
                                "(expected a numeric array)")
            count += item.size if isinstance(item, np.ndarray) else len(item)
            if count <= limit:
                stack.extend((x, depth + 1) for x in (item.flat if isinstance(item, np.ndarray)
                                                      else item))
        else:
            count += 1
        if count > limit:
            raise UserError(f"{path}: {where} expands to more than {limit:,} values, more than "
                            f"a {size:,}-byte file holds (a list repeating one shared array?)")


def _numeric(path: Path, where: str, value, expected: str) -> np.ndarray:
    """`value` as an int/float array (possibly the very object that was read: copy it before
    editing), or a UserError naming `where` and saying what was `expected` and what was found.
    Objects, strings, booleans, complex numbers and ragged lists are refused."""
    def fail(found: str):
        return UserError(f"{path}: {where} must be {expected}, got {found}")

    if value is None or isinstance(value, (str, bytes, bytearray, dict, set, frozenset, bool)):
        raise fail(_what(value))
    _check_expansion(path, where, value)
    try:
        arr = np.asarray(value)
        if arr.dtype.kind == "O" and arr.ndim:  # e.g. an object array of equal-length arrays
            arr = np.array(arr.tolist())
    except Exception as exc:  # noqa: BLE001 - any failure here means not an array
        if "inhomogeneous" in str(exc):
            raise fail("a ragged list (rows of different lengths)") from None
        raise fail(f"{_what(value)} that is not an array "
                   f"({type(exc).__name__}: {' '.join(str(exc).split())[:120]})") from None
    if arr.dtype.kind == "O":
        raise fail(_what(value) if arr.ndim == 0 else f"{_what(value)} holding {_non_numeric(arr)}")
    if arr.dtype.kind not in "iuf":
        raise fail(f"{_KINDS.get(arr.dtype.kind, str(arr.dtype))} (dtype {arr.dtype})")
    return arr


def _vector(path: Path, where: str, value, n_ref: tuple[str, int] | None,
            expected: str = "a 1-D numeric array (N,)") -> np.ndarray:
    """A 1-D numeric array, finite, with as many rows as `n_ref` (name, rows) when given.
    (N, 1) is accepted (some MMSA files store labels that way)."""
    y = _numeric(path, where, value, expected)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1:
        raise UserError(f"{path}: {where} must be 1-D (N,), got shape {y.shape}")
    if not np.isfinite(y).all():
        raise UserError(f"{path}: {where} holds NaN or infinite values "
                        f"({int((~np.isfinite(y)).sum())} of {len(y)})")
    if n_ref is not None and len(y) != n_ref[1]:
        raise UserError(f"{path}: {where} has {len(y)} rows but {n_ref[0]} has {n_ref[1]}")
    return y


def _regression(path: Path, split: str, key: str, y: np.ndarray) -> np.ndarray:
    """Sentiment scores: finite (checked by `_vector`) and within [-3, 3]."""
    if len(y) and float(np.abs(y).max()) > MAX_SCALE:
        lo, hi = float(y.min()), float(y.max())
        found = f"up to {hi:g}" if hi > MAX_SCALE else f"down to {lo:g}"
        raise UserError(f"{path}: {split}/{key} must lie in [-3, 3] (MOSI/MOSEI) or [-1, 1] "
                        f"(CH-SIMS); {split} has values {found}")
    return y.astype(np.float32)


def _classes(path: Path, split: str, key: str, y: np.ndarray, names: list[str] | None) -> np.ndarray:
    """Emotion classes: integers 0..K-1 (K = len(label_names), or at most MAX_CLASSES_UNNAMED)."""
    if not len(y):
        return y.astype(np.int64)
    if not np.array_equal(y, np.round(y)):
        bad = y[y != np.round(y)][0]
        raise UserError(f"{path}: {split}/{key} must be integer class indices 0..K-1, "
                        f"got {bad:g}")
    lo, hi = float(y.min()), float(y.max())
    if lo < 0:
        raise UserError(f"{path}: {split}/{key} must be class indices 0..K-1, got {lo:g}")
    if names is not None and hi >= len(names):
        raise UserError(f"{path}: {split}/{key} go up to {hi:g} but label_names has only "
                        f"{len(names)} names (classes 0..{len(names) - 1})")
    if names is None and hi >= MAX_CLASSES_UNNAMED:
        raise UserError(f"{path}: {split}/{key} go up to {hi:g}; without label_names at most "
                        f"{MAX_CLASSES_UNNAMED} classes (0..{MAX_CLASSES_UNNAMED - 1}) are allowed")
    return y.astype(np.int64)


def _str_list(path: Path, where: str, value) -> list[str]:
    """A list (or 1-D array) of str, for ids and label names."""
    if isinstance(value, np.ndarray) and value.ndim == 1:
        value = value.tolist()
    if not isinstance(value, (list, tuple)):
        raise UserError(f"{path}: {where} must be a list of str, got {_what(value)}")
    bad = [v for v in value if not isinstance(v, str)]
    if bad:
        raise UserError(f"{path}: {where} must be a list of str, holds {brief(bad[0])} "
                        f"({type(bad[0]).__name__})")
    long = next((v for v in value if len(v) > MAX_NAME_CHARS), None)
    if long is not None:  # they end up in every prediction file, one per row
        raise UserError(f"{path}: {where} holds a string of {len(long):,} characters "
                        f"({brief(long, 30)}); at most {MAX_NAME_CHARS} are allowed")
    return [str(v) for v in value]


def _label_names(path: Path, raw: dict) -> list[str] | None:
    """`label_names`: a list of at least 2 distinct str, or None when absent."""
    if "label_names" not in raw:
        return None
    names = _str_list(path, "label_names", raw["label_names"])
    if len(names) < 2:
        raise UserError(f"{path}: label_names must name at least 2 classes, got {len(names)}")
    if len(set(names)) < len(names):
        dup = next(n for i, n in enumerate(names) if n in names[:i])
        raise UserError(f"{path}: label_names must be distinct, {brief(dup)} appears twice")
    return names


def _ids(path: Path, split: str, value, ref: tuple[str, int]) -> list[str]:
    where = f"{split}/id"
    ids = _str_list(path, where, value)
    if len(ids) != ref[1]:
        raise UserError(f"{path}: {where} has {len(ids)} rows but {ref[0]} has {ref[1]}")
    return ids


def _features(path: Path, split: str, m: str, raw: dict, ref: tuple[str, int]):
    """One modality of a split: float32 (N, T, D) and int64 lengths (N,), clipped to T."""
    where = f"{split}/{m}"
    x = _numeric(path, where, raw[m], "a numeric array (N, D) or (N, T, D)")
    if x.ndim == 2:
        x = x[:, None, :]
    if x.ndim != 3:
        raise UserError(f"{path}: {where} must be 2-D (N, D) or 3-D (N, T, D), "
                        f"got shape {x.shape}")
    if len(x) != ref[1]:
        raise UserError(f"{path}: {where} has {len(x)} rows but {ref[0]} has {ref[1]}")
    if x.shape[1] < 1 or x.shape[2] < 1:
        raise UserError(f"{path}: {where} must have T >= 1 time steps and D >= 1 features, "
                        f"got shape {x.shape}")
    x = x.astype(np.float32)  # float64 beyond float32's range becomes inf: zeroed below
    steps = x.shape[1]
    key = f"{m}_lengths"
    if key in raw:
        lengths = _vector(path, f"{split}/{key}", raw[key], ref)
        if (lengths < 0).any() or not np.array_equal(lengths, np.round(lengths)):
            bad = lengths[(lengths < 0) | (lengths != np.round(lengths))][0]
            raise UserError(f"{path}: {split}/{key} must be non-negative integers "
                            f"(valid time steps of {m}), got {bad:g}")
        # Aligned MMSA files can keep the unaligned lengths (> T): all T steps are valid.
        lengths = np.minimum(lengths, steps).astype(np.int64)
    else:
        lengths = np.full(len(x), steps, dtype=np.int64)
    valid = np.arange(steps)[None, :] < lengths[:, None]
    values = x[valid] if valid.any() else x
    if not np.isfinite(values).any():
        raise UserError(f"{path}: {where} holds no finite value (all NaN or infinite)")
    return x, lengths


def _read_split(path: Path, split: str, raw: dict, task: str,
                names: list[str] | None = None, min_rows: int | None = None) -> Split:
    """One split, checked: labels, features 3-D float, lengths, ids, with matching row counts."""
    label_key = "regression_labels" if task == "regression" else "classification_labels"
    if label_key not in raw:
        raise UserError(f"{path}: {split} has no {label_key} (train has)")
    y = _vector(path, f"{split}/{label_key}", raw[label_key], None)
    need = MIN_ROWS.get(split, 1) if min_rows is None else min_rows
    if len(y) < need:
        raise UserError(f"{path}: {split}/{label_key} has {len(y)} rows; {split} needs at least "
                        f"{need}")
    ref = (f"{split}/{label_key}", len(y))
    if task == "regression":
        out = Split(features={}, lengths={}, regression=_regression(path, split, label_key, y))
    else:
        out = Split(features={}, lengths={},
                    classification=_classes(path, split, label_key, y, names))

    for m in MODALITIES:
        if m in raw:
            out.features[m], out.lengths[m] = _features(path, split, m, raw, ref)

    if task == "regression":
        for m, key in _UNIMODAL_KEYS.items():
            if key in raw:
                u = _vector(path, f"{split}/{key}", raw[key], ref)
                out.unimodal[m] = _regression(path, split, key, u)
    _text(path, split, raw, out, ref)
    if "id" in raw:
        out.ids = _ids(path, split, raw["id"], ref)
    else:
        out.ids = [f"{split}_{i:06d}" for i in range(ref[1])]
    return out


def _text(path: Path, split: str, raw: dict, out: Split, ref: tuple[str, int]) -> None:
    """`raw_text` and `text_bert`, kept as stored (row counts checked): only a pretrained text
    encoder reads them, and `data.text` checks their contents then (so a package whose text is
    never used loads whatever its transcripts hold)."""
    if "raw_text" in raw:
        text = raw["raw_text"]
        text = text.tolist() if isinstance(text, np.ndarray) else text
        if not isinstance(text, (list, tuple)) or len(text) != ref[1]:
            raise UserError(f"{path}: {split}/raw_text must be a list of {ref[1]} utterances "
                            f"(one per row of {ref[0]}), got {_what(text)}")
        out.raw_text = list(text)
    if "text_bert" in raw:
        ids = _numeric(path, f"{split}/text_bert", raw["text_bert"],
                       "integer token ids (N, 3, T): ids, attention mask, segment ids")
        if ids.ndim != 3 or ids.shape[0] != ref[1] or ids.shape[1] != 3:
            raise UserError(f"{path}: {split}/text_bert must be (N, 3, T) = ({ref[1]}, 3, T) "
                            f"(ids, attention mask, segment ids), got shape {ids.shape}")
        out.text_bert = ids


def _check_consistent(path: Path, raw: dict, splits: dict[str, Split]) -> None:
    """Same modalities, lengths keys, unimodal labels and feature dims in every split."""
    keys = [m for m in MODALITIES] + [f"{m}_lengths" for m in MODALITIES if m in raw["train"]]
    keys += list(_UNIMODAL_KEYS.values()) if splits["train"].regression is not None else []
    for key in keys:
        have = [s for s in SPLITS if key in raw[s]]
        if have and len(have) < len(SPLITS):
            missing = [s for s in SPLITS if s not in have]
            what = f"modality {key!r}" if key in MODALITIES else key
            raise UserError(f"{path}: {what} is in {', '.join(have)} "
                            f"but not in {', '.join(missing)}")
    for m, x in splits["train"].features.items():
        for s in SPLITS[1:]:
            d = splits[s].features[m].shape[2]
            if d != x.shape[2]:
                raise UserError(f"{path}: {s}/{m} has feature dim {d} "
                                f"but train/{m} has {x.shape[2]}")


def _pad_time(splits: dict[str, Split]) -> None:
    """Zero-pad every split to the longest T of its modality, so T is one number per modality."""
    for m in splits["train"].features:
        steps = max(splits[s].features[m].shape[1] for s in SPLITS)
        for s in SPLITS:
            x = splits[s].features[m]
            if x.shape[1] < steps:
                splits[s].features[m] = np.pad(x, ((0, 0), (0, steps - x.shape[1]), (0, 0)))


def _replace_non_finite(path: Path, splits: dict[str, Split]) -> None:
    """MMSA audio can hold -inf; like MMSA, replace it (and NaN) by 0, and say how many."""
    counts = {}
    for s in SPLITS:
        for m, x in splits[s].features.items():
            bad = ~np.isfinite(x)
            if bad.any():
                counts[f"{s}/{m}"] = int(bad.sum())
                x[bad] = 0.0
    if counts:
        detail = ", ".join(f"{k}: {v}" for k, v in counts.items())
        warnings.warn(f"{path}: replaced {sum(counts.values())} non-finite values by 0 "
                      f"({detail})", UserWarning, stacklevel=3)


def load_pickle(path: str | Path) -> MSAData:
    """Read and validate an MMSA-layout pickle (see /work/shared/data/README.md)."""
    path = Path(path)
    raw = safe_load(path)
    if not isinstance(raw, dict):
        raise UserError(f"{path}: expected a dict with keys train, valid, test, "
                        f"got {type(raw).__name__}")
    for s in SPLITS:
        if s not in raw:
            raise UserError(f"{path}: missing split {s!r} (expected keys train, valid, test)")
        if not isinstance(raw[s], dict):
            raise UserError(f"{path}: split {s!r} must be a dict, got {type(raw[s]).__name__}")

    # MMSA's regression files also carry derived classification_labels: regression wins.
    if "regression_labels" in raw["train"]:
        task = "regression"
    elif "classification_labels" in raw["train"]:
        task = "classification"
    else:
        raise UserError(f"{path}: train has no labels "
                        "(expected regression_labels or classification_labels)")
    names = _label_names(path, raw) if task == "classification" else None
    splits = {s: _read_split(path, s, raw[s], task, names) for s in SPLITS}
    _check_consistent(path, raw, splits)
    if not splits["train"].features:
        raise UserError(f"{path}: no modality found (expected any of {', '.join(MODALITIES)})")
    _pad_time(splits)
    _replace_non_finite(path, splits)

    if task == "regression":
        peak = max(float(np.abs(splits[s].regression).max(initial=0.0)) for s in SPLITS)
        return MSAData(name=path.stem, splits=splits, task=task, scale=1.0 if peak <= 1 else 3.0)

    num_classes = 1 + max(int(splits[s].classification.max(initial=0)) for s in SPLITS)
    if names is None:
        if num_classes < 2:
            raise UserError(f"{path}: classification_labels hold only class 0; need at least "
                            "2 classes (or label_names naming them)")
        names = [f"class{k}" for k in range(num_classes)]
    return MSAData(name=path.stem, splits=splits, task=task, label_names=names)


# --- normalisation -------------------------------------------------------------------------------

def _valid_mask(lengths: np.ndarray, steps: int) -> np.ndarray:
    return np.arange(steps)[None, :] < lengths[:, None]  # (N, T)


def normalization_stats(data: MSAData) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Mean and std (floor 1e-6) of every feature over the TRAIN split's valid time steps."""
    stats = {}
    train = data.splits["train"]
    for m, x in train.features.items():
        valid = x[_valid_mask(train.lengths[m], x.shape[1])].astype(np.float64)  # (steps, D)
        if len(valid):
            stats[m] = valid.mean(axis=0), np.maximum(valid.std(axis=0), _STD_FLOOR)
        else:
            stats[m] = np.zeros(x.shape[2]), np.ones(x.shape[2])
    return stats


def apply_normalization(split: Split, stats: dict[str, tuple[np.ndarray, np.ndarray]]) -> Split:
    """A copy of `split` z-scored with `stats`; padding stays 0."""
    features = {}
    for m, x in split.features.items():
        mean, std = (np.asarray(v, dtype=np.float64) for v in stats[m])
        mask = _valid_mask(split.lengths[m], x.shape[1])[:, :, None]
        features[m] = np.where(mask, (x - mean) / std, 0.0).astype(np.float32)
    return dataclasses.replace(split, features=features)


def normalize(data: MSAData) -> MSAData:
    """Z-score every feature dim with the train split's statistics, applied to all splits;
    padding stays 0. Returns a new MSAData (with the statistics), input untouched."""
    stats = normalization_stats(data)
    splits = {s: apply_normalization(split, stats) for s, split in data.splits.items()}
    return dataclasses.replace(data, splits=splits, normalization=stats)


_normalize = normalize  # load_data's `normalize` flag shadows the function inside it


def load_data(spec: str, *, normalize: bool = True) -> MSAData:
    """Load a data spec (see `parse_data_spec`); features z-scored on train unless told not to."""
    parsed = parse_data_spec(spec)
    if parsed.synthetic is not None:
        data = make_synthetic(parsed.synthetic, seed=parsed.seed, n=parsed.n,
                              noise=parsed.noise, seq_len=parsed.seq_len)
    else:
        data = load_pickle(parsed.path)
    return _normalize(data) if normalize else data


def load_split(spec: str, split: str) -> tuple[Split, str | None, list[str] | None]:
    """One split of a data spec, raw (not normalised), for prediction: labels are optional.
    Returns the split, the task its labels tell (None without labels) and the label names."""
    parsed = parse_data_spec(spec)
    if parsed.synthetic is not None:
        data = load_data(spec, normalize=False)
        if split not in data.splits:
            raise UserError(f"{spec}: no split {split!r} (has {', '.join(data.splits)})")
        return data.splits[split], data.task, data.label_names
    path = parsed.path
    raw = safe_load(path)
    if not isinstance(raw, dict) or split not in raw or not isinstance(raw[split], dict):
        have = ", ".join(k for k in raw if isinstance(raw.get(k), dict)) \
            if isinstance(raw, dict) else type(raw).__name__
        raise UserError(f"{path}: no split {split!r} to predict (has: {have or 'none'})")
    part = raw[split]
    task = ("regression" if "regression_labels" in part
            else "classification" if "classification_labels" in part else None)
    names = _label_names(path, raw) if task == "classification" else None
    if task is not None:
        out = _read_split(path, split, part, task, names, min_rows=1)
    else:
        mods = [m for m in MODALITIES if m in part]
        if not mods:
            raise UserError(f"{path}: {split} has no modality (expected any of "
                            f"{', '.join(MODALITIES)})")
        first = _numeric(path, f"{split}/{mods[0]}", part[mods[0]], "a numeric array")
        ref = (f"{split}/{mods[0]}", len(first))
        out = Split(features={}, lengths={})
        for m in mods:
            out.features[m], out.lengths[m] = _features(path, split, m, part, ref)
        out.ids = (_ids(path, split, part["id"], ref) if "id" in part
                   else [f"{split}_{i:06d}" for i in range(ref[1])])
    for x in out.features.values():
        bad = ~np.isfinite(x)
        if bad.any():
            x[bad] = 0.0
    return out, task, names
