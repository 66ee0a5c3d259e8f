"""Figures of a search (the run directory writes them)."""
from __future__ import annotations

import statistics

from evo_msa.search.evaluation import Evaluation
from evo_msa.space.fitness import Fitness


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    return plt


def progress_figure(evaluations: list[Evaluation], fitness: Fitness):
    """progress.png: best-so-far, best and median fitness per generation."""
    plt = _pyplot()
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
