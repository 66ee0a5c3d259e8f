"""The search's final selection, the same for every strategy: which configuration it hands on
(best_genome.json, the final trainer, a benchmark's regret).

On a small validation split one training is a lottery, and the best single training of a few
hundred is mostly the luckiest one. So the engine keeps the last `share` of the budget for
re-training, with fresh seeds, the `finalists` best distinct configurations, and picks on a
robust estimate:

  robust estimate   a configuration's mean over its trainings at the full budget, shrunk
                    towards what a smooth forest predicts from its neighbours
                    (predictor.smoothed_estimates: an empirical-Bayes weight, the less the
                    more trainings it has and the less noisy one training is)
  rounds            re-trainings go in rounds, each planned once everything before it has
                    reported: a round re-trains once each the `finalists` best configurations
                    by the estimate then (the least trained first when fewer trainings are
                    left), so a finalist whose re-training disappoints gives its place. What a
                    round re-trains depends on the results, never on which trial ended first.
  the pick          the re-trained configuration with the best robust estimate (a
                    configuration trained once is the luckiest of many draws); before any
                    re-training, the best estimate of all

The strategy spends the rest of the budget and is not told of the re-trainings: what it adds to
the pick is its history, nothing else. With several objectives nothing is re-trained and the
pick is the best on the first objective (the final trainer retrains the Pareto front).
"""
from __future__ import annotations

from dataclasses import asdict
from typing import Hashable

import numpy as np

from evo_msa.nas.strategies import Candidate
from evo_msa.nas.strategies.predictor import Slots, pooled_noise, smoothed_estimates
from evo_msa.record.evaluation import Evaluation
from evo_msa.record.ranking import ranked
from evo_msa.space import SearchSpace
from evo_msa.status import Status

SHARE, FINALISTS = 0.1, 5  # the defaults (--finalist-share, --finalists), measured on the tables
PICK_LEAF = 3  # leaves of the smoothing forest (configurations per leaf)
TREES = 32


class FinalSelection:
    """The engine's last stage and its pick. `trainings`: re-trainings it spends."""

    def __init__(self, space: SearchSpace, trainings: int = 0, finalists: int = FINALISTS,
                 seed: int = 0):
        self.space, self.fitness = space, space.fitness
        self.trainings = 0 if self.fitness.multi else int(trainings)
        self.finalists, self.seed = int(finalists), int(seed)
        self.slots = Slots(space)
        self.planned = 0  # re-trainings planned so far (all rounds)
        self.rounds = 0
        self.round: list[Candidate] = []  # the current round
        self.queue: list[Candidate] = []  # of the current round, not handed out yet
        self.ids: set[int] = set()  # every re-training's candidate id

    @classmethod
    def for_budget(cls, space: SearchSpace, budget: int, share: float = SHARE,
                   finalists: int = FINALISTS, seed: int = 0) -> "FinalSelection":
        """The stage taking `share` of a budget of trainings (the search keeps at least one)."""
        return cls(space, min(int(round(share * budget)), budget - 1), finalists, seed)

    @property
    def finished(self) -> bool:
        """Every re-training planned and handed out (the engine waits for their results)."""
        return self.planned >= self.trainings and not self.queue

    def ask(self, evaluations: list[Evaluation], n: int, next_id: int,
            quiet: bool) -> list[Candidate]:
        """Up to n re-trainings to run now; a new round only when `quiet` (nothing in flight,
        every result in). Candidate ids start at next_id."""
        if not self.queue and quiet and self.planned < self.trainings:
            self._plan_round(evaluations, next_id)
        out, self.queue = self.queue[:n], self.queue[n:]
        return out

    def _plan_round(self, evaluations: list[Evaluation], next_id: int) -> None:
        table = self._table(evaluations)
        if table is None:  # nothing trained at the full budget: nothing to re-train
            self.planned = self.trainings
            return
        keys, firsts, _, counts, estimate = table
        top = list(np.argsort(-estimate, kind="stable")[:self.finalists])
        top.sort(key=lambda j: counts[j])  # stable: the least trained first, then the best
        top = top[:self.trainings - self.planned]
        generation = max(e.generation for e in evaluations) + (self.rounds == 0)
        self.round = [Candidate(next_id + i, list(firsts[j].genome), generation,
                                [firsts[j].id], repeat=True) for i, j in enumerate(top)]
        self.queue = list(self.round)
        self.ids |= {c.id for c in self.round}
        self.planned += len(self.round)
        self.rounds += 1

    # ---- the estimate and the pick -----------------------------------------------------------
    def _table(self, evaluations: list[Evaluation]):
        """Configurations trained at the full budget, in the order of their first training:
        keys, first evaluations, mean scores, trainings, robust estimates (None: none)."""
        acc: dict[Hashable, list] = {}
        for e in sorted(evaluations, key=lambda e: e.id):  # not the order trials ended
            if e.status is Status.OK:
                acc.setdefault(e.key, [e, []])[1].append(self.fitness.scores(e.fitness)[0])
        if not acc:
            return None
        keys = list(acc)
        firsts = [acc[k][0] for k in keys]
        scores = [acc[k][1] for k in keys]
        means = np.array([float(np.mean(s)) for s in scores])
        counts = np.array([len(s) for s in scores])
        G = self.slots.snap(np.array([f.genome for f in firsts], dtype=float)
                            .reshape(len(keys), self.slots.n))
        seed = np.random.default_rng([self.seed, len(means), 11]).integers(2**31 - 1)
        estimate = smoothed_estimates(self.slots, G, means, counts, seed, leaf=PICK_LEAF,
                                      trees=TREES, noise=pooled_noise(scores))
        return keys, firsts, means, counts, estimate

    def pick(self, evaluations: list[Evaluation]) -> Evaluation | None:
        """The evaluation of the picked configuration (its first training at the full budget)."""
        table = None if self.fitness.multi else self._table(evaluations)
        if table is None:  # several objectives, or nothing trained at the full budget
            top = ranked(evaluations, self.fitness, 1)
            return top[0] if top else None
        _, firsts, _, counts, estimate = table
        if counts.max() > 1:
            estimate = np.where(counts > 1, estimate, -np.inf)
        return firsts[int(np.argmax(estimate))]

    # ---- checkpoint --------------------------------------------------------------------------
    def state_dict(self) -> dict:
        """The finalists and their re-trainings so far, as JSON."""
        return {"seed": self.seed, "planned": self.planned, "rounds": self.rounds,
                "ids": sorted(self.ids),
                "round": [asdict(c) for c in self.round]}

    def load_state_dict(self, state: dict, settled: set[int]) -> None:
        """Resume: the current round's re-trainings without a result are asked again."""
        self.seed, self.planned, self.rounds = state["seed"], state["planned"], state["rounds"]
        self.ids = set(state["ids"])
        self.round = [Candidate(**c) for c in state["round"]]
        self.queue = [c for c in self.round if c.id not in settled]
