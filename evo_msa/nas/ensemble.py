"""Greedy ensemble selection with replacement (Caruana et al. 2004, "Ensemble selection from
libraries of models"; as auto-sklearn and AutoGluon do it), on the validation split only.

Start from an empty ensemble; every round adds the candidate (one architecture's seed-averaged
valid predictions) whose addition gives the best valid score of the search's primary metric,
a candidate may be added again (with replacement: repeated picks are its weight). After
`rounds` rounds the weights are counts / rounds. Ties go to the earlier candidate (the better
ranked by the search). Only valid predictions enter here; the caller reads test afterwards.

What is scored: the search's primary metric when predictions give it (mae, corr, non0_acc2,
weighted_f1, ...); `loss` (the training loss, not a function of the predictions alone) is
scored as its main-task part: MAE for regression (the L1 loss), the cross-entropy `nll` of the
averaged probabilities for classification; a network property such as `params` falls back to
the task's primary metric (metrics.PRIMARY_METRIC).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np

from evo_msa.metrics import PRIMARY_METRIC, Objective, compute_metrics

ROUNDS = 25  # AutoGluon's weighted ensemble default (ensemble_size 25): weights in steps of 4%
NLL = "nll"


def selection_objective(metric: str, direction: str, task: str, names: Sequence[str]) -> Objective:
    """The objective greedy selection scores by, for the search's primary `metric`/`direction`
    (see the module docstring); `names` are the metrics predictions give for this task."""
    if metric in names:
        return Objective(metric, direction)
    if metric == "loss":
        return Objective("mae" if task == "regression" else NLL, "min")
    return Objective(PRIMARY_METRIC[task])


def scorer(objective: Objective, truth: np.ndarray, *, task: str, scale: float,
           label_names: Sequence[str] | None) -> Callable[[np.ndarray], float]:
    """Score of a combined output (scores, or class probabilities) against `truth`."""
    if objective.metric == NLL:
        rows = np.arange(len(truth))
        return lambda p: float(-np.mean(np.log(np.maximum(p[rows, truth], 1e-12))))

    def score(p: np.ndarray) -> float:
        pred = p if task == "regression" else np.log(np.maximum(p, 1e-12))
        return compute_metrics(pred, truth, task=task, scale=scale,
                               label_names=label_names)[objective.metric]
    return score


@dataclass
class Selection:
    """The outcome of greedy selection: how often each candidate was picked, and the valid
    score after every round."""

    counts: list[int]
    trace: list[float] = field(default_factory=list)

    @property
    def rounds(self) -> int:
        """How many additions were made."""
        return sum(self.counts)

    @property
    def weights(self) -> list[float]:
        """Each candidate's weight: its picks / rounds."""
        return [c / self.rounds for c in self.counts]

    @property
    def score(self) -> float:
        """The final ensemble's valid score."""
        return self.trace[-1]

    @property
    def members(self) -> list[int]:
        """The candidates with a weight, in candidate order."""
        return [i for i, c in enumerate(self.counts) if c]


def greedy_selection(candidates: Sequence[np.ndarray], score: Callable[[np.ndarray], float],
                     objective: Objective, rounds: int = ROUNDS) -> Selection:
    """Caruana's forward selection with replacement over `candidates` (averageable outputs on
    valid, all of one shape): `rounds` additions, each the one that scores best."""
    if not candidates or rounds < 1:
        raise ValueError("greedy selection needs candidates and at least one round")
    total = np.zeros_like(np.asarray(candidates[0], dtype=np.float64))
    counts, trace = [0] * len(candidates), []
    for r in range(1, rounds + 1):
        best_k, best_loss, best_score = 0, math.inf, math.nan
        for k, pred in enumerate(candidates):
            s = score((total + pred) / r)
            loss = objective.loss(s) if math.isfinite(s) else math.inf  # NaN (constant): worst
            if loss < best_loss:
                best_k, best_loss, best_score = k, loss, s
        total += candidates[best_k]
        counts[best_k] += 1
        trace.append(best_score)
    return Selection(counts, trace)
