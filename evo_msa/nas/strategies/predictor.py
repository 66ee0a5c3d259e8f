"""The predictor of surrogate-assisted evolution: what a genome is to a model, and a small forest
of extremely randomized trees that predicts the score of a configuration never trained.

    Slots(space)        per genome slot: grid (k cells, ordered or not) or continuous; snaps a
                        genome to the centre of its cells (one canonical genome per
                        configuration), keys configurations, and makes model features
                        (unordered choices one-hot, ordered cells as index / (k - 1),
                        continuous slots as they are)
    Forest              sklearn's ExtraTreeRegressor, several seeds: mean and spread
    gaussian_ranks(y)   scores as standard-normal quantiles of their ranks (robust to outliers
                        and to the scale of the metric)
"""
from __future__ import annotations

import numpy as np

from evo_msa.space import SearchSpace

MAX_GRID = 10_000  # an int gene with more values than this is modelled as continuous


class Slots:
    """How a search space's genome slots look to the predictor."""

    def __init__(self, space: SearchSpace):
        kinds, cells = [], []
        for g in space.slot_genes():
            if g.type == "mask":
                kinds.append("unordered"), cells.append(2)  # off / on
            elif g.type == "categorical":
                kinds.append("unordered"), cells.append(len(g.choices))
            elif g.type == "ordinal":
                kinds.append("ordered"), cells.append(len(g.choices))
            elif g.type == "int" and not g.log and int(g.high) - int(g.low) + 1 <= MAX_GRID:
                kinds.append("ordered"), cells.append(int(g.high) - int(g.low) + 1)
            else:  # float, log-float, a log-scaled int: continuous in genome units
                kinds.append("continuous"), cells.append(0)
        self.kinds = kinds
        self.cells = np.array(cells)
        self.grid = self.cells > 0
        self.n = len(kinds)

    def cell_index(self, G: np.ndarray) -> np.ndarray:
        """Each grid slot's cell (continuous slots as they are)."""
        D = np.array(G, dtype=float, copy=True)
        k = self.cells[self.grid]
        D[:, self.grid] = np.minimum(np.floor(np.clip(G[:, self.grid], 0, 1) * k), k - 1)
        return D

    def snap(self, G: np.ndarray) -> np.ndarray:
        """Genomes moved to the centre of their grid cells: one genome per configuration."""
        out = np.clip(np.array(G, dtype=float), 0.0, 1.0)
        out[:, self.grid] = (self.cell_index(out)[:, self.grid] + 0.5) / self.cells[self.grid]
        return out

    def keys(self, G: np.ndarray) -> list[bytes]:
        """The configuration of each (snapped) genome, hashable."""
        return [row.tobytes() for row in np.round(self.cell_index(G), 9)]

    def features(self, G: np.ndarray) -> np.ndarray:
        """The predictor's inputs of genomes `G`: one-hot cells of unordered genes, values of
        ordered ones."""
        D = self.cell_index(G)
        cols = []
        for j, kind in enumerate(self.kinds):
            if kind == "unordered":
                cols.append(np.eye(self.cells[j])[D[:, j].astype(int)])
            elif kind == "ordered":
                cols.append(D[:, j:j + 1] / max(1, self.cells[j] - 1))
            else:
                cols.append(np.clip(G[:, j:j + 1], 0, 1))
        return np.hstack(cols) if cols else np.zeros((len(G), 0))


class Forest:
    """Extremely randomized trees (no bootstrap), one generator for all: predict() gives the
    trees' mean and standard deviation."""

    def __init__(self, trees: int, min_samples_leaf: int, seed: int):
        self.trees, self.leaf, self.seed = trees, min_samples_leaf, int(seed)

    def fit(self, X: np.ndarray, y: np.ndarray) -> "Forest":
        """Fit the forest to inputs `X` and targets `y`."""
        from sklearn.tree import ExtraTreeRegressor

        X = np.ascontiguousarray(X, dtype=np.float32)
        y = np.ascontiguousarray(y, dtype=np.float64)
        rs = np.random.RandomState(self.seed)
        self.models = []
        for _ in range(self.trees):
            tree = ExtraTreeRegressor(min_samples_leaf=self.leaf, max_features=1.0,
                                      random_state=rs)
            try:  # the checks of fit() are most of the time at these sizes; inputs are clean
                tree._fit(X, y, check_input=False)
            except (AttributeError, TypeError):  # sklearn changed its private API: the public one
                tree.fit(X, y)
            self.models.append(tree)
        return self

    def predict(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Mean and spread of the trees' predictions for each row of `X`."""
        X = np.ascontiguousarray(X, dtype=np.float32)
        P = np.stack([t.tree_.predict(X).reshape(len(X), -1)[:, 0] for t in self.models])
        return P.mean(0), P.std(0)


def gaussian_ranks(y: np.ndarray) -> np.ndarray:
    """Scores as the standard-normal quantiles of their ranks (ties share a rank)."""
    from scipy.special import ndtri
    from scipy.stats import rankdata

    return ndtri((rankdata(y) - 0.5) / len(y))


def smoothed_estimates(slots: Slots, G: np.ndarray, means: np.ndarray, counts: np.ndarray,
                       seed: int, leaf: int = 3, trees: int = 32,
                       noise: float | None = None) -> np.ndarray:
    """Each trained configuration's score, robust to one lucky training: its observed mean,
    shrunk towards what a smooth forest (leaves of >= `leaf` configurations) predicts from its
    neighbours. The forest's rank-space prediction is mapped back to score units through the
    observed means.

    How far a mean is trusted is the empirical-Bayes (BLUP) weight c tau^2 / (c tau^2 + sigma^2)
    of a configuration trained c times: sigma^2 = `noise`, the variance of one training (pooled
    over re-trained configurations), tau^2 = how far true scores stray from the smooth
    prediction (the residuals' variance less the noise's share). Without a noise estimate (no
    configuration trained twice yet) sigma^2 = tau^2: weight c / (c + 1)."""
    from scipy.special import ndtr

    X = slots.features(slots.snap(G))
    mu, _ = Forest(trees, leaf, seed).fit(X, gaussian_ranks(means)).predict(X)
    ordered = np.sort(means)
    position = np.clip(ndtr(mu) * len(ordered) - 0.5, 0, len(ordered) - 1)
    smooth = np.interp(position, np.arange(len(ordered)), ordered)
    if noise is None or not np.isfinite(noise):
        weight = counts / (counts + 1.0)
    else:
        tau2 = max(np.mean((means - smooth) ** 2) - np.mean(noise / counts), 1e-12)
        weight = counts * tau2 / (counts * tau2 + noise)
    return weight * means + (1 - weight) * smooth


def pooled_noise(scores: list[list[float]]) -> float | None:
    """The variance of one training, pooled over the configurations trained more than once
    (None when there is none)."""
    ss = sum(float(np.sum((np.array(s) - np.mean(s)) ** 2)) for s in scores if len(s) > 1)
    dof = sum(len(s) - 1 for s in scores if len(s) > 1)
    return ss / dof if dof else None
