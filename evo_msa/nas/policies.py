"""Policies between the strategy and the evaluator (NNI-style), so strategies stay pure search:

propose   decode a candidate (the evaluator's describe) into an Evaluation; reject it cheaply
          (it cannot be built, or too many parameters) before any training; reuse the fitness of
          an architecture already trained (status `cached`), unless the strategy asks for a
          fresh training of it (a repeat: the next seeds, the known fitness becomes the mean)
seeds     how many trainings one evaluation gets (fitness.seeds): their mean is the fitness; an
          architecture's seeds start at a place of its own (`seed_start`)
complete  turn the trainings' outcomes into the evaluation's status and fitness; a failure gets
          the penalty fitness and keeps its reason
"""
from __future__ import annotations

import math
import statistics
import zlib

from evo_msa.nas.evaluators.base import Evaluator, Outcome
from evo_msa.nas.strategies import Candidate
from evo_msa.record.evaluation import Evaluation
from evo_msa.space.fitness import MissingMetric
from evo_msa.status import Status


def seed_start(key: str) -> int:
    """Where an architecture's training seeds start (the search's seeds are added to it): a hash
    of its identity. With common seeds every architecture trains with the same initialisations
    and batch orders, so near-twins share one draw of the training noise, the search selects the
    luck of those seeds, the pick's shrinkage (which assumes independent noise) is fooled, and
    the final trainer's seeds 0-4 repeat the search's own trainings. One architecture still
    draws the same seeds wherever it is met (the cache and a resume rely on that)."""
    return zlib.crc32(key.encode())


