"""Which evaluated genome a search hands on (the final trainer, best_genome.json, a benchmark's
regret): the best on the primary objective, one per architecture."""
from __future__ import annotations

from evo_msa.nas.evaluation import Evaluation
from evo_msa.report.leaderboard import ranked
from evo_msa.space.fitness import Fitness


def final_pick(evaluations: list[Evaluation], fitness: Fitness) -> Evaluation | None:
    top = ranked(evaluations, fitness, 1)
    return top[0] if top else None
