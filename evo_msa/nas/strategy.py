"""Search strategies: which genome to evaluate next. They know genomes and fitness, nothing else.

Interface (ask/tell, as in NNI and Archai):
    ask()  -> Candidate, or None while it waits for pending results
    tell(candidate_id, scores)  one score per objective, higher is better (Fitness.scores)
    done   -> True when the budget is spent or the search has converged
    state_dict() / load_state_dict()   everything needed to resume bit-for-bit

The budget is a number of evaluations, pop_size x generations, the same for every strategy.

Strategies:
  generational   HAEMSA's loop: evaluate a generation, then tournament selection (tools.selTournament),
                 blend crossover (tools.cxBlend, eq. 9), Gaussian mutation (tools.mutGaussian, eq. 10),
                 elitism through a hall of fame. With several objectives: NSGA-II (tools.selNSGA2
                 survival of parents + offspring, tools.selTournamentDCD parent selection).
  steady-state   regularized (aging) evolution: each finished evaluation spawns one child from a
                 tournament over the living population, and the oldest dies, so no worker idles.
  random         uniform samples with the same budget: the baseline.

DEAP operators draw from Python's global `random`; each strategy keeps its own generator state
and swaps it in around DEAP calls, so the search is reproducible and its state checkpointable.
"""
from __future__ import annotations

import contextlib
import math
import random
from collections import deque
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from deap import base, creator, tools

from evo_msa.errors import UserError, brief
from evo_msa.space import SearchSpace


def _individual_class(n_objectives: int):
    """DEAP classes for n objectives (scores, higher is better). They live in the driver only:
    trials receive plain dicts."""
    name = f"EvoMSAIndividual{n_objectives}"
    if not hasattr(creator, name):
        creator.create(f"EvoMSAFitness{n_objectives}", base.Fitness,
                       weights=(1.0,) * n_objectives)
        creator.create(name, list, fitness=getattr(creator, f"EvoMSAFitness{n_objectives}"),
                       cid=int)
    return getattr(creator, name)


@dataclass
class Candidate:
    id: int
    genome: list[float]
    generation: int
    parents: list[int] = field(default_factory=list)
    score: list[float] | None = None  # one per objective, higher is better; None until told


@dataclass
class EvolutionSettings:
    pop_size: int = 32
    generations: int = 6
    patience: int | None = None  # stop after this many generations without improvement
    tournament_k: int = 3
    cx_prob: float = 0.9
    cx_alpha: float = 0.5  # blend crossover alpha
    mut_prob: float = 0.8  # probability that a child is mutated
    mut_sigma: float = 0.15  # Gaussian sigma in genome units ([0, 1] per gene)
    mut_indpb: float = 0.3  # per-gene mutation probability
    elites: int = 2  # hall-of-fame members copied into the next generation

    # set by the search options, not by their `evolution` overrides
    FROM_OPTIONS = {"pop_size": "--pop", "generations": "--generations", "patience": "--patience"}

    def __post_init__(self):
        self.validate()

    @classmethod
    def from_options(cls, pop: int, generations: int, patience: int | None,
                     overrides: Any) -> "EvolutionSettings":
        """Settings from the search options and their `evolution` mapping; an unknown key,
        a key the options set, or a bad value is a one-line UserError."""
        if not isinstance(overrides, dict):
            raise UserError(f"evolution must be a mapping of settings, got {brief(overrides)}")
        known = [f.name for f in fields(cls) if f.name not in cls.FROM_OPTIONS]
        for key in overrides:
            if key in cls.FROM_OPTIONS:
                raise UserError(f"evolution.{key} is set by {cls.FROM_OPTIONS[key]}, not in "
                                "evolution")
            if key not in known:
                raise UserError(f"evolution: unknown setting {brief(key)} (expected "
                                f"{', '.join(known)})")
        return cls(pop_size=pop, generations=generations, patience=patience, **overrides)

    def validate(self) -> None:
        from evo_msa.nas.options import MAX_GENERATIONS, MAX_POP

        def whole(v, low, high):
            return isinstance(v, int) and not isinstance(v, bool) and low <= v <= high

        def number(v, low, high):
            return (isinstance(v, (int, float)) and not isinstance(v, bool)
                    and math.isfinite(v) and low <= v <= high)

        pop = self.pop_size if whole(self.pop_size, 2, MAX_POP) else None
        checks = [
            ("pop_size", whole(self.pop_size, 2, MAX_POP), f"an integer in 2..{MAX_POP}"),
            ("generations", whole(self.generations, 1, MAX_GENERATIONS),
             f"an integer in 1..{MAX_GENERATIONS}"),
            ("patience", self.patience is None or whole(self.patience, 1, MAX_GENERATIONS),
             f"an integer in 1..{MAX_GENERATIONS} or null"),
            ("tournament_k", whole(self.tournament_k, 1, MAX_TOURNAMENT),
             f"an integer in 1..{MAX_TOURNAMENT}"),
            ("cx_prob", number(self.cx_prob, 0, 1), "a probability in [0, 1]"),
            ("cx_alpha", number(self.cx_alpha, 0, MAX_SPREAD), f"a number in [0, {MAX_SPREAD}]"),
            ("mut_prob", number(self.mut_prob, 0, 1), "a probability in [0, 1]"),
            ("mut_sigma", number(self.mut_sigma, 0, MAX_SPREAD),
             f"a number in [0, {MAX_SPREAD}] (genome units)"),
            ("mut_indpb", number(self.mut_indpb, 0, 1), "a probability in [0, 1]"),
            # a generation keeps `elites` and breeds pop - elites children: none would stall it
            ("elites", pop is None or whole(self.elites, 0, pop - 1),
             f"an integer in 0..{(pop or 2) - 1} (fewer than the population of {pop})"),
        ]
        for name, ok, expected in checks:
            if not ok:
                flag = self.FROM_OPTIONS.get(name, f"evolution.{name}")
                raise UserError(f"{flag} must be {expected}, got {brief(getattr(self, name))}")


