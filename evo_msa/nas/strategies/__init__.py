"""Search strategies: which genome to evaluate next (ask/tell; see base).

  surrogate      the default: evolution proposes, a predictor picks the children to train
  generational   HAEMSA's loop (evolution)         steady-state   aging evolution (evolution)
  random         uniform samples (random_search)   tpe            Optuna's TPE (tpe)
  cmaes          CMA-ES with margin, mixed categorical (cma_es: the cmaes package)

The finalists' re-trainings and the pick are the engine's, the same for all (nas/selection.py).
"""
from __future__ import annotations

from evo_msa.nas.strategies.base import Candidate, Strategy, StrategySettings
from evo_msa.nas.strategies.cma_es import CMAESSearch
from evo_msa.nas.strategies.evolution import GenerationalEvolution, SteadyStateEvolution
from evo_msa.nas.strategies.random_search import RandomSearch
from evo_msa.nas.strategies.surrogate import SurrogateEvolution
from evo_msa.nas.strategies.tpe import TPESearch
from evo_msa.space import SearchSpace

__all__ = ["Candidate", "StrategySettings", "Strategy", "STRATEGIES", "make_strategy"]

STRATEGIES = {"surrogate": SurrogateEvolution, "generational": GenerationalEvolution,
              "steady-state": SteadyStateEvolution, "random": RandomSearch, "tpe": TPESearch,
              "cmaes": CMAESSearch}


def make_strategy(kind: str, space: SearchSpace, settings: StrategySettings,
                  seed: int = 0, objectives: int = 1) -> Strategy:
    """The strategy `kind` over `space`, with `settings` and `seed`."""
    return STRATEGIES[kind](space, settings, seed, objectives)
