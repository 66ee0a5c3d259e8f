"""What every search strategy is: ask/tell over genomes, a budget, a checkpoint.

Interface (ask/tell, as in NNI and Archai):
    ask()  -> Candidate, or None while it waits for pending results
    tell(candidate_id, scores, trained, partial)  one score per objective, higher is better
                                         (Fitness.scores); trained: compute was spent on it;
                                         partial: measured below the full budget (stopped at
                                         a rung): learnt from, never the best nor the pick
    done   -> True when the budget is spent or the search has converged

The budget counts trainings: a candidate answered without one (an architecture trained before,
a rejected one) costs nothing, and the strategy proposes another instead. A space with fewer
distinct architectures than the budget ends when it runs dry (EXHAUSTED_AFTER proposals in a
row that were all known), with a line saying so.
    state_dict() / load_state_dict()   everything needed to resume bit-for-bit
    set_identity(identity)   the engine tells it: genome -> what the evaluator trains once (two
                             genomes differing only in a gene the architecture does not use are
                             one); a strategy may use it to avoid proposing twins

What a strategy does not do: pick. The engine's final selection (nas/selection.py) re-trains
the finalists on the last share of the budget and picks, the same way for every strategy; a
strategy is built with the budget that stage leaves it, and what it adds to the pick is its
history of trainings (no strategy is told of the re-trainings).

Strategies know genomes (vectors in [0, 1]^n, see evo_msa.space) and scores, nothing else.
DEAP operators draw from Python's global `random`; each strategy keeps its own generator state
and swaps it in around DEAP calls, so the search is reproducible and its state checkpointable.
"""
from __future__ import annotations

import contextlib
import math
import random
from collections import deque
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Callable, Hashable

from deap import base, creator

from evo_msa.errors import UserError, brief, did_you_mean
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
    """A genome a strategy proposed, with its lineage and, once told, its scores."""

    id: int
    genome: list[float]
    generation: int
    parents: list[int] = field(default_factory=list)
    score: list[float] | None = None  # one per objective, higher is better; None until told
    repeat: bool = False  # a fresh training of a known configuration (noise), not a cache hit
    partial: bool = False  # its score is below the full budget (stopped at a rung)


@dataclass
class StrategySettings:
    """What every strategy is given: the budget (population, generations, trainings, patience)
    and the evolutionary operators' knobs (the `evolution` options of a search, used by the
    evolutionary strategies); every value is checked when it is made (a one-line UserError)."""

    pop_size: int = 32
    generations: int = 6
    budget: int | None = None  # trainings; None: pop_size x generations
    patience: int | None = None  # stop after this many generations without improvement
    tournament_k: int = 3
    cx_prob: float = 0.9
    cx_alpha: float = 0.5  # blend crossover alpha
    mut_prob: float = 0.8  # probability that a child is mutated
    mut_sigma: float = 0.15  # Gaussian sigma in genome units ([0, 1] per gene)
    mut_indpb: float = 0.3  # per-gene mutation probability
    elites: int = 2  # hall-of-fame members copied into the next generation

    # set by the search options, not by their `evolution` overrides
    FROM_OPTIONS = {"pop_size": "--pop", "generations": "--generations", "budget": "--budget",
                    "patience": "--patience"}

    def __post_init__(self):
        self.validate()

    @classmethod
    def from_options(cls, pop: int, generations: int, budget: int | None,
                     patience: int | None, overrides: Any) -> "StrategySettings":
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
                raise UserError(f"evolution: unknown setting {brief(key)}"
                                f"{did_you_mean(key, known)} (expected {', '.join(known)})")
        return cls(pop_size=pop, generations=generations, budget=budget, patience=patience,
                   **overrides)

    def validate(self) -> None:
        """Check every setting: a one-line UserError naming the option."""
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
            ("budget", self.budget is None or whole(self.budget, 1, MAX_TRAININGS),
             f"an integer in 1..{MAX_TRAININGS:,} or null"),
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


