"""The report's figures: gene axes logarithmic only where the space says so, ticks that do
not crowd, genomes stopped at a rung drawn and marked."""
import numpy as np
import pandas as pd

from evo_msa.metrics import Objective
from evo_msa.report.plots import genes_figure, leaderboard_progress_figure


def board():
    rng = np.random.default_rng(0)
    n = 12
    return pd.DataFrame({
        "generation": np.arange(n) // 4, "id": np.arange(n),
        "status": ["ok"] * 8 + ["early-stopped"] * 3 + ["rejected"],
        "fitness": rng.uniform(0.8, 1.2, n),
        "gene:objective.lambda_unimodal": np.linspace(0.005, 0.95, n),  # 0..1, ratio > 20
        "gene:train.lr": np.geomspace(1.1e-3, 9e-3, n),  # log-float, within one decade
        "gene:model.depth": rng.integers(1, 4, n)})


def axes_by_title(fig):
    return {ax.get_title(): ax for ax in fig.axes if ax.get_title()}


def test_only_log_scaled_genes_get_a_log_axis_and_ticks_do_not_crowd():
    fig = genes_figure(board(), Objective("loss"), log_genes={"train.lr"})
    axes = axes_by_title(fig)
    assert axes["train.lr"].get_xscale() == "log"
    assert axes["objective.lambda_unimodal"].get_xscale() == "linear"
    fig.canvas.draw()
    for ax in axes.values():  # the drawn tick labels never overlap
        boxes = [t.get_window_extent() for t in ax.get_xticklabels()
                 if t.get_text() and t.get_visible()]
        boxes.sort(key=lambda b: b.x0)
        assert all(a.x1 <= b.x0 + 1 for a, b in zip(boxes, boxes[1:])), ax.get_title()
    plain = axes_by_title(genes_figure(board(), Objective("loss")))
    assert plain["train.lr"].get_xscale() == "linear"  # no space known: linear


def test_stopped_genomes_are_drawn_and_marked():
    fig = genes_figure(board(), Objective("loss"), log_genes={"train.lr"})
    ax = axes_by_title(fig)["model.depth"]
    sizes = {c.get_label(): len(c.get_offsets()) for c in ax.collections}
    assert sizes == {"trained whole": 8, "stopped at a rung": 3}
    progress = leaderboard_progress_figure(board(), Objective("loss"))
    labels = {c.get_label(): len(c.get_offsets()) for c in progress.axes[0].collections}
    assert labels["stopped at a rung (its value there)"] == 3 and labels["evaluation"] == 8
