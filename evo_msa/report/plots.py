"""progress.png: best-so-far and median fitness per generation."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from evo_msa.report.leaderboard import USABLE


def plot_progress(rows: pd.DataFrame, path: Path, metric: str, direction: str) -> None:
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    ok = rows[rows["status"].isin(USABLE)]
    per_gen = ok.groupby("generation")["fitness"]
    best = per_gen.min() if direction == "min" else per_gen.max()
    best_so_far = best.cummin() if direction == "min" else best.cummax()
    fig, ax = plt.subplots(figsize=(6, 3.6), dpi=120)
    ax.plot(best_so_far.index + 1, best_so_far.values, marker="o", label="best so far")
    ax.plot(best.index + 1, best.values, marker=".", linestyle=":", label="best of generation")
    ax.plot(per_gen.median().index + 1, per_gen.median().values, marker="s", label="median")
    ax.set_xlabel("generation")
    ax.set_ylabel(f"validation {metric} ({direction})")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    tmp = path.with_name(f".{path.stem}.tmp.png")
    fig.savefig(tmp)
    plt.close(fig)
    tmp.replace(path)
