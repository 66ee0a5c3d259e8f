"""Evolution: HAEMSA's generational loop and regularized (aging) evolution.

  generational   evaluate a generation, then tournament selection (tools.selTournament),
                 crossover and mutation (blend, eq. 9, and Gaussian, eq. 10, on ordered genes;
                 uniform and resampling on unordered ones: see operators), elitism through a
                 hall of fame. With several objectives: NSGA-II (tools.selNSGA2 survival of
                 parents + offspring, tools.selTournamentDCD parent selection). A child that
                 turns out to be a known architecture is replaced by another child.
  steady-state   regularized (aging) evolution (Real et al. 2019): each finished evaluation
                 spawns one child from a tournament over the living population, and the oldest
                 dies, so no worker idles.
"""
from __future__ import annotations

import math
import random
from collections import deque

from deap import tools

from evo_msa.nas.strategies.base import Candidate, Strategy
from evo_msa.nas.strategies.operators import variation_toolbox


class GenerationalEvolution(Strategy):
    """Generational evolution (HAEMSA sec. 3.2): tournament selection, blend crossover, Gaussian
    mutation, a hall of fame; NSGA-II with several objectives; steady-state (aging) as a variant."""

    name = "generational"
    learns_as_results_come = False  # it breeds once a whole generation is in

    def __init__(self, space, settings, seed=0, objectives=1):
        super().__init__(space, settings, seed, objectives)
        self.members: list[int] = []  # ids in the current generation (elites included)
        self.hof_ids: list[int] = []  # single objective: the hall of fame
        self.parent_ids: list[int] = []  # several objectives: NSGA-II's survivors
        self.pool: list[int] = []  # what the current generation was bred from
        self.toolbox = variation_toolbox(space, settings)
        for _ in range(settings.pop_size):
            self.members.append(self._new(self.space.sample(self.rng)).id)

    @property
    def planned_generations(self) -> int:
        """Generations the budget allows (the first one whole, then children without the elites)."""
        per_generation = self.s.pop_size - (0 if self.objectives > 1 else self.s.elites)
        return 1 + math.ceil(max(0, self.budget - self.s.pop_size) / max(1, per_generation))

    def _on_tell(self, cand, trained):
        if not trained and cand.id in self.members and not self.done:
            self.members.remove(cand.id)  # a known architecture takes no place: another child
            if self.room > 0:
                self.members.append(self._replacement(cand).id)
        gen = [self.candidates[i] for i in self.members]
        if any(c.score is None for c in gen) or self.done:
            return
        self._check_patience()
        if self.objectives > 1:
            self._survive_nsga2(gen)
        else:
            self._update_hof(gen)
        if not self.done:
            self._breed(gen)

    def _update_hof(self, gen: list[Candidate]) -> None:
        hof = tools.HallOfFame(self.s.elites)
        hof.update([self._individual(self.candidates[i]) for i in self.hof_ids]
                   + [self._individual(c) for c in gen])
        self.hof_ids = [ind.cid for ind in hof]

    def _survive_nsga2(self, gen: list[Candidate]) -> None:
        """NSGA-II's (mu + lambda) survival: the best pop_size of parents and offspring by
        non-domination rank, then crowding distance."""
        pool = [self._individual(self.candidates[i]) for i in self.parent_ids]
        pool += [self._individual(c) for c in gen if c.id not in set(self.parent_ids)]
        self.parent_ids = [ind.cid for ind in tools.selNSGA2(pool, self.s.pop_size)]

    def _select_parents(self, pop, n: int):
        if self.objectives == 1:
            return tools.selTournament(pop, n, tournsize=self.s.tournament_k)
        survivors = tools.selNSGA2(pop, len(pop))  # assigns the crowding distances
        if len(survivors) < 4:
            return tools.selRandom(survivors, n)
        picked, chunk = [], len(survivors) // 4 * 4
        while len(picked) < n:
            picked += tools.selTournamentDCD(survivors, chunk)
        return picked[:n]

    def _breed(self, gen: list[Candidate]) -> None:
        multi = self.objectives > 1
        source = [self.candidates[i] for i in self.parent_ids] if multi else gen
        self.pool = [c.id for c in source]
        pop = [self._individual(c) for c in source]
        carried = [] if multi else list(self.hof_ids)
        n_children = min(self.s.pop_size - len(carried), self.budget - self.trained)
        self.generation += 1
        with self._deap_random():
            parents = self._select_parents(pop, n_children)
            children = [self._child(p) for p in parents]
            lineage = [[p.cid] for p in parents]
            for i in range(1, len(children), 2):
                if random.random() < self.s.cx_prob:
                    self.toolbox.mate(children[i - 1], children[i])
                    both = sorted(set(lineage[i - 1] + lineage[i]))
                    lineage[i - 1], lineage[i] = both, list(both)
            for child in children:
                if random.random() < self.s.mut_prob:
                    self.toolbox.mutate(child)
        # elites survive as they are, with their fitness: not evaluated again
        self.members = carried
        for child, parent_ids in zip(children, lineage):
            self.members.append(self._new(child, parent_ids).id)

    def _replacement(self, known: Candidate) -> Candidate:
        """Another child in place of one that needed no training: a fresh sample in the first
        generation, else a mutated child of two parents from the same pool."""
        if not self.pool:
            return self._new(self.space.sample(self.rng))
        pop = [self._individual(self.candidates[i]) for i in self.pool]
        with self._deap_random():
            picked = self._select_parents(pop, 2)
            a, b = (self._child(p) for p in picked)
            self.toolbox.mate(a, b)
            self.toolbox.mutate(a)  # always: the copy it replaces came from these parents
        return self._new(a, sorted({p.cid for p in picked}))

    def _extra_state(self):
        return {"members": self.members, "hof_ids": self.hof_ids, "parent_ids": self.parent_ids,
                "pool": self.pool}

    def _load_extra_state(self, extra):
        self.members, self.hof_ids = list(extra["members"]), list(extra["hof_ids"])
        self.parent_ids = list(extra.get("parent_ids", []))
        self.pool = list(extra.get("pool", []))


class SteadyStateEvolution(Strategy):
    """Regularized evolution (Real et al. 2019): the population is a queue ordered by age."""

    name = "steady-state"

    def __init__(self, space, settings, seed=0, objectives=1):
        super().__init__(space, settings, seed, objectives)
        self.alive: deque[int] = deque()
        self.toolbox = variation_toolbox(space, settings)

    def _refill(self):
        if self.done or self.room <= 0:
            return
        if self.next_id < self.s.pop_size:
            self._new(self.space.sample(self.rng))
            return
        if len(self.alive) < 2:
            return  # wait until a tournament is possible
        pop = [self._individual(self.candidates[i]) for i in self.alive]
        with self._deap_random():
            picked = tools.selTournament(pop, 2, tournsize=min(self.s.tournament_k, len(pop)))
            a, b = (self._child(p) for p in picked)
            parents = sorted({picked[0].cid})
            if random.random() < self.s.cx_prob:
                self.toolbox.mate(a, b)
                parents = sorted({p.cid for p in picked})
            self.toolbox.mutate(a)
        self.generation = self.next_id // self.s.pop_size
        self._new(a, parents)

    def _on_tell(self, cand, trained):
        if trained:  # a known architecture is already in the population, or was
            self.alive.append(cand.id)
            if len(self.alive) > self.s.pop_size:
                self.alive.popleft()  # the oldest dies, whatever its fitness
        self._count_budget()

    def _extra_state(self):
        return {"alive": list(self.alive)}

    def _load_extra_state(self, extra):
        self.alive = deque(extra["alive"])
