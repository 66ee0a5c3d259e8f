"""Random search: uniform samples with the same budget, the baseline every strategy must beat."""
from __future__ import annotations

from evo_msa.nas.strategies.base import Strategy


class RandomSearch(Strategy):
    """Random search: genomes drawn uniformly from the space until the budget is spent."""

    name = "random"
    learns_as_results_come = False

    def describe(self) -> str:
        """What the strategy does, for the search's first lines."""
        return "random search: uniform samples"

    def _refill(self):
        if not self.done and self.room > 0:
            self.generation = self.next_id // self.s.pop_size
            self._new(self.space.sample(self.rng))

    def _on_tell(self, cand, trained):
        self._count_budget()
