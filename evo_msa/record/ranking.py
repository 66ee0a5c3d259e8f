"""Ranking evaluation records: the k best (one per architecture) and the Pareto front.

Pure Python over `Evaluation`s: the engine, the final selection, the leaderboard and the
figures all rank through here.
"""
from __future__ import annotations

from evo_msa.record.evaluation import Evaluation
from evo_msa.space.fitness import Fitness


def ranked(evaluations: list[Evaluation], fitness: Fitness, k: int) -> list[Evaluation]:
    """The k best usable evaluations on the primary objective, one per architecture."""
    usable = [e for e in evaluations if e.status.usable and fitness.usable(e.fitness)]
    usable.sort(key=lambda e: fitness.primary.loss(e.fitness[0]))
    seen, out = set(), []
    for e in usable:
        if e.key not in seen:
            seen.add(e.key)
            out.append(e)
    return out[:k]


def pareto_front(evaluations: list[Evaluation], fitness: Fitness) -> list[Evaluation]:
    """Usable evaluations that no other usable one dominates (one per architecture)."""
    usable = ranked(evaluations, fitness, len(evaluations))
    return [e for e in usable
            if not any(fitness.dominates(o.fitness, e.fitness) for o in usable if o is not e)]
