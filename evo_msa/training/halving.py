"""Successive halving inside a population (multi-fidelity fitness, as in Hyperband and ASHA, but
per genome rather than per Ray trial): every genome of a batch trains to the first rung (an
epoch), the genomes still training are ranked there by the mean over their seeds of the fitness
so far (its value at each seed's best epoch), the best `keep` fraction goes on to the next rung,
the rest stop; and so on. The seeds of a genome stop together. A rung at or past a member's
epochs is its full budget: it simply ends there.

The trainer (training.trainer) asks `stopped` at the end of every epoch; what stops frees its
compute (the population is compacted).
"""
from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from typing import Sequence

from evo_msa.metrics import Objective


@dataclass(frozen=True)
class Halving:
    """Successive halving inside a population: at each rung the weaker members stop and keep their
    best so far."""

    rungs: tuple[int, ...]  # epochs, increasing
    keep: float  # the fraction of the genomes still training that goes on at each rung
    groups: tuple[int, ...]  # the genome of every member: its seeds are ranked and stopped together
    rank: Objective = Objective("loss")  # what genomes are ranked by (the search's fitness)
    whole: frozenset[int] = frozenset()  # genomes that train their whole budget (not ranked)

    def rung(self, epoch: int) -> int:
        """1-based index of the rung at `epoch`, 0 if none."""
        return self.rungs.index(epoch) + 1 if epoch in self.rungs else 0

    def stopped(self, epoch: int, running: Sequence[bool], values: Sequence[float]) -> set[int]:
        """The members to stop at `epoch`: those of the genomes that rank below the best
        ceil(keep x n) of the n genomes still training. `values[p]` is member p's fitness so
        far as a loss (lower is better; inf if it has none)."""
        if not self.rung(epoch):
            return set()
        members: dict[int, list[int]] = {}
        for p, g in enumerate(self.groups):
            members.setdefault(g, []).append(p)
        alive = [g for g, ps in members.items()
                 if g not in self.whole and any(running[p] for p in ps)]
        n_keep = max(1, math.ceil(self.keep * len(alive) - 1e-9))
        if n_keep >= len(alive):
            return set()

        def score(g: int) -> float:
            vals = [values[p] for p in members[g]]
            return statistics.fmean(vals) if all(math.isfinite(v) for v in vals) else math.inf

        ranked = sorted(alive, key=lambda g: (score(g), alive.index(g)))  # ties: first first
        return {p for g in ranked[n_keep:] for p in members[g] if running[p]}