class EvaluationPolicy:
    """Between a strategy's candidates and the evaluator: see the module docstring. What it
    remembers (known fitness, repeats, the seeds) is its state (`state_dict`)."""

    def __init__(self, evaluator: Evaluator, trial_seed: int = 0):
        self.evaluator, self.space = evaluator, evaluator.space
        self.fitness = self.space.fitness
        self.seeds = [trial_seed + k for k in range(self.fitness.seeds)]
        self.known: dict[str, tuple[tuple[float, ...], int]] = {}  # key -> (fitness, id)
        self.repeats: dict[str, int] = {}  # key -> evaluations of it so far (when > 1)
        # key -> ids of its re-evaluations in the order they were proposed: the k-th trains the
        # k-th next block of seeds, also when several are in flight at once (or asked again
        # after a resume)
        self.reruns: dict[str, list[int]] = {}

    def propose(self, cand: Candidate) -> Evaluation:
        """Decode a candidate into an evaluation: rejected, cached (a known architecture) or pending
        (to train), a repeat with its next seeds."""
        d = self.evaluator.describe(cand.genome)
        ev = Evaluation(id=cand.id, generation=cand.generation, parents=list(cand.parents),
                        genome=list(cand.genome), genes=d.genes, config=d.config, key=d.key,
                        params=d.size, seeds=[seed_start(d.key) + s for s in self.seeds])
        if d.rejected:
            return self._settle(ev, Status.REJECTED, self.fitness.penalty(), d.rejected)
        if d.key in self.known:
            values, cid = self.known[d.key]
            if cand.repeat:  # the next seeds of this architecture
                ids = self.reruns.setdefault(d.key, [])
                if cand.id not in ids:
                    ids.append(cand.id)
                k = ids.index(cand.id) + 1  # 0 is the first evaluation
                ev.seeds = [s + k * len(self.seeds) for s in ev.seeds]
                ev.note = f"re-evaluation {k + 1} of #{cid}"
                ev.repeat = True  # it re-measures the full budget: halving never stops it
                return ev
            return self._settle(ev, Status.CACHED, values, f"same architecture as #{cid}")
        limit = self.space.max_params
        if limit and ev.params > limit:
            return self._settle(ev, Status.REJECTED, self.fitness.penalty(),
                                f"{ev.params} parameters > max_params {limit}")
        return ev

    def complete(self, ev: Evaluation, outcomes: list[Outcome], lost: bool = False) -> Evaluation:
        """Settle an evaluation from its trainings' outcomes (one per seed)."""
        penalty = self.fitness.penalty()
        if lost or len(outcomes) < len(ev.seeds):
            return self._settle(ev, Status.ERROR, penalty,
                                "the trial process or its node was lost (see the Ray trial logs)")
        errors = [o for o in outcomes if o.status is Status.ERROR]
        if errors:
            return self._settle(ev, Status.ERROR, penalty, errors[0].error)
        diverged = [o for o in outcomes if o.status is Status.NAN]
        if diverged:
            return self._settle(ev, Status.NAN, penalty, diverged[0].error or "diverged")
        names = set.intersection(*(set(o.metrics) for o in outcomes))
        ev.metrics = {k: statistics.fmean(o.metrics[k] for o in outcomes) for k in sorted(names)}
        ev.epochs = statistics.fmean(o.epochs for o in outcomes)
        try:
            values = self.fitness.values(ev.metrics, ev.params)
        except MissingMetric as exc:
            return self._settle(ev, Status.ERROR, penalty, str(exc.args[0]))
        if not all(math.isfinite(v) for v in values):
            return self._settle(ev, Status.NAN, penalty, "the fitness is not finite")
        per_seed = [self.fitness.values(o.metrics, ev.params)[0] for o in outcomes]
        if len(per_seed) > 1 and all(math.isfinite(v) for v in per_seed):
            ev.fitness_std = statistics.stdev(per_seed)  # one seed's spread: is a lead real?
        partial = any(o.status is Status.EARLY_STOPPED for o in outcomes)
        ev.rung = max(o.rung for o in outcomes)
        note = ev.note
        if ev.rung:  # the fitness so far, at that rung: never reused nor picked as the best
            where = next((o.stage for o in outcomes if o.stage), "") or \
                f"stopped at rung {ev.rung} (epoch {max(o.epochs for o in outcomes):g})"
            note = "; ".join(filter(None, [note, where]))
        self._settle(ev, Status.EARLY_STOPPED if partial else Status.OK, values, note)
        if ev.status is Status.OK:
            # only real results are reused; a failure may be transient (e.g. out of memory)
            self._remember(ev.key, values, ev.id)
        return ev

    def standing(self, ev: Evaluation) -> tuple[tuple[float, ...], int]:
        """The fitness an evaluation's architecture stands by and how many evaluations of it
        that is (the mean over re-trainings; its own fitness when it was trained once)."""
        values, _ = self.known.get(ev.key, (ev.fitness, ev.id))
        return values, self.repeats.get(ev.key, 1)

    # ---- checkpointing ---------------------------------------------------------------------
    def state_dict(self) -> dict:
        """What the policy remembers, as JSON."""
        return {"known": {k: [list(v), cid] for k, (v, cid) in self.known.items()},
                "seeds": self.seeds, "repeats": self.repeats, "reruns": self.reruns}

    def load_state_dict(self, state: dict, evaluations: list[Evaluation]) -> None:
        """Restore `state_dict()`; a checkpoint from before re-evaluations were listed
        ("reruns") gets them from the finished `evaluations`."""
        self.known = {k: (tuple(v), cid) for k, (v, cid) in state["known"].items()}
        self.seeds = list(state.get("seeds", self.seeds))
        self.repeats = dict(state.get("repeats", {}))
        reruns: dict[str, list[int]] = {}
        for e in sorted((e for e in evaluations if e.repeat), key=lambda e: e.id):
            reruns.setdefault(e.key, []).append(e.id)
        self.reruns = {k: list(v) for k, v in state.get("reruns", reruns).items()}

    def _remember(self, key: str, values: tuple[float, ...], eval_id: int) -> None:
        """The fitness a known architecture answers with: the mean over its evaluations."""
        if key not in self.known:
            self.known[key] = (values, eval_id)
            return
        n = self.repeats.get(key, 1)
        old, first = self.known[key]
        self.known[key] = (tuple((o * n + v) / (n + 1) for o, v in zip(old, values)), first)
        self.repeats[key] = n + 1

    @staticmethod
    def _settle(ev: Evaluation, status: Status, values, note: str) -> Evaluation:
        ev.status, ev.fitness, ev.note = status, tuple(values), note
        return ev
