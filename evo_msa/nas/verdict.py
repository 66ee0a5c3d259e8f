"""The verdict: did the final model beat the baselines on test, per headline metric?

For each headline metric (regression: MAE, Corr, Non0-Acc2 or, on CH-SIMS, Acc2;
classification: weighted F1, Acc) the final model's test mean over its training seeds (for an
ensemble: the mean over seeds of the ensemble of each seed's members) is compared with the best
baseline on that metric (the baselines' best test mean, so the bar is the strongest one).

    beats   better than that baseline by more than the band
    ties    within the band
    loses   worse by more than the band

The band is the standard deviation of the difference of the two: sqrt(std_final^2 +
std_baseline^2), with the final model's std over its seeds and the baseline's over its own
(a deterministic baseline such as ridge has none and adds nothing). With one final seed (or
seeds that agree exactly) against a deterministic baseline the band is 0, and the words say so.

A baseline is a `Baseline`: a name and per metric its test mean and std (None: deterministic).
The run's baselines.csv gives one per model (the row chosen on valid); columns
`test_<metric>_std` give a seeded baseline's std. `search --compare DIR` adds the output of
`evo-msa baseline` (e.g. `--model finetune`, 5 seeds: a real std) or `evo-msa train` on the
same data.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from evo_msa.errors import UserError
from evo_msa.metrics import Objective

HEADLINE = {"regression": ("mae", "corr", "non0_acc2", "acc2"),
            "classification": ("weighted_f1", "acc")}
LABELS = {"mae": "MAE", "corr": "Corr", "non0_acc2": "Non0-Acc2", "acc2": "Acc2",
          "weighted_f1": "weighted F1", "acc": "Acc"}
STD_SUFFIX = "_std"


@dataclass(frozen=True)
class Baseline:
    """A baseline as the verdict sees it: name and per metric (test mean, std or None)."""

    name: str
    test: dict[str, tuple[float, float | None]]


def baselines_from_frame(frame: pd.DataFrame) -> list[Baseline]:
    """One Baseline per model of a baselines.csv: its row marked `reference` (chosen on valid),
    else its row with the lowest valid loss; deterministic unless `test_<m>_std` columns say."""
    out = []
    for model, rows in frame.groupby("model", sort=False):
        marked = rows[rows["reference"].astype(str).str.lower() == "true"] \
            if "reference" in rows else rows.iloc[:0]
        row = marked.iloc[0] if len(marked) else rows.loc[rows["valid_loss"].idxmin()]
        test = {}
        for col, value in row.items():
            if col.startswith("test_") and not col.endswith(STD_SUFFIX):
                std = row.get(f"{col}{STD_SUFFIX}")
                test[col[len("test_"):]] = (float(value), _std(std))
        out.append(Baseline(str(model), test))
    return out


def baseline_from_summary(name: str, summary: dict) -> Baseline:
    """A Baseline of a training or baseline summary (metrics.json: test mean and std over its
    seeds); deterministic when its "baseline" entry says so or it has one seed."""
    seeded = len(summary.get("seeds", [])) > 1 and not (summary.get("baseline") or {}).get(
        "deterministic", False)
    return Baseline(name, {m: (float(v["mean"]), _std(v.get("std")) if seeded else None)
                           for m, v in summary.get("test", {}).items()})


def read_compared(folder: str | Path, data_spec: str) -> Baseline:
    """The Baseline of an `evo-msa baseline` (or `evo-msa train`) output folder given to
    `search --compare`: its metrics.json, which must be of the same data (sha256 of the file, or
    the same synthetic spec); a one-line UserError names what is wrong."""
    from evo_msa.io import read_json
    from evo_msa.provenance import data_sha256
    from evo_msa.record.rundir import METRICS_JSON

    path = Path(folder) / METRICS_JSON
    if not path.is_file():
        raise UserError(f"--compare {folder}: no {METRICS_JSON} there (give the --out folder of "
                        "`evo-msa baseline` or `evo-msa train`)")
    summary = read_json(path, METRICS_JSON, 64 << 20)
    test = summary.get("test") if isinstance(summary, dict) else None
    if not isinstance(test, dict) or not all(
            isinstance(v, dict) and _finite(v.get("mean")) for v in test.values()) or not test:
        raise UserError(f"{path}: 'test' must map metrics to their mean and std over seeds")
    origin = summary.get("provenance") or {}
    theirs = origin.get("data_sha256") if isinstance(origin, dict) else None
    ours = data_sha256(data_spec)
    if (theirs or ours) != ours or (ours is None and summary.get("data") != data_spec):
        raise UserError(f"{path}: was measured on other data ({summary.get('data')!r}, sha256 "
                        f"{str(theirs)[:12]}) than this search's {data_spec!r}")
    info = summary.get("baseline")
    name = str(info.get("model")) if isinstance(info, dict) else f"train ({Path(folder).name})"
    return baseline_from_summary(name, summary)


def _std(value) -> float | None:
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def verdict(final: dict[str, dict], baselines: list[Baseline], task: str) -> list[dict]:
    """Per headline metric that the final model and a baseline have: the outcome against the
    best baseline. `final` is a test summary {metric: {"mean": m, "std": s}} over seeds."""
    out = []
    for metric in HEADLINE[task]:
        ours = final.get(metric)
        having = [b for b in baselines if _finite(b.test.get(metric, (math.nan,))[0])]
        if not isinstance(ours, dict) or not _finite(ours.get("mean")) or not having:
            continue
        obj = Objective(metric)
        best = min(having, key=lambda b: obj.loss(b.test[metric][0]))
        base_mean, base_std = best.test[metric]
        own_std = float(ours.get("std") or 0.0)
        band = math.sqrt(own_std ** 2 + (base_std or 0.0) ** 2)
        gain = obj.sign * (base_mean - ours["mean"])  # > 0: the final model is better
        outcome = "beats" if gain > band else "loses" if gain < -band else "ties"
        entry = {"metric": metric, "baseline": best.name, "outcome": outcome,
                 "final": ours["mean"], "final_std": own_std, "baseline_value": base_mean,
                 "baseline_std": base_std, "difference": ours["mean"] - base_mean, "band": band}
        entry["line"] = verdict_line(entry)
        out.append(entry)
    return out


def verdict_line(v: dict) -> str:
    """`beats ridge on MAE by 0.040 (0.828 vs 0.868; > std 0.012)` and the like."""
    label = LABELS.get(v["metric"], v["metric"])
    values = f"{v['final']:.3f} vs {v['baseline_value']:.3f}"
    std = "combined std" if v["baseline_std"] is not None else "std"
    if v["band"] == 0:
        weigh = "std 0: no spread over seeds to weigh it by"
    else:
        weigh = (f"within {std} {v['band']:.3f}" if v["outcome"] == "ties"
                 else f"> {std} {v['band']:.3f}")
    if v["outcome"] == "ties":
        return (f"ties {v['baseline']} on {label} ({v['difference']:+.3f}: {values}; "
                f"{weigh})")
    verb = "beats" if v["outcome"] == "beats" else "loses to"
    return (f"{verb} {v['baseline']} on {label} by {abs(v['difference']):.3f} ({values}; "
            f"{weigh})")


def _finite(x) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x)
