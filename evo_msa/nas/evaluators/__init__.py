"""Evaluators: how a genome becomes a measurement (see base). `make_evaluator` picks the one a
search space names (`evaluator:` in its file; HAEMSA trainings by default)."""
from __future__ import annotations

from evo_msa.nas.evaluators.base import Description, Evaluator, Member, Outcome
from evo_msa.space import SearchSpace

__all__ = ["Description", "Evaluator", "Member", "Outcome", "make_evaluator"]


def make_evaluator(space: SearchSpace, data=None, *, data_spec: str | None = None,
                   device: str = "cpu", seed: int = 0) -> Evaluator:
    """The space's evaluator; `data` (an MSAData) for HAEMSA spaces, or `data_spec` for trials
    that read the data themselves; `seed`: the search's (a table draws its noise from it)."""
    if space.haemsa:
        from evo_msa.data import DataInfo
        from evo_msa.nas.evaluators.haemsa import HaemsaEvaluator

        return HaemsaEvaluator(space, DataInfo.from_data(data), data=data, data_spec=data_spec,
                               device=device)
    from evo_msa.nas.evaluators.table import TableEvaluator

    return TableEvaluator(space, seed=seed)