MAX_TOURNAMENT = 100  # tournament size (DEAP draws it with replacement for every child)
MAX_SPREAD = 10.0  # cx_alpha, mut_sigma: genes live in [0, 1]


class Strategy:
    name = "base"

    def __init__(self, space: SearchSpace, settings: EvolutionSettings, seed: int = 0,
                 objectives: int = 1):
        self.space, self.s = space, settings
        self.objectives = objectives
        self.rng = random.Random(seed)
        self.next_id = 0
        self.generation = 0
        self.candidates: dict[int, Candidate] = {}
        self.queue: deque[int] = deque()  # created, not yet handed out
        self.pending: set[int] = set()  # handed out, no score yet
        self.best_per_generation: list[float] = []  # best score after each finished generation
        self.stopped_reason = ""
        self.told = 0

    # ---- interface -------------------------------------------------------------------------
    def ask(self) -> Candidate | None:
        if not self.queue:
            self._refill()
        if not self.queue:
            return None
        cid = self.queue.popleft()
        self.pending.add(cid)
        return self.candidates[cid]

    def tell(self, cid: int, scores) -> None:
        self.told += 1
        self.pending.discard(cid)
        self.candidates[cid].score = [float(x) for x in scores]
        self._on_tell(self.candidates[cid])

    @property
    def done(self) -> bool:
        return bool(self.stopped_reason)

    @property
    def budget(self) -> int:
        """Evaluations, for every strategy."""
        return self.s.pop_size * self.s.generations

    @property
    def planned_generations(self) -> int:
        """Generations the budget makes (steady-state and random: every pop_size evaluations)."""
        return self.s.generations

    # ---- for subclasses --------------------------------------------------------------------
    def _refill(self) -> None:
        """Put new candidates in the queue, if the strategy can make any now."""

    def _on_tell(self, cand: Candidate) -> None:
        pass

    def _new(self, genome: list[float], parents=()) -> Candidate:
        cand = Candidate(self.next_id, self.space.clip(list(genome)), self.generation, list(parents))
        self.candidates[cand.id] = cand
        self.queue.append(cand.id)
        self.next_id += 1
        return cand

    @contextlib.contextmanager
    def _deap_random(self):
        """Let DEAP's operators draw from this strategy's generator."""
        outer = random.getstate()
        random.setstate(self.rng.getstate())
        try:
            yield
        finally:
            self.rng.setstate(random.getstate())
            random.setstate(outer)

    def _individual(self, cand: Candidate):
        ind = _individual_class(self.objectives)(cand.genome)
        ind.cid = cand.id
        if cand.score is not None:
            ind.fitness.values = tuple(cand.score)
        return ind

    def _child(self, genome):
        return _individual_class(self.objectives)(genome)

    def _check_patience(self) -> None:
        """Record this generation's best (first objective) and stop when it has stalled or the
        budget is spent."""
        told = [c.score[0] for c in self.candidates.values() if c.score is not None]
        self.best_per_generation.append(max(told))
        p = self.s.patience
        h = self.best_per_generation
        if self.told >= self.budget:
            self.stopped_reason = f"budget of {self.budget} evaluations spent"
        elif p and len(h) > p and max(h[-p:]) <= h[-p - 1]:
            self.stopped_reason = f"no improvement for {p} generations"

    def _count_budget(self) -> None:
        """For strategies without generations: every pop_size evaluations count as one."""
        if self.told % self.s.pop_size == 0:
            self._check_patience()
        if self.told >= self.budget and not self.done:
            self.stopped_reason = f"budget of {self.budget} evaluations spent"

    # ---- checkpointing ---------------------------------------------------------------------
    def state_dict(self) -> dict:
        return {"name": self.name, "rng": _jsonable_state(self.rng.getstate()),
                "next_id": self.next_id, "generation": self.generation,
                "candidates": [asdict(c) for c in self.candidates.values()],
                # pending ones are re-queued on resume: their results died with the old process
                "queue": sorted(self.pending) + list(self.queue),
                "best_per_generation": self.best_per_generation,
                "stopped_reason": self.stopped_reason, "told": self.told,
                "extra": self._extra_state()}

    def load_state_dict(self, state: dict) -> None:
        if state["name"] != self.name:
            raise ValueError(f"checkpoint is of strategy {state['name']!r}, not {self.name!r}")
        self.rng.setstate(_tuple_state(state["rng"]))
        self.next_id, self.generation = state["next_id"], state["generation"]
        self.candidates = {c["id"]: Candidate(**c) for c in state["candidates"]}
        self.queue, self.pending = deque(state["queue"]), set()
        self.best_per_generation = list(state["best_per_generation"])
        self.stopped_reason, self.told = state["stopped_reason"], state["told"]
        self._load_extra_state(state["extra"])

    def _extra_state(self) -> dict:
        return {}

    def _load_extra_state(self, extra: dict) -> None:
        pass


