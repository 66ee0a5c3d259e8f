"""Which evaluated genome a search hands on (best_genome.json, the final trainer, a benchmark's
regret): the strategy's pick where it makes one (surrogate-assisted evolution: the best robust
estimate over re-trained finalists), else the best on the primary objective."""
from __future__ import annotations

from evo_msa.nas.evaluation import Evaluation
from evo_msa.report.leaderboard import ranked
from evo_msa.space.fitness import Fitness


def final_pick(evaluations: list[Evaluation], fitness: Fitness,
               strategy=None) -> Evaluation | None:
    """The evaluation of the picked genome (its first training, when it has several)."""
    chosen = getattr(strategy, "pick", lambda: None)() if strategy is not None else None
    if chosen is not None:
        mine = [e for e in evaluations if e.id == chosen and e.status.usable]
        if mine:
            return mine[0]
    top = ranked(evaluations, fitness, 1)
    return top[0] if top else None
