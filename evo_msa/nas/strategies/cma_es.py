"""CMA-ES as a peer strategy (`--strategy cmaes`; needs the `bench` extra): CatCMA with margin
(Hamano et al. 2024-25, the `cmaes` package behind Optuna's CMA-ES sampler), which samples
mixed spaces as they are: continuous genes from a Gaussian, ordered grids as integers with a
margin that keeps every value reachable, unordered choices (categorical, mask, a grid of two)
from a categorical distribution learnt alongside.

Each generation of the optimiser asks `population_size` solutions; they map to genomes at the
centre of what they decode to. Solutions that decode to one configuration within a generation
are trained once and share the score; a configuration trained before is answered by the policy
(cached, no training). The optimiser learns once a whole generation is told, so it waits for
generations like the generational GA. When a generation brings nothing new (the distribution
has converged on trained configurations) or the optimiser says it should stop, it restarts
from scratch with a fresh seed, so the budget is spent searching.

Resume is bit-for-bit without pickling the optimiser: it is rebuilt from its seeds and every
told generation is replayed (the optimiser draws only from its own seeded generator).
"""
from __future__ import annotations

import numpy as np

from evo_msa.errors import UserError
from evo_msa.nas.strategies.base import Strategy
from evo_msa.nas.strategies.predictor import Slots


