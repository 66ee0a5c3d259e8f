"""Evaluation metrics, defined exactly as MMSA's `metricsTop` so numbers compare with the literature.

Reference: thuiar/MMSA, `MMSA/utils/metricsTop.py` (`__eval_mosei_regression` for MOSI/MOSEI,
`__eval_sims_regression` for CH-SIMS). MMSA's rounding to 4 digits is left to the caller.

acc5/acc7 keep `np.round`, i.e. round-half-to-even (0.5 -> 0, 1.5 -> 2, 2.5 -> 2), and not
round-half-away-from-zero: that is what MMSA and the papers reporting Acc-5/Acc-7 use, and a
different tie rule would shift the numbers on predictions that land on .5.

Inputs keep their floating dtype (float32 stays float32, as in MMSA, which reads torch
tensors), so comparisons against the SIMS bin edges see the same values MMSA sees.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

PRIMARY_METRIC = {"regression": "mae", "classification": "weighted_f1"}

# CH-SIMS class edges; class i is edge[i] < x <= edge[i+1] (MMSA ms_2 / ms_3 / ms_5)
_SIMS_EDGES_2 = (-1.01, 0.0, 1.01)
_SIMS_EDGES_3 = (-1.01, -0.1, 0.1, 1.01)
_SIMS_EDGES_5 = (-1.01, -0.7, -0.1, 0.1, 0.7, 1.01)


def _to_numpy(x: Any) -> np.ndarray:
    """A numpy array of `x` (torch tensors included); integer/bool input becomes float64."""
    if hasattr(x, "detach"):
        x = x.detach().cpu()
    arr = np.asarray(x)
    return arr if np.issubdtype(arr.dtype, np.floating) else arr.astype(np.float64)


def _pair(pred: Any, truth: Any) -> tuple[np.ndarray, np.ndarray]:
    """Both arrays flattened (MMSA: `.view(-1)`), checked to be non-empty and of equal length."""
    p, t = _to_numpy(pred).reshape(-1), _to_numpy(truth).reshape(-1)
    if p.size == 0 or p.size != t.size:
        raise ValueError(f"pred and truth must be non-empty and of equal length, got {p.size} and {t.size}")
    return p, t


def _corr(p: np.ndarray, t: np.ndarray) -> float:
    """Pearson correlation; NaN (without a RuntimeWarning) when either side is constant."""
    if np.ptp(p) == 0 or np.ptp(t) == 0:
        return float("nan")
    return float(np.corrcoef(p, t)[0][1])


def _multiclass_acc(p: np.ndarray, t: np.ndarray) -> float:
    """MMSA `__multiclass_acc`: fraction of equal `np.round` (half-to-even) values."""
    return float(np.mean(np.round(p) == np.round(t)))


# Accuracy, F1 and recall as sklearn.metrics defines them (zero_division=0), in numpy: every
# trial computes them, and importing sklearn costs each Ray worker about a second of its start.

def _accuracy(t: np.ndarray, p: np.ndarray) -> float:
    return float(np.mean(t == p))


def _per_class(t: np.ndarray, p: np.ndarray, labels) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(F1, recall, support in truth) of each label; F1 and recall 0 where undefined (no such
    prediction or truth)."""
    labels = np.asarray(labels)[:, None]
    hit = ((t == labels) & (p == labels)).sum(1).astype(np.float64)
    true, pred = (t == labels).sum(1), (p == labels).sum(1)
    f1 = np.divide(2 * hit, true + pred, out=np.zeros_like(hit), where=true + pred > 0)
    recall = np.divide(hit, true, out=np.zeros_like(hit), where=true > 0)
    return f1, recall, true


def _weighted_f1(t: np.ndarray, p: np.ndarray) -> float:
    """The F1 of every label in truth or prediction, weighted by its support in truth."""
    f1, _, support = _per_class(t, p, np.union1d(t, p))
    return float((f1 * support).sum() / support.sum())


def _binary(truth_pos: np.ndarray, pred_pos: np.ndarray) -> tuple[float, float]:
    """(accuracy, weighted F1) of two boolean arrays."""
    return _accuracy(truth_pos, pred_pos), _weighted_f1(truth_pos, pred_pos)


def regression_metrics(pred: Any, truth: Any) -> dict[str, float]:
    """MOSI/MOSEI metrics (labels in [-3, 3]), as MMSA `__eval_mosei_regression`.

    `non0_*` are NaN when every truth is 0 (nothing is left to score).
    """
    p, t = _pair(pred, truth)
    has0_acc2, has0_f1 = _binary(t >= 0, p >= 0)
    keep = t != 0
    if keep.any():
        non0_acc2, non0_f1 = _binary(t[keep] > 0, p[keep] > 0)
    else:
        non0_acc2 = non0_f1 = float("nan")
    return {
        "has0_acc2": has0_acc2,
        "has0_f1": has0_f1,
        "non0_acc2": non0_acc2,
        "non0_f1": non0_f1,
        "acc5": _multiclass_acc(np.clip(p, -2.0, 2.0), np.clip(t, -2.0, 2.0)),
        "acc7": _multiclass_acc(np.clip(p, -3.0, 3.0), np.clip(t, -3.0, 3.0)),
        "mae": float(np.mean(np.abs(p - t))),
        "corr": _corr(p, t),
    }


