"""Coarse sentiment classes (DMMSA appendix, tables 7 and 8).

MOSI/MOSEI (scale 3) bins are left-closed, centred on the integers, e.g. 3 classes
[-3,-0.5), [-0.5,0.5), [0.5,3]. CH-SIMS (scale 1) bins are right-closed, e.g. 3 classes
[-1,-0.1], (-0.1,0.1], (0.1,1].
"""
from __future__ import annotations

import numpy as np
import torch

# inner bin edges per number of classes
_EDGES_SCALE3 = {
    2: [0.0],
    3: [-0.5, 0.5],
    5: [-1.5, -0.5, 0.5, 1.5],
    7: [-2.5, -1.5, -0.5, 0.5, 1.5, 2.5],
}
_EDGES_SCALE1 = {
    2: [0.0],
    3: [-0.1, 0.1],
    5: [-0.7, -0.1, 0.1, 0.7],
}


def coarse_edges(n_classes: int, scale: float) -> tuple[list[float], str]:
    """Inner edges and which side is closed ("left" bins [a,b) or "right" bins (a,b])."""
    table, closed = (_EDGES_SCALE1, "right") if scale <= 1.0 else (_EDGES_SCALE3, "left")
    if n_classes not in table:
        raise ValueError(f"{n_classes} coarse classes are not defined for labels in "
                         f"[-{scale:g},{scale:g}] (choose from {sorted(table)})")
    return table[n_classes], closed


def coarse_labels(y: np.ndarray | torch.Tensor, n_classes: int, scale: float):
    """Map sentiment scores to coarse class indices (same type as the input)."""
    edges, closed = coarse_edges(n_classes, scale)
    # searchsorted "right" puts a value equal to an edge in the upper bin (left-closed bins)
    side = "right" if closed == "left" else "left"
    if isinstance(y, torch.Tensor):
        e = torch.tensor(edges, dtype=y.dtype, device=y.device)
        return torch.searchsorted(e, y.contiguous(), right=(side == "right"))
    return np.searchsorted(np.asarray(edges), np.asarray(y), side=side).astype(np.int64)