class CMAESSearch(Strategy):
    """CMA-ES with margin (CatCMA for categorical genes), through the cmaes package; the surrogate's
    predictor screens twins."""

    name = "cmaes"
    learns_as_results_come = False  # it learns from whole generations

    def describe(self) -> str:
        """What the strategy does, for the search's first lines."""
        return "cmaes: CMA-ES with margin (the cmaes package)"

    def __init__(self, space, settings, seed=0, objectives=1):
        if objectives > 1:
            raise UserError("--strategy cmaes optimises one objective; with several, use "
                            "--mode generational (NSGA-II)")
        super().__init__(space, settings, seed, objectives)
        try:
            import cmaes
        except ImportError:
            raise UserError("--strategy cmaes needs cmaes (in the checkout: pip install -e "
                            "'.[bench]')") \
                from None
        self.cmaes = cmaes
        slots = Slots(space)
        # per genome slot: ("x", 0) continuous, ("z", k) an ordered grid, ("c", k) choices,
        # ("fixed", 1) a slot of one value
        self.layout = []
        for kind, k in zip(slots.kinds, slots.cells):
            if kind == "continuous":
                self.layout.append(("x", 0))
            elif k <= 1:
                self.layout.append(("fixed", 1))
            else:
                self.layout.append(("z" if kind == "ordered" and k > 2 else "c", int(k)))
        if all(kind == "fixed" for kind, _ in self.layout):
            raise UserError(f"{space.source}: every gene has one value: nothing to search")
        self.slots = slots
        # the optimiser's history: its seeds (one per restart, at which generation) and, per
        # told generation, each solution's candidate id and the solution it shares a score with
        self.restarts: list[list[int]] = [[0, self.rng.randrange(2**31)]]
        self.told_generations: list[list[list[int]]] = []
        self.current: list[list[int]] = []  # [candidate id or -1 (not queued yet), twin index]
        self.optimizer = self._optimizer(self.restarts[0][1])
        self.solutions: list = []  # the current generation's solutions (rebuilt on resume)
        self.trained_ids: set[int] = set()  # told candidates that spent a training

    # ---- the optimiser -----------------------------------------------------------------------
    def _optimizer(self, seed: int):
        x = [[0.0, 1.0] for kind, _ in self.layout if kind == "x"]
        z = [list(range(k)) for kind, k in self.layout if kind == "z"]
        c = [k for kind, k in self.layout if kind == "c"]
        return self.cmaes.CatCMAwM(x_space=x or None, z_space=z or None, c_space=c or None,
                                   seed=seed)

    def _genome(self, sol) -> list[float]:
        """The genome at the centre of what a solution decodes to."""
        xs, zs = iter(sol.x if sol.x is not None else ()), iter(sol.z if sol.z is not None else ())
        cs = iter(sol.c if sol.c is not None else ())
        genome = []
        for kind, k in self.layout:
            if kind == "x":
                genome.append(float(np.clip(next(xs), 0.0, 1.0)))
            elif kind == "z":
                genome.append((int(next(zs)) + 0.5) / k)
            elif kind == "c":
                genome.append((int(np.argmax(next(cs))) + 0.5) / k)
            else:
                genome.append(0.5)
        return genome

    # ---- generations -------------------------------------------------------------------------
    def _refill(self):
        if self.done or self.room <= 0:
            return
        if self.current and self._complete():
            self._finish_generation()
        if not self.current:
            self._new_generation()
        # the generation's configurations, as many as the budget has room for (the rest wait)
        for i, entry in enumerate(self.current):
            if entry == [-1, -1] and self.room > 0:
                self.generation = self.next_id // self.s.pop_size  # pop_size per line of progress
                entry[0] = self._new(self._genome(self.solutions[i])).id

    def _complete(self) -> bool:
        """Every configuration of the current generation has its score."""
        return all(twin >= 0 or (cid >= 0 and self.candidates[cid].score is not None)
                   for cid, twin in self.current)

    def _new_generation(self) -> None:
        """Ask the optimiser for a generation; a solution decoding to a configuration met earlier
        in the generation shares that one's score (its twin's index)."""
        self.solutions = [self.optimizer.ask() for _ in range(self.optimizer.population_size)]
        first: dict = {}
        self.current = []
        for i, sol in enumerate(self.solutions):
            key = self._identity(self._genome(sol))
            self.current.append([-1, first.get(key, -1)])
            first.setdefault(key, i)

    def _identity(self, genome: list[float]):
        if self.identity is not None:
            return self.identity(self.space.clip(list(genome)))
        return self.slots.keys(np.array([genome]))[0]

    def _value(self, generation: list[list[int]], i: int) -> float:
        """What the optimiser minimises for solution i: minus the first score."""
        cid, twin = generation[i]
        cid = generation[twin][0] if twin >= 0 else cid
        return -self.candidates[cid].score[0]

    def _finish_generation(self) -> None:
        values = [self._value(self.current, i) for i in range(len(self.current))]
        self.optimizer.tell(list(zip(self.solutions, values)))
        self.told_generations.append(self.current)
        # nothing new (every configuration was trained before), or converged: restart
        new = any(cid in self.trained_ids for cid, twin in self.current if twin < 0)
        gaussian = any(kind in ("x", "z") for kind, _ in self.layout)  # (what should_stop reads)
        if not new or (gaussian and self.optimizer.should_stop()):
            self.restarts.append([len(self.told_generations), self.rng.randrange(2**31)])
            self.optimizer = self._optimizer(self.restarts[-1][1])
        self.current = []

    def _on_tell(self, cand, trained):
        if trained:
            self.trained_ids.add(cand.id)
        self._count_budget()

    # ---- checkpoint: the optimiser is replayed from its seeds ---------------------------------
    def _extra_state(self):
        return {"restarts": self.restarts, "told_generations": self.told_generations,
                "current": self.current, "trained": sorted(self.trained_ids)}

    def _load_extra_state(self, extra):
        self.restarts = [list(r) for r in extra["restarts"]]
        self.told_generations = [[list(e) for e in g] for g in extra["told_generations"]]
        self.trained_ids = set(extra["trained"])
        starts = dict((g, seed) for g, seed in self.restarts)
        self.optimizer = None
        for g, generation in enumerate(self.told_generations):
            if g in starts:
                self.optimizer = self._optimizer(starts[g])
            solutions = [self.optimizer.ask() for _ in range(self.optimizer.population_size)]
            values = [self._value(generation, i) for i in range(len(generation))]
            self.optimizer.tell(list(zip(solutions, values)))
        if len(self.told_generations) in starts:
            self.optimizer = self._optimizer(starts[len(self.told_generations)])
        self.current = [list(e) for e in extra["current"]]
        self.solutions = ([self.optimizer.ask() for _ in range(self.optimizer.population_size)]
                          if self.current else [])
