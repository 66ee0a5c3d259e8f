"""Search strategies: which genome to evaluate next. They know genomes and fitness, nothing else.

Interface (ask/tell, as in NNI and Archai):
    ask()  -> Candidate, or None while it waits for pending results
    tell(candidate_id, score)   score: higher is better (the policy layer signs the fitness)
    done   -> True when the budget is spent or the search has converged
    state_dict() / load_state_dict()   everything needed to resume bit-for-bit

Strategies:
  generational   HAEMSA's loop: evaluate a generation, then tournament selection (tools.selTournament),
                 blend crossover (tools.cxBlend, eq. 9), Gaussian mutation (tools.mutGaussian, eq. 10),
                 elitism through a hall of fame.
  steady-state   regularized (aging) evolution: each finished evaluation spawns one child from a
                 tournament over the living population, and the oldest dies, so no worker idles.
  random         uniform samples with the same budget: the baseline.

DEAP operators draw from Python's global `random`; each strategy keeps its own generator state
and swaps it in around DEAP calls, so the search is reproducible and its state checkpointable.
"""
from __future__ import annotations

import contextlib
import random
import statistics
from collections import deque
from dataclasses import asdict, dataclass, field

from deap import base, creator, tools

from evo_msa.space import SearchSpace

# DEAP classes live in the driver only; trials receive plain dicts (created at import so that
# unpickling in any process that imports this module finds them)
if not hasattr(creator, "EvoMSAFitness"):
    creator.create("EvoMSAFitness", base.Fitness, weights=(1.0,))
if not hasattr(creator, "EvoMSAIndividual"):
    creator.create("EvoMSAIndividual", list, fitness=creator.EvoMSAFitness, cid=int)


@dataclass
class Candidate:
    id: int
    genome: list[float]
    generation: int
    parents: list[int] = field(default_factory=list)
    score: float | None = None  # higher is better; None until told


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


class Strategy:
    name = "base"

    def __init__(self, space: SearchSpace, settings: EvolutionSettings, seed: int = 0):
        self.space, self.s = space, settings
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

    def tell(self, cid: int, score: float) -> None:
        self.told += 1
        self.pending.discard(cid)
        self.candidates[cid].score = score
        self._on_tell(self.candidates[cid])

    @property
    def done(self) -> bool:
        return bool(self.stopped_reason)

    @property
    def budget(self) -> int:
        return self.s.pop_size * self.s.generations

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
        ind = creator.EvoMSAIndividual(cand.genome)
        ind.cid = cand.id
        if cand.score is not None:
            ind.fitness.values = (cand.score,)
        return ind

    def _check_patience(self) -> None:
        """Record this generation's best and stop when it has stalled or the budget is spent."""
        told = [c.score for c in self.candidates.values() if c.score is not None]
        self.best_per_generation.append(max(told))
        p = self.s.patience
        h = self.best_per_generation
        if len(h) >= self.s.generations:
            self.stopped_reason = f"{self.s.generations} generations done"
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

    # ---- reporting -------------------------------------------------------------------------
    def generation_summary(self, generation: int) -> dict:
        scores = [c.score for c in self.candidates.values()
                  if c.generation == generation and c.score is not None]
        return {"evaluated": len(scores), "best": max(scores) if scores else None,
                "median": statistics.median(scores) if scores else None}


class GenerationalEvolution(Strategy):
    name = "generational"

    def __init__(self, space, settings, seed=0):
        super().__init__(space, settings, seed)
        self.members: list[int] = []  # ids in the current generation (elites included)
        self.hof_ids: list[int] = []
        for _ in range(settings.pop_size):
            self.members.append(self._new(self.space.sample(self.rng)).id)

    def _on_tell(self, cand):
        gen = [self.candidates[i] for i in self.members]
        if any(c.score is None for c in gen) or self.done:
            return
        self._check_patience()
        self._update_hof(gen)
        if not self.done:
            self._breed(gen)

    def _update_hof(self, gen: list[Candidate]) -> None:
        hof = tools.HallOfFame(self.s.elites)
        hof.update([self._individual(self.candidates[i]) for i in self.hof_ids]
                   + [self._individual(c) for c in gen])
        self.hof_ids = [ind.cid for ind in hof]

    def _breed(self, gen: list[Candidate]) -> None:
        pop = [self._individual(c) for c in gen]
        n_children = self.s.pop_size - len(self.hof_ids)
        self.generation += 1
        with self._deap_random():
            parents = tools.selTournament(pop, n_children, tournsize=self.s.tournament_k)
            children = [creator.EvoMSAIndividual(p) for p in parents]
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
        self.members = list(self.hof_ids)
        for child, parent_ids in zip(children, lineage):
            self.members.append(self._new(child, parent_ids).id)

    def _extra_state(self):
        return {"members": self.members, "hof_ids": self.hof_ids}

    def _load_extra_state(self, extra):
        self.members, self.hof_ids = list(extra["members"]), list(extra["hof_ids"])


class SteadyStateEvolution(Strategy):
    """Regularized evolution (Real et al. 2019): the population is a queue ordered by age."""

    name = "steady-state"

    def __init__(self, space, settings, seed=0):
        super().__init__(space, settings, seed)
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
            a, b = (creator.EvoMSAIndividual(p) for p in picked)
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
                  seed: int = 0) -> Strategy:
    return STRATEGIES[kind](space, settings, seed)


def _jsonable_state(state):
    version, internal, gauss = state
    return [version, list(internal), gauss]


def _tuple_state(state):
    version, internal, gauss = state
    return (version, tuple(internal), gauss)
