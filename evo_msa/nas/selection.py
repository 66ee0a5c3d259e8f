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

from dataclasses import asdict, dataclass
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


@dataclass
class Trained:
    """Configurations trained at the full budget, in the order of their first training: first
    evaluations, each one's scores (higher is better), snapped genomes."""
    firsts: list[Evaluation]
    scores: list[list[float]]
    G: np.ndarray

    @property
    def means(self) -> np.ndarray:
        """Each configuration's mean score."""
        return np.array([float(np.mean(s)) for s in self.scores])

    @property
    def counts(self) -> np.ndarray:
        """Each configuration's trainings."""
        return np.array([len(s) for s in self.scores])


def best_retrained(estimate: np.ndarray, counts: np.ndarray) -> int:
    """The pick's index: the best estimate among configurations trained more than once (a
    configuration trained once is the luckiest of many draws); before any re-training, of all."""
    if counts.max() > 1:
        estimate = np.where(counts > 1, estimate, -np.inf)
    return int(np.argmax(estimate))


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
        trained = self.trained(evaluations)
        if trained is None:  # nothing trained at the full budget: nothing to re-train
            self.planned = self.trainings
            return
        firsts, counts, estimate = trained.firsts, trained.counts, self.estimates(trained)
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
    def trained(self, evaluations: list[Evaluation]) -> Trained | None:
        """The configurations trained at the full budget (None: none)."""
        acc: dict[Hashable, list] = {}
        for e in sorted(evaluations, key=lambda e: e.id):  # not the order trials ended
            if e.status is Status.OK:
                acc.setdefault(e.key, [e, []])[1].append(self.fitness.scores(e.fitness)[0])
        if not acc:
            return None
        firsts = [first for first, _ in acc.values()]
        G = self.slots.snap(np.array([f.genome for f in firsts], dtype=float)
                            .reshape(len(firsts), self.slots.n))
        return Trained(firsts, [scores for _, scores in acc.values()], G)

    def estimates(self, trained: Trained, leaf: int = PICK_LEAF) -> np.ndarray:
        """Each configuration's robust estimate (`leaf`: the forest's leaves; the engine's 3)."""
        seed = np.random.default_rng([self.seed, len(trained.firsts), 11]).integers(2**31 - 1)
        return smoothed_estimates(self.slots, trained.G, trained.means, trained.counts, seed,
                                  leaf=leaf, trees=TREES, noise=pooled_noise(trained.scores))

    def pick(self, evaluations: list[Evaluation]) -> Evaluation | None:
        """The evaluation of the picked configuration (its first training at the full budget)."""
        trained = None if self.fitness.multi else self.trained(evaluations)
        if trained is None:  # several objectives, or nothing trained at the full budget
            top = ranked(evaluations, self.fitness, 1)
            return top[0] if top else None
        return trained.firsts[best_retrained(self.estimates(trained), trained.counts)]

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
