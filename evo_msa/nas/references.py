"""The built-in baselines beside every search: ridge (sentiment scores) or softmax regression
(emotions) on every subset of the data's modalities, fitted on the same splits in seconds, so a
user sees at once whether the search beat a linear model on their data.

The reference is the subset with the best validation loss (selection never looks at test);
its test metrics are shown beside the final trainer's. baselines.csv keeps every subset.
"""
from __future__ import annotations

import itertools
from typing import Callable

import pandas as pd

from evo_msa.data.dataset import MSAData


def linear_model(data: MSAData) -> str:
    """The linear reference model of the data's task: ridge (regression) or softmax."""
    return "ridge" if data.task == "regression" else "softmax"


def fit_references(data: MSAData, log: Callable[[str], None] = print) -> pd.DataFrame:
    """One row per modality subset: model, modalities, valid_* and test_* metrics; the best
    valid loss is marked `reference`."""
    from evo_msa.baselines import run_baseline

    model, mods = linear_model(data), list(data.modalities)
    rows = []
    for k in range(1, len(mods) + 1):
        for subset in itertools.combinations(mods, k):
            summary, _ = run_baseline(data, model, list(subset), [0])
            row = {"model": model, "modalities": "+".join(subset)}
            for split in ("valid", "test"):
                row.update({f"{split}_{m}": v["mean"] for m, v in summary[split].items()})
            rows.append(row)
    frame = pd.DataFrame(rows)
    frame.insert(2, "reference", frame.index == frame["valid_loss"].idxmin())
    best = reference(frame)
    log(f"bar    {model} on {best['modalities']} (the best of {len(frame)} modality subsets on "
        f"valid): valid loss {best['valid_loss']:.4f}")
    return frame


def reference(frame: pd.DataFrame) -> dict:
    """The row chosen on valid."""
    return frame[frame["reference"]].iloc[0].to_dict()


HEADLINE = ("mae", "corr", "non0_acc2", "acc7", "acc2", "weighted_f1", "acc", "unweighted_acc")


def reference_line(frame: pd.DataFrame, split: str = "test") -> str:
    """`ridge (text): test mae 0.8700, corr 0.6810, ...` for the chosen row."""
    best = reference(frame)
    shown = ", ".join(f"{m} {best[f'{split}_{m}']:.4f}" for m in HEADLINE
                      if f"{split}_{m}" in best)
    return f"{best['model']} ({best['modalities']}): {split} {shown}"
