"""Surrogate-assisted evolution, the default strategy: evolution proposes, a predictor picks.

As in BANANAS and NPENAS (mutation plus a predictor), and measured against random search and
Optuna's TPE on lookup tables (experiments/strategy_bench.py, RESULTS.md):

  1. a random design of new configurations: round(RANDOM_SHARE x budget), clipped to 10..20;
  2. then, per proposal, CANDIDATES children made with the DEAP toolbox of the space
     (operators.py: blend + Gaussian on ordered genes, uniform + resampling on unordered ones;
     each gene mutates with probability 1 / genes, at least one per child): 60% mutants and 30%
     crossover children (then mutated) of parents drawn from the PARENTS best configurations,
     10% uniform samples; architectures trained, refused or in flight already (by the
     evaluator's identity: a change to a gene the architecture does not use makes a twin) are
     dropped;
  3. a forest of extremely randomized trees (predictor.py), fitted on every trained
     configuration's mean score (as Gaussian ranks), scores them by UCB = mean + KAPPA x spread
     over the trees; the best is proposed (the next best for the next worker in parallel).

The finalists' re-trainings and the pick are not this strategy's: the engine's final selection
(nas/selection.py) does them for every strategy, on the budget it leaves the strategy.

The model in use depends on the history only (the trainings told so far, refitted at fixed
numbers of trainings with a seed derived from the search seed), and every other draw comes from
the strategy's own checkpointed generator. The engine tells results in candidate id order
through a window (engine.py), so the history at each proposal does not depend on which parallel
trial ended first: a resumed search proposes exactly what the uninterrupted one would.
"""
from __future__ import annotations

import dataclasses
import random
from collections import Counter
from typing import Hashable

import numpy as np

from evo_msa.errors import UserError
from evo_msa.nas.strategies.base import Candidate, Strategy
from evo_msa.nas.strategies.operators import variation_toolbox
from evo_msa.nas.strategies.predictor import Forest, Slots, gaussian_ranks

RANDOM_SHARE, RANDOM_MIN, RANDOM_MAX = 0.1, 10, 20  # the random design
CANDIDATES = 1000  # children scored by the predictor per proposal
MUTANTS, CROSSED = 0.6, 0.3  # of the candidates; the rest are uniform samples
PARENTS = 10  # candidates descend from the best this many configurations
TREES = 32
KAPPA = 0.5  # UCB: larger explores more (1 and 2 lost to TPE on NAS-Bench-201, 0.25 = 0.5)
REFITS = 25  # the predictor is refitted after every training up to this many, then every n // 25


