"""Figures of a search (the run directory writes them)."""
from __future__ import annotations

import statistics

from evo_msa.record.evaluation import Evaluation
from evo_msa.record.leaderboard import stopped_rows, usable_rows
from evo_msa.space.fitness import Fitness


def pyplot():
    """matplotlib.pyplot on the file-only Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    return plt


def progress_figure(evaluations: list[Evaluation], fitness: Fitness):
    """progress.png: best-so-far, best and median fitness per generation."""
    plt = pyplot()
    objective = fitness.primary
    per_gen: dict[int, list[float]] = {}
    for e in evaluations:
        if e.status.usable and fitness.usable(e.fitness):
            per_gen.setdefault(e.generation, []).append(e.fitness[0])
    gens = sorted(per_gen)
    pick = min if objective.direction == "min" else max
    best = [pick(per_gen[g]) for g in gens]
    so_far = [pick(best[:i + 1]) for i in range(len(best))]
    fig, ax = plt.subplots(figsize=(6, 3.6), dpi=120)
    xs = [g + 1 for g in gens]
    ax.plot(xs, so_far, marker="o", label="best so far")
    ax.plot(xs, best, marker=".", linestyle=":", label="best of generation")
    ax.plot(xs, [statistics.median(per_gen[g]) for g in gens], marker="s", label="median")
    ax.set_xlabel("generation")
    ax.set_ylabel(f"validation {objective.metric} ({objective.direction})")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    return fig


def curves_figure(history, best_epoch: int, title: str = ""):
    """curves.png: train loss (total and main task) and validation loss per epoch."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 3.6), dpi=120)
    for column, label, style in (("train_total", "train (weighted total)", ":"),
                                 ("train_main", "train (main task)", "-"),
                                 ("valid_loss", "valid (main task)", "-")):
        if column in history:
            ax.plot(history["epoch"], history[column], linestyle=style, marker=".", label=label)
    if best_epoch:
        ax.axvline(best_epoch, color="grey", alpha=0.5, label=f"best epoch ({best_epoch})")
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    if title:
        ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.xaxis.get_major_locator().set_params(integer=True)  # epochs are whole numbers
    ax.legend(fontsize=8, framealpha=0.6)
    fig.tight_layout()
    return fig


# ---- figures from a leaderboard (leaderboard.csv or leaderboard_frame): the report's, and
# pareto.png, which the search writes when the fitness has several objectives ----------------

def leaderboard_progress_figure(frame, objective):
    """Every usable evaluation's fitness in the order it settled (colour: generation), the
    genomes stopped at a rung (hollow, at their value there), and the best so far; reads the
    leaderboard, so it needs no checkpoint."""
    import numpy as np

    plt = pyplot()
    frame = frame.reset_index(drop=True)
    ok = usable_rows(frame)
    order = np.arange(1, len(frame) + 1)[frame.index.get_indexer(ok.index)]
    values = ok["fitness"].astype(float).to_numpy()
    pick = np.minimum if objective.direction == "min" else np.maximum
    fig, ax = plt.subplots(figsize=(7, 3.6), dpi=110)
    # generations numbered as in leaderboard.csv and the log (from 0)
    gens = ok["generation"].to_numpy() if "generation" in ok else np.zeros(len(ok))
    points = ax.scatter(order, values, c=gens, cmap="viridis", s=18, alpha=0.8,
                        label="evaluation")
    if len(values):
        ax.step(order, pick.accumulate(values), where="post", color="C3", linewidth=2,
                label="best so far")
    stopped = stopped_rows(frame)
    if len(stopped):  # trained to a rung: drawn, marked, never the best so far
        at = np.arange(1, len(frame) + 1)[frame.index.get_indexer(stopped.index)]
        ax.scatter(at, stopped["fitness"].astype(float), s=18, facecolors="none",
                   edgecolors="C1", alpha=0.8, label="stopped at a rung (its value there)")
    if len(set(gens)) > 1:
        bar = fig.colorbar(points, ax=ax, label="generation", pad=0.01)
        bar.set_ticks(sorted(set(int(g) for g in gens)))
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.set_xlabel("evaluation (in the order results came back)")
    ax.set_ylabel(f"validation {objective.metric} ({objective.direction})")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def _gene_columns(frame) -> list[tuple[str, "object"]]:
    """(label, values) per plottable gene; list genes ("26|18") give one panel per position."""
    import pandas as pd

    out = []
    for col in sorted(c for c in frame.columns if c.startswith("gene:")):
        name, values = col[len("gene:"):], frame[col]
        parts = values.astype(str).str.split("|")
        numeric = pd.to_numeric(values, errors="coerce")
        if numeric.notna().all() or values.isna().all():
            out.append((name, numeric))
            continue
        widths = parts.map(len)
        split = parts.map(lambda p: pd.to_numeric(pd.Series(p), errors="coerce").tolist())
        if widths.max() > 1 and all(not pd.isna(v) for row in split for v in row):
            for k in range(int(widths.max())):
                out.append((f"{name}[{k}]", split.map(lambda r, k=k: r[k] if k < len(r)
                                                      else float("nan"))))
        else:
            out.append((name, values.astype(str)))
    return out