def _sims_bins(x: np.ndarray, edges: Sequence[float]) -> np.ndarray:
    """Class index of each value of `x` (already clipped to [-1, 1]) under right-closed bins;
    -1 for NaN, a class no real value gets (MMSA leaves NaN in place, equal to no class)."""
    out = np.full(x.shape, -1, dtype=np.int64)
    for i in range(len(edges) - 1):
        out[(x > edges[i]) & (x <= edges[i + 1])] = i
    return out


def sims_metrics(pred: Any, truth: Any) -> dict[str, float]:
    """CH-SIMS metrics (labels in [-1, 1]), as MMSA `__eval_sims_regression`.

    Both sides are clipped to [-1, 1] first; MAE and correlation are on the clipped values.
    """
    p, t = _pair(pred, truth)
    p, t = np.clip(p, -1.0, 1.0), np.clip(t, -1.0, 1.0)
    p2, t2 = _sims_bins(p, _SIMS_EDGES_2), _sims_bins(t, _SIMS_EDGES_2)
    return {
        "acc2": _accuracy(t2, p2),
        "acc3": _accuracy(_sims_bins(t, _SIMS_EDGES_3), _sims_bins(p, _SIMS_EDGES_3)),
        "acc5": _accuracy(_sims_bins(t, _SIMS_EDGES_5), _sims_bins(p, _SIMS_EDGES_5)),
        "f1": _weighted_f1(t2, p2),
        "mae": float(np.mean(np.abs(p - t))),
        "corr": _corr(p, t),
    }


def classification_metrics(pred_labels: Any, truth: Any, label_names: Sequence[str]) -> dict[str, float]:
    """Emotion-classification metrics; `pred_labels` may be class ids (N,) or logits (N, K).

    `unweighted_acc` is the mean recall over the classes present in `truth` (balanced accuracy);
    `f1_<name>` is the F1 of each class in `label_names` (0 for a class never seen or predicted).
    """
    p = _to_numpy(pred_labels)
    if p.ndim == 2:
        p = p.argmax(axis=1)
    p = p.reshape(-1).astype(np.int64)
    t = _to_numpy(truth).reshape(-1).astype(np.int64)
    if p.size == 0 or p.size != t.size:
        raise ValueError(f"pred and truth must be non-empty and of equal length, got {p.size} and {t.size}")
    per_class = _per_class(t, p, range(len(label_names)))[0]
    return {
        "acc": _accuracy(t, p),
        "unweighted_acc": float(_per_class(t, p, np.unique(t))[1].mean()),
        "weighted_f1": _weighted_f1(t, p),
        **{f"f1_{name}": float(v) for name, v in zip(label_names, per_class)},
    }


def compute_metrics(pred: Any, truth: Any, *, task: str, scale: float = 3.0,
                    label_names: Sequence[str] | None = None) -> dict[str, float]:
    """Metrics of one split: SIMS metrics for regression with `scale <= 1`, MOSI/MOSEI metrics
    for other regression, emotion metrics for classification (which needs `label_names`)."""
    if task == "regression":
        return sims_metrics(pred, truth) if scale <= 1 else regression_metrics(pred, truth)
    if task == "classification":
        if not label_names:
            raise ValueError("classification metrics need label_names")
        return classification_metrics(pred, truth, label_names)
    raise ValueError(f"unknown task {task!r}: expected 'regression' or 'classification'")


_MINIMISED = ("mae", "loss", "params")  # every other metric is a score to maximise


@dataclass(frozen=True)
class Objective:
    """A validation metric and which way is better: the one place a direction is interpreted.

    `direction` defaults from the name: "min" for mae and any loss, "max" for the rest.
    """

    metric: str
    direction: str = ""

    def __post_init__(self):
        if not self.direction:
            minimise = self.metric in _MINIMISED or "loss" in self.metric
            object.__setattr__(self, "direction", "min" if minimise else "max")
        if self.direction not in ("min", "max"):
            raise ValueError(f"direction must be 'min' or 'max', got {self.direction!r}")

    @property
    def sign(self) -> float:
        """+1 when smaller is better, -1 when larger is better."""
        return 1.0 if self.direction == "min" else -1.0

    def loss(self, value: float) -> float:
        """The value as a loss (smaller is better); NaN stays NaN."""
        return self.sign * float(value)

    def better(self, a: float, b: float) -> bool:
        """Is `a` strictly better than `b`? NaN is never better."""
        return self.loss(a) < self.loss(b)

    def worst(self) -> float:
        """The worst value this objective can take (infinite, with its sign)."""
        return self.sign * math.inf

    def ascending(self) -> bool:
        """Sort order that puts the best first."""
        return self.direction == "min"