class SurrogateEvolution(Strategy):
    """Evolution with a predictor (the default with one objective): a random design first, then
    children of the best, scored by a forest, the most promising trained."""

    name = "surrogate"

    def __init__(self, space, settings, seed=0, objectives=1):
        if objectives > 1:
            raise UserError("surrogate-assisted evolution optimises one objective; with several, "
                            "use --mode generational (NSGA-II)")
        super().__init__(space, settings, seed, objectives)
        self.seed = seed
        self.slots = Slots(space)
        per_gene = 1.0 / max(1, len(space.genes))
        self.toolbox = variation_toolbox(space, dataclasses.replace(settings, mut_indpb=per_gene))
        self.told_order: list[int] = []  # candidate ids in the order they were told
        self.trained_ids: set[int] = set()  # told ones that spent a training
        self._model = None  # (trainings it was fitted on, forest)
        self._key_of: dict[int, Hashable] = {}  # candidate id -> its identity (a cache)

    # ---- the phases ------------------------------------------------------------------------
    @property
    def random_design(self) -> int:
        """Trainings of the random design that comes before the predictor."""
        return int(min(RANDOM_MAX, max(RANDOM_MIN, round(RANDOM_SHARE * self.budget))))

    def describe(self) -> str:
        """What the strategy does, for the search's first lines."""
        return (f"surrogate: a random design of {self.random_design} configurations, then the "
                f"picks of a model fitted on every training")

    design, model = "random design", "surrogate model"

    @property
    def design_size(self) -> int:
        """The random design's size."""
        return self.random_design

    def _refill(self):
        if self.done or self.room <= 0:
            return
        self.generation = self.next_id // self.s.pop_size
        keys, G, means = self._configurations()
        if len(keys) < self.random_design:
            self._new_random(set(keys))
        else:
            self._new_predicted(keys, G, means)

    def _new_random(self, known: set) -> None:
        known |= self._busy()
        for _ in range(1000):
            genome = self.slots.snap(np.array([self.space.sample(self.rng)]))
            if self._identify(genome[0]) not in known:
                break
        self._new(list(genome[0]))

    def _new_predicted(self, keys, G, means) -> None:
        if self.first_modelled is None:
            self.first_modelled = self.next_id
        forest = self._forest()
        candidates = self.slots.snap(self._children(G, means))
        first: dict[bytes, int] = {}  # one child per configuration, in the order drawn
        for i, key in enumerate(self.slots.keys(candidates)):
            first.setdefault(key, i)
        candidates = candidates[list(first.values())]
        mu, spread = forest.predict(self.slots.features(candidates))
        # the best by UCB that is neither trained nor in flight, as the evaluator counts
        # architectures: a child differing from its parent only in a gene its architecture does
        # not use (a dormant level's width) would only be answered from the cache, or train twice
        blocked = set(keys) | self._busy()
        for i in np.argsort(-(mu + KAPPA * spread), kind="stable"):
            if self._identify(candidates[i]) not in blocked:
                return self._new(list(candidates[i]))
        self._new_random(set(keys))  # every child is known: a uniform sample instead

    # ---- candidates ------------------------------------------------------------------------
    def _children(self, G: np.ndarray, means: np.ndarray) -> np.ndarray:
        parents = G[np.argsort(-means, kind="stable")[:PARENTS]]
        n_mut, n_cx = int(CANDIDATES * MUTANTS), int(CANDIDATES * CROSSED)
        out = []
        with self._deap_random():
            for i in range(n_mut + n_cx):
                a = self._child(list(parents[random.randrange(len(parents))]))
                if i >= n_mut:
                    b = self._child(list(parents[random.randrange(len(parents))]))
                    self.toolbox.mate(a, b)
                before = list(a)
                for _ in range(10):  # at least one gene changes
                    self.toolbox.mutate(a)
                    if a != before:
                        break
                out.append(a)
            for _ in range(CANDIDATES - n_mut - n_cx):
                out.append([random.random() for _ in range(self.slots.n)])
        # a Gaussian step past a bound comes back in (reflected), instead of piling up on it
        out = np.abs(np.array(out, dtype=float))
        return np.clip(np.where(out > 1.0, 2.0 - out, out), 0.0, 1.0)

    # ---- the predictor ---------------------------------------------------------------------
    def _fit_point(self) -> int:
        """The predictor in use after n trainings was fitted on the first fit_point of them:
        after every training up to REFITS, then every n // REFITS (a function of n only)."""
        n = len(self.trained_ids)
        step = max(1, n // REFITS)
        return n - n % step

    def _forest(self) -> Forest:
        at = self._fit_point()
        if self._model is None or self._model[0] != at:
            keys, G, means = self._configurations(limit=at)
            seed = np.random.default_rng([self.seed, at, 7]).integers(2**31 - 1)
            forest = Forest(TREES, 1, seed).fit(self.slots.features(G), gaussian_ranks(means))
            self._model = (at, forest)
        return self._model[1]

    # ---- the history -----------------------------------------------------------------------
    def _configurations(self, limit: int | None = None):
        """Trained configurations (of the first `limit` trainings): keys, canonical genomes and
        mean scores."""
        acc: dict[Hashable, list] = {}
        seen = 0
        for cid in sorted(self.told_order):  # id order, not the order trials happened to end
            if cid not in self.trained_ids:
                continue
            if limit is not None and seen >= limit:
                break
            seen += 1
            key = self._key(cid)
            acc.setdefault(key, [cid, []])[1].append(self.candidates[cid].score[0])
        keys = list(acc)
        G = self.slots.snap(np.array([self.candidates[acc[k][0]].genome for k in keys])
                            .reshape(len(keys), self.slots.n))
        scores = [acc[k][1] for k in keys]
        means = np.array([sum(s) / len(s) for s in scores])
        return keys, G, means

    def _in_flight(self) -> Counter:
        """Trainings proposed and not told yet, per configuration."""
        return Counter(self._key(i) for i in (*self.pending, *self.queue))

    def _busy(self) -> set:
        """Configurations in flight, and those told without a training (known to the policy,
        or refused): proposing them again spends nothing."""
        told_untrained = (c for c in self.told_order if c not in self.trained_ids)
        return set(self._in_flight()) | {self._key(i) for i in told_untrained}

    def _key(self, cid: int) -> Hashable:
        if cid not in self._key_of:
            self._key_of[cid] = self._identify(self.slots.snap(
                np.array([self.candidates[cid].genome]))[0])
        return self._key_of[cid]

    def _identify(self, snapped: np.ndarray) -> Hashable:
        """A configuration's identity: the evaluator's (`identity`, set by the engine), else
        its grid cells."""
        if self.identity is None:
            return self.slots.keys(snapped[None])[0]
        return self.identity(self.space.clip(list(snapped)))

    def _on_tell(self, cand: Candidate, trained: bool) -> None:
        self.told_order.append(cand.id)
        if trained:
            self.trained_ids.add(cand.id)
        self._count_budget()

    # ---- checkpoint --------------------------------------------------------------------------
    def _extra_state(self):
        return {"seed": self.seed, "told_order": self.told_order,
                "trained_ids": sorted(self.trained_ids)}

    def _load_extra_state(self, extra):
        self.seed = extra["seed"]
        self.told_order = list(extra["told_order"])
        self.trained_ids = set(extra["trained_ids"])
        self._model = None