class GenerationalEvolution(Strategy):
    name = "generational"

    def __init__(self, space, settings, seed=0, objectives=1):
        super().__init__(space, settings, seed, objectives)
        self.members: list[int] = []  # ids in the current generation (elites included)
        self.hof_ids: list[int] = []  # single objective: the hall of fame
        self.parent_ids: list[int] = []  # several objectives: NSGA-II's survivors
        for _ in range(settings.pop_size):
            self.members.append(self._new(self.space.sample(self.rng)).id)

    @property
    def planned_generations(self) -> int:
        per_generation = self.s.pop_size - (0 if self.objectives > 1 else self.s.elites)
        return 1 + math.ceil(max(0, self.budget - self.s.pop_size) / max(1, per_generation))

    def _on_tell(self, cand):
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
        pop = [self._individual(c) for c in source]
        carried = [] if multi else list(self.hof_ids)
        n_children = min(self.s.pop_size - len(carried), self.budget - self.told)
        self.generation += 1
        with self._deap_random():
            parents = self._select_parents(pop, n_children)
            children = [self._child(p) for p in parents]
            lineage = [[p.cid] for p in parents]
            for i in range(1, len(children), 2):
                if random.random() < self.s.cx_prob:
                    tools.cxBlend(children[i - 1], children[i], self.s.cx_alpha)
                    both = sorted(set(lineage[i - 1] + lineage[i]))
                    lineage[i - 1], lineage[i] = both, list(both)
            for child in children:
                if random.random() < self.s.mut_prob:
                    tools.mutGaussian(child, 0.0, self.s.mut_sigma, self.s.mut_indpb)
        # elites survive as they are, with their fitness: not evaluated again
        self.members = carried
        for child, parent_ids in zip(children, lineage):
            self.members.append(self._new(child, parent_ids).id)

    def _extra_state(self):
        return {"members": self.members, "hof_ids": self.hof_ids, "parent_ids": self.parent_ids}

    def _load_extra_state(self, extra):
        self.members, self.hof_ids = list(extra["members"]), list(extra["hof_ids"])
        self.parent_ids = list(extra.get("parent_ids", []))


class SteadyStateEvolution(Strategy):
    """Regularized evolution (Real et al. 2019): the population is a queue ordered by age."""

    name = "steady-state"

    def __init__(self, space, settings, seed=0, objectives=1):
        super().__init__(space, settings, seed, objectives)
        self.alive: deque[int] = deque()

    def _refill(self):
        if self.done or self.next_id >= self.budget:
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
                tools.cxBlend(a, b, self.s.cx_alpha)
                parents = sorted({p.cid for p in picked})
            tools.mutGaussian(a, 0.0, self.s.mut_sigma, self.s.mut_indpb)
        self.generation = self.next_id // self.s.pop_size
        self._new(a, parents)

    def _on_tell(self, cand):
        self.alive.append(cand.id)
        if len(self.alive) > self.s.pop_size:
            self.alive.popleft()  # the oldest dies, whatever its fitness
        self._count_budget()

    def _extra_state(self):
        return {"alive": list(self.alive)}

    def _load_extra_state(self, extra):
        self.alive = deque(extra["alive"])


class RandomSearch(Strategy):
    name = "random"

    def _refill(self):
        if not self.done and self.next_id < self.budget:
            self.generation = self.next_id // self.s.pop_size
            self._new(self.space.sample(self.rng))

    def _on_tell(self, cand):
        self._count_budget()


STRATEGIES = {"generational": GenerationalEvolution, "steady-state": SteadyStateEvolution,
              "random": RandomSearch}


def make_strategy(kind: str, space: SearchSpace, settings: EvolutionSettings,
                  seed: int = 0, objectives: int = 1) -> Strategy:
    return STRATEGIES[kind](space, settings, seed, objectives)


def _jsonable_state(state):
    version, internal, gauss = state
    return [version, list(internal), gauss]


def _tuple_state(state):
    version, internal, gauss = state
    return (version, tuple(internal), gauss)