def genes_figure(frame, objective, columns: int = 3, log_genes: set[str] | None = None):
    """One small scatter per gene: its value against the fitness. Usable evaluations as dots;
    genomes stopped at a rung of successive halving as hollow marks, at their fitness at that
    rung (a lower fidelity). Categorical genes (masks, choices) are placed on ticks, jittered
    so points do not hide each other; a gene's axis is logarithmic only where the space scales
    it so (`log_genes`: their paths; log-float, or int with log: true), with a few ticks that
    do not overlap."""
    import math

    import numpy as np
    import pandas as pd
    from matplotlib.ticker import LogLocator, MaxNLocator, NullFormatter

    plt = pyplot()
    ok = usable_rows(frame)
    stopped = stopped_rows(frame)
    both = pd.concat([ok, stopped])
    genes = _gene_columns(both)
    rows = max(1, math.ceil(len(genes) / columns))
    fig, axes = plt.subplots(rows, columns, figsize=(3.3 * columns, 2.6 * rows), dpi=100,
                             squeeze=False)
    y = both["fitness"].astype(float).to_numpy()
    full = np.arange(len(both)) < len(ok)  # the first rows are the usable ones
    rng = np.random.default_rng(0)  # the jitter is the same on every run
    for ax, (name, values) in zip(axes.flat, genes):
        if pd.api.types.is_numeric_dtype(values):
            x = values.astype(float).to_numpy()
            finite = x[np.isfinite(x)]
            if name.partition("[")[0] in (log_genes or set()) and len(finite) \
                    and finite.min() > 0:
                ax.set_xscale("log")
                ax.xaxis.set_major_locator(LogLocator(numticks=4))
                ax.xaxis.set_minor_formatter(NullFormatter())  # minor labels overlap
            elif len(finite) and (finite == finite.round()).all():  # depth, widths: no 1.2
                ax.xaxis.set_major_locator(MaxNLocator(nbins=5, integer=True))
            else:
                ax.xaxis.set_major_locator(MaxNLocator(nbins=4))
        else:
            cats = sorted(values.unique())
            x = values.map({c: i for i, c in enumerate(cats)}).to_numpy(dtype=float)
            x = x + rng.uniform(-0.15, 0.15, len(x))
            ax.set_xticks(range(len(cats)))
            ax.set_xticklabels(cats, rotation=35, ha="right", fontsize=7)
        ax.scatter(x[full], y[full], s=12, alpha=0.7, label="trained whole")
        if (~full).any():
            ax.scatter(x[~full], y[~full], s=16, facecolors="none", edgecolors="C1",
                       alpha=0.8, label="stopped at a rung")
        ax.set_title(name, fontsize=9)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
    for ax in axes.flat[len(genes):]:
        ax.axis("off")
    for ax in axes[:, 0]:
        ax.set_ylabel(f"{objective.metric} ({objective.direction})", fontsize=8)
    if len(stopped):
        axes.flat[0].legend(fontsize=6, loc="best")
    fig.tight_layout()
    return fig


def pareto_figure(frame, objectives):
    """pareto.png: the primary objective against each other one; every usable evaluation in
    grey, the non-dominated ones (the leaderboard's `pareto` column) highlighted, joined and
    labelled with their ids. `frame` is a leaderboard (leaderboard_frame or the CSV)."""
    plt = pyplot()
    ok = usable_rows(frame)
    first, others = objectives[0], list(objectives[1:])
    fig, axes = plt.subplots(1, len(others), figsize=(6 * len(others), 4), dpi=110,
                             squeeze=False)
    front = ok[ok["pareto"].astype(str).str.lower() == "true"] if "pareto" in ok else ok.iloc[:0]
    x_col = f"fitness:{first.metric}"
    for ax, other in zip(axes[0], others):
        y_col = f"fitness:{other.metric}"
        ax.scatter(ok[x_col], ok[y_col], s=16, color="0.65", label="evaluated")
        line = front.sort_values(x_col)
        ax.plot(line[x_col], line[y_col], color="C3", marker="o", linewidth=1.5,
                label=f"Pareto front ({len(front)})")
        for _, row in line.iterrows():
            ax.annotate(f"#{int(row['id'])}", (row[x_col], row[y_col]), fontsize=7,
                        xytext=(4, 4), textcoords="offset points")
        ax.set_xlabel(f"validation {first.metric} ({first.direction})")
        ax.set_ylabel(f"{other.metric} ({other.direction})")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig
