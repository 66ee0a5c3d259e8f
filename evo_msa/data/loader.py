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
from evo_msa.data.synthetic import make_synthetic, noise_modalities
from evo_msa.errors import UserError

SYNTHETIC_OPTIONS = ("seed", "n", "noise", "seq")
_UNIMODAL_KEYS = {"text": "regression_labels_T", "audio": "regression_labels_A",
                  "vision": "regression_labels_V"}
_STD_FLOOR = 1e-6


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
    for item in filter(None, query.split("&")):
        key, eq, value = item.partition("=")
        if key not in SYNTHETIC_OPTIONS:
            raise UserError(f"{spec}: unknown option {key!r} "
                            f"(valid options: {', '.join(SYNTHETIC_OPTIONS)})")
        if not eq:
            raise UserError(f"{spec}: option {key} needs a value ({key}=...)")
        if key == "noise":
            opts["noise"] = noise_modalities(filter(None, value.split(",")), spec)
        elif key == "seq":
            opts["seq_len"] = _int_option(spec, key, value, 1)
        else:
            opts[key] = _int_option(spec, key, value, 0 if key == "seed" else 1)
    return DataSpec(synthetic=name, **opts)


# --- pickles -------------------------------------------------------------------------------------

def _array(path: Path, where: str, value, dtype=None) -> np.ndarray:
    """A copy of `value` as an array (a copy, so callers may edit it in place)."""
    try:
        return np.array(value, dtype=dtype)
    except (TypeError, ValueError) as exc:
        detail = " ".join(str(exc).split())
        raise UserError(f"{path}: {where} is not a numeric array ({detail})") from None


def _labels(path: Path, where: str, value, n_ref: tuple[str, int] | None) -> np.ndarray:
    y = _array(path, where, value)
    if y.ndim == 2 and y.shape[1] == 1:  # some MMSA files store labels as (N, 1)
        y = y[:, 0]
    if y.ndim != 1:
        raise UserError(f"{path}: {where} must be 1-D (N,), got shape {y.shape}")
    if not np.issubdtype(y.dtype, np.number):
        raise UserError(f"{path}: {where} must be numeric, got dtype {y.dtype}")
    if not np.isfinite(y).all():
        raise UserError(f"{path}: {where} holds NaN or infinite values")
    if n_ref is not None and len(y) != n_ref[1]:
        raise UserError(f"{path}: {where} has {len(y)} rows but {n_ref[0]} has {n_ref[1]}")
    return y


def _read_split(path: Path, split: str, raw: dict, task: str) -> Split:
    """One split, checked: features 3-D float, lengths, labels with matching row counts."""
    label_key = "regression_labels" if task == "regression" else "classification_labels"
    if label_key not in raw:
        raise UserError(f"{path}: {split} has no {label_key} (train has)")
    y = _labels(path, f"{split}/{label_key}", raw[label_key], None)
    ref = (f"{split}/{label_key}", len(y))
    if task == "regression":
        out = Split(features={}, lengths={}, regression=y.astype(np.float32))
    else:
        if not np.array_equal(y, np.round(y)) or (y < 0).any():
            raise UserError(f"{path}: {split}/{label_key} must be class indices 0..K-1")
        out = Split(features={}, lengths={}, classification=y.astype(np.int64))

    for m in MODALITIES:
        if m not in raw:
            continue
        x = _array(path, f"{split}/{m}", raw[m], np.float32)
        if x.ndim == 2:
            x = x[:, None, :]
        if x.ndim != 3:
            raise UserError(f"{path}: {split}/{m} must be 2-D (N, D) or 3-D (N, T, D), "
                            f"got shape {x.shape}")
        if len(x) != ref[1]:
            raise UserError(f"{path}: {split}/{m} has {len(x)} rows but {ref[0]} has {ref[1]}")
        steps = x.shape[1]
        if f"{m}_lengths" in raw:
            lengths = _labels(path, f"{split}/{m}_lengths", raw[f"{m}_lengths"], ref)
            if (lengths < 0).any() or not np.array_equal(lengths, np.round(lengths)):
                raise UserError(f"{path}: {split}/{m}_lengths must be non-negative integers")
            # Aligned MMSA files can keep the unaligned lengths (> T): all T steps are valid.
            lengths = np.minimum(lengths, steps).astype(np.int64)
        else:
            lengths = np.full(len(x), steps, dtype=np.int64)
        out.features[m] = x
        out.lengths[m] = lengths

    if task == "regression":
        for m, key in _UNIMODAL_KEYS.items():
            if key in raw:
                out.unimodal[m] = _labels(path, f"{split}/{key}", raw[key], ref).astype(np.float32)
    if "id" in raw:
        if not isinstance(raw["id"], (list, tuple, np.ndarray)):
            raise UserError(f"{path}: {split}/id must be a list of str")
        ids = [str(i) for i in raw["id"]]
        if len(ids) != ref[1]:
            raise UserError(f"{path}: {split}/id has {len(ids)} rows but {ref[0]} has {ref[1]}")
        out.ids = ids
    else:
        out.ids = [f"{split}_{i:06d}" for i in range(ref[1])]
    return out


def _check_consistent(path: Path, splits: dict[str, Split]) -> None:
    """Same modalities, feature dims and unimodal labels in every split."""
    for what, keys in (("modality", lambda s: s.features), ("unimodal label of", lambda s: s.unimodal)):
        for m in MODALITIES:
            have = [s for s in SPLITS if m in keys(splits[s])]
            if have and len(have) < len(SPLITS):
                missing = [s for s in SPLITS if s not in have]
                raise UserError(f"{path}: {what} {m!r} is in {', '.join(have)} "
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
    if not path.is_file():
        raise UserError(f"{path}: no such data file")
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
    splits = {s: _read_split(path, s, raw[s], task) for s in SPLITS}
    _check_consistent(path, splits)
    if not splits["train"].features:
        raise UserError(f"{path}: no modality found (expected any of {', '.join(MODALITIES)})")
    _pad_time(splits)
    _replace_non_finite(path, splits)

    if task == "regression":
        peak = max(float(np.abs(splits[s].regression).max(initial=0.0)) for s in SPLITS)
        return MSAData(name=path.stem, splits=splits, task=task, scale=1.0 if peak <= 1 else 3.0)

    num_classes = 1 + max(int(splits[s].classification.max(initial=0)) for s in SPLITS)
    names = raw.get("label_names")
    if names is None:
        names = [f"class{k}" for k in range(num_classes)]
    elif not isinstance(names, (list, tuple)) or not names:
        raise UserError(f"{path}: label_names must be a non-empty list of str")
    names = [str(k) for k in names]
    if num_classes > len(names):
        raise UserError(f"{path}: classification_labels go up to {num_classes - 1} "
                        f"but label_names has only {len(names)} names")
    return MSAData(name=path.stem, splits=splits, task=task, label_names=names)


# --- normalisation -------------------------------------------------------------------------------

def _valid_mask(lengths: np.ndarray, steps: int) -> np.ndarray:
    return np.arange(steps)[None, :] < lengths[:, None]  # (N, T)


def normalize(data: MSAData) -> MSAData:
    """Z-score every feature dim with mean/std of the TRAIN split's valid time steps (std floor
    1e-6), applied to all splits; padding stays 0. Returns a new MSAData, input untouched."""
    stats = {}
    train = data.splits["train"]
    for m, x in train.features.items():
        valid = x[_valid_mask(train.lengths[m], x.shape[1])].astype(np.float64)  # (steps, D)
        if len(valid):
            stats[m] = valid.mean(axis=0), np.maximum(valid.std(axis=0), _STD_FLOOR)
        else:
            stats[m] = np.zeros(x.shape[2]), np.ones(x.shape[2])

    splits = {}
    for s, split in data.splits.items():
        features = {}
        for m, x in split.features.items():
            mean, std = stats[m]
            mask = _valid_mask(split.lengths[m], x.shape[1])[:, :, None]
            features[m] = np.where(mask, (x - mean) / std, 0.0).astype(np.float32)
        splits[s] = dataclasses.replace(split, features=features)
    return dataclasses.replace(data, splits=splits)


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