# Upper bounds: a typo such as --pop 1000000000 (or the same number edited into a run's
# search.json) fails in one line instead of allocating for minutes.
MAX_POP = 10_000
MAX_GENERATIONS = 10_000
MAX_TRAININGS = 1_000_000  # a budget: each one is a training
MAX_TOURNAMENT = 100  # tournament size (DEAP draws it with replacement for every child)
MAX_SPREAD = 10.0  # cx_alpha, mut_sigma: genes live in [0, 1]


EXHAUSTED_AFTER = 100  # at least this many known proposals in a row end a search


class Strategy:
    """A search strategy: subclasses fill the queue (`_refill`) and learn from scores
    (`_on_tell`); the base keeps candidates, the budget, the generator and the checkpoint."""

    name = "base"
    # its proposals depend on the results told so far, one by one: the engine then tells them
    # in candidate id order through a window, so that parallel trials cannot change a search
    learns_as_results_come = True

    def __init__(self, space: SearchSpace, settings: StrategySettings, seed: int = 0,
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
        self.trained = 0  # tells that spent a training: what the budget counts
        self.idle = 0  # tells in a row that spent none
        self.identity: Callable[[list[float]], Hashable] | None = None  # see the docstring
        self.first_modelled: int | None = None  # see `phase`

    # ---- interface -------------------------------------------------------------------------
    def set_identity(self, identity: Callable[[list[float]], Hashable] | None) -> None:
        """What the evaluator counts as one architecture (see the module docstring)."""
        self.identity = identity

    def ask(self) -> Candidate | None:
        """The next candidate to evaluate, or None while it waits for pending results."""
        if not self.queue:
            self._refill()
        if not self.queue:
            return None
        cid = self.queue.popleft()
        self.pending.add(cid)
        return self.candidates[cid]

    def tell(self, cid: int, scores, trained: bool = True, partial: bool = False) -> None:
        """A candidate's scores (see the module docstring)."""
        self.told += 1
        self.trained += bool(trained)
        self.idle = 0 if trained else self.idle + 1
        self.pending.discard(cid)
        self.candidates[cid].score = [float(x) for x in scores]
        self.candidates[cid].partial = bool(partial)
        self._on_tell(self.candidates[cid], bool(trained))
        if not self.done and self.idle >= self.exhausted_after:
            self.stopped_reason = (f"the space looks exhausted: the last {self.idle} proposals "
                                   f"were all known architectures ({self.trained} trained)")

    @property
    def done(self) -> bool:
        """The budget is spent or the search has converged (or the space ran dry)."""
        return bool(self.stopped_reason)

    def describe(self) -> str:
        """What the strategy does, for the search's first lines (a population only where it
        breeds one)."""
        return f"{self.name}, pop {self.s.pop_size}"

    # a strategy that starts with random proposals names that phase and what follows it, sets
    # `design_size` (results it waits for) and `first_modelled` (the first id the model made)
    design, model = "", ""

    @property
    def design_size(self) -> int:
        """Results the random design waits for before the model proposes (0: no design)."""
        return 0

    @property
    def phase(self) -> str:
        """What it does now, for the progress lines ('' when it does one thing throughout):
        e.g. 'random design 8/12', then 'surrogate model'."""
        if not self.design:
            return ""
        if self.first_modelled is None and self.next_id <= self.design_size:
            return f"{self.design} {self.next_id}/{self.design_size}"
        if self.first_modelled is None:  # results held back (engine.py's window) or in flight
            return f"{self.design}: the model waits for {self.design_size} results"
        return self.model

    def phase_of(self, ids) -> str:
        """What proposed these candidates: the random design, the model or both."""
        if not self.design:
            return ""
        early = [self.first_modelled is None or i < self.first_modelled for i in ids]
        if all(early):
            return self.design
        return self.model if not any(early) else f"{self.design}, then {self.model}"

    @property
    def budget(self) -> int:
        """Trainings, for every strategy."""
        return self.s.budget or self.s.pop_size * self.s.generations

    @property
    def exhausted_after(self) -> int:
        """Proposals in a row that were all known before the space counts as exhausted."""
        return max(EXHAUSTED_AFTER, 5 * self.s.pop_size)

    @property
    def room(self) -> int:
        """Trainings the budget still allows beyond those in flight or queued."""
        return self.budget - self.trained - len(self.pending) - len(self.queue)

    @property
    def planned_generations(self) -> int:
        """Generations the budget makes (steady-state and random: every pop_size evaluations)."""
        return math.ceil(self.budget / self.s.pop_size)

    def hold(self, ids: list[int]) -> None:
        """On resume: these asked candidates have results the engine holds back (not told
        yet): in flight, not lost, so out of the re-queue."""
        held = set(ids)
        self.queue = deque(i for i in self.queue if i not in held)
        self.pending |= held

    # ---- for subclasses --------------------------------------------------------------------
    def _refill(self) -> None:
        """Put new candidates in the queue, if the strategy can make any now."""

    def _on_tell(self, cand: Candidate, trained: bool) -> None:
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
        told = [c.score[0] for c in self.candidates.values()
                if c.score is not None and not c.partial]
        self.best_per_generation.append(max(told, default=-math.inf))
        p = self.s.patience
        h = self.best_per_generation
        if self.trained >= self.budget:
            self.stopped_reason = f"budget of {self.budget} trainings spent"
        elif p and len(h) > p and max(h[-p:]) <= h[-p - 1]:
            self.stopped_reason = f"no improvement for {p} generations"

    def _count_budget(self) -> None:
        """For strategies without generations: every pop_size evaluations count as one."""
        if self.told % self.s.pop_size == 0:
            self._check_patience()
        if self.trained >= self.budget and not self.done:
            self.stopped_reason = f"budget of {self.budget} trainings spent"

    # ---- checkpointing ---------------------------------------------------------------------
    def state_dict(self) -> dict:
        """Everything a resume needs (candidates, queue, generator state), as JSON."""
        return {"name": self.name, "rng": _jsonable_state(self.rng.getstate()),
                "next_id": self.next_id, "generation": self.generation,
                "candidates": [asdict(c) for c in self.candidates.values()],
                # pending ones are re-queued on resume: their results died with the old process
                "queue": sorted(self.pending) + list(self.queue),
                "best_per_generation": self.best_per_generation,
                "stopped_reason": self.stopped_reason, "told": self.told,
                "trained": self.trained, "idle": self.idle, "extra": self._extra_state(),
                "first_modelled": self.first_modelled}

    def load_state_dict(self, state: dict) -> None:
        """Restore `state_dict()`; candidates in flight are asked again."""
        if state["name"] != self.name:
            raise ValueError(f"checkpoint is of strategy {state['name']!r}, not {self.name!r}")
        self.rng.setstate(_tuple_state(state["rng"]))
        self.next_id, self.generation = state["next_id"], state["generation"]
        self.candidates = {c["id"]: Candidate(**c) for c in state["candidates"]}
        self.queue, self.pending = deque(state["queue"]), set()
        self.best_per_generation = list(state["best_per_generation"])
        self.stopped_reason, self.told = state["stopped_reason"], state["told"]
        self.trained, self.idle = state.get("trained", self.told), state.get("idle", 0)
        self.first_modelled = state.get("first_modelled")
        self._load_extra_state(state["extra"])

    def _extra_state(self) -> dict:
        return {}

    def _load_extra_state(self, extra: dict) -> None:
        pass


def _jsonable_state(state):
    version, internal, gauss = state
    return [version, list(internal), gauss]


def _tuple_state(state):
    version, internal, gauss = state
    return (version, tuple(internal), gauss)
