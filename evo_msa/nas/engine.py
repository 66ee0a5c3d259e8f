"""The search loop without Ray: strategy (which genomes) -> policy (decode through the evaluator,
dedup, constraints, penalty) -> batches of evaluations for the trials -> outcomes back to the
strategy.

ask(n)          up to n evaluations to train now ([] while a generation is in flight)
complete(...)   a trial's typed outcomes settle its evaluations; the strategy is told
finished        the strategy is done (its budget is spent or it converged)
state_dict()    everything a resume needs, as JSON (the run's state.json)

Evaluations answered without training (cached, rejected) are settled inside `ask`.
"""
from __future__ import annotations

import math
import statistics
import time
from typing import Callable

from evo_msa.nas.evaluation import Evaluation
from evo_msa.nas.evaluators.base import Outcome
from evo_msa.nas.policies import EvaluationPolicy
from evo_msa.nas.strategies import Strategy
from evo_msa.status import Status


class SearchEngine:
    """The search loop: a strategy proposes, the policy decodes and filters through the
    evaluator, trials (any execution) train, outcomes come back through `complete`. Knows
    nothing of Ray: Tune drives it through execution.tune.EngineSearcher, lookups through
    execution.inline."""

    def __init__(self, strategy: Strategy, policy: EvaluationPolicy,
                 log: Callable[[str], None] = print):
        self.strategy, self.policy, self.fitness = strategy, policy, policy.fitness
        self.log = log
        self.evaluations: list[Evaluation] = []  # settled, in the order they settled
        self.pending: dict[int, Evaluation] = {}  # handed to trials
        self.started = time.time()
        self.elapsed_before = 0.0  # seconds spent before a resume
        self.reported_generations = 0
        self.changed = False  # something to checkpoint
        # sha256 of the space, data and options (provenance.fingerprint) the evaluations settled
        # under; its first 8 characters stamp each evaluation (a forced resume shows in them)
        self.fingerprint: dict[str, str] = {}

    @property
    def finished(self) -> bool:
        return self.strategy.done

    def ask(self, max_size: int = 1) -> list[Evaluation]:
        batch: list[Evaluation] = []
        while len(batch) < max_size and not self.strategy.done:
            cand = self.strategy.ask()
            if cand is None:
                break  # the generation is in flight
            ev = self.policy.propose(cand)
            if ev.status is Status.PENDING:
                self.pending[ev.id] = ev
                batch.append(ev)
            else:  # answered without training: a known architecture or a rejected one
                self._settled(ev)
        return batch

    def complete(self, eval_id: int, outcomes: list[Outcome], *, lost: bool = False,
                 **where) -> Evaluation | None:
        """Settle a pending evaluation; `where` = trial, node, device, seconds, population."""
        ev = self.pending.pop(eval_id, None)
        if ev is None:
            return None  # a late report for something already settled (e.g. after a resume)
        for key, value in where.items():
            setattr(ev, key, value)
        self.policy.complete(ev, outcomes, lost=lost)
        self._settled(ev)
        return ev

    def _settled(self, ev: Evaluation) -> None:
        if self.fingerprint:
            ev.fingerprint = short_fingerprint(self.fingerprint)
        self.evaluations.append(ev)
        self.strategy.tell(ev.id, self.fitness.scores(ev.fitness), trained=ev.status.trained,
                           partial=ev.status is Status.EARLY_STOPPED)
        self.changed = True
        self._report_progress()

    # ---- progress --------------------------------------------------------------------------
    def elapsed(self) -> float:
        return self.elapsed_before + time.time() - self.started

    def _report_progress(self) -> None:
        """One compact line per finished generation (instead of Ray's per-trial tables)."""
        history = self.strategy.best_per_generation
        while self.reported_generations < len(history):
            g = self.reported_generations
            fits = [e.fitness[0] for e in self.evaluations
                    if e.generation == g and e.status.usable]
            stopped = sum(e.generation == g and e.status is Status.EARLY_STOPPED
                          for e in self.evaluations)
            failed = sum(e.generation == g and e.status.failed for e in self.evaluations)
            best = -history[g] * self.fitness.primary.sign  # the score back as a value
            med = statistics.median(fits) if fits else math.nan
            done = len(history)
            total = max(self.strategy.planned_generations, done)
            elapsed = self.elapsed()
            eta = elapsed / done * (total - done) if done < total else 0.0
            halved = f" +{stopped} stopped at a rung" if stopped else ""
            self.log(f"gen {g + 1:>2}/{total}  evaluated {len(fits):>3}{halved}"
                     f" (+{failed} failed/rejected)  best {best:.4f}  median {med:.4f}"
                     f"  elapsed {_clock(elapsed)}  eta {_clock(eta)}")
            self.reported_generations += 1

    # ---- checkpointing ---------------------------------------------------------------------
    def state_dict(self) -> dict:
        return {"strategy": self.strategy.state_dict(),
                "evaluations": [e.to_dict() for e in self.evaluations],
                "known": {k: [list(v), cid] for k, (v, cid) in self.policy.known.items()},
                "seeds": self.policy.seeds, "repeats": self.policy.repeats,
                "reruns": self.policy.reruns,
                "elapsed": self.elapsed(), "reported_generations": self.reported_generations,
                "fingerprint": self.fingerprint}

    def load_state_dict(self, state: dict) -> None:
        """Resume: evaluations that were in flight are asked again (the strategy re-queues
        them), so nothing finished is evaluated twice and nothing is lost."""
        self.strategy.load_state_dict(state["strategy"])
        self.evaluations = [Evaluation.from_dict(e) for e in state["evaluations"]]
        self.policy.known = {k: (tuple(v), cid) for k, (v, cid) in state["known"].items()}
        self.policy.seeds = list(state.get("seeds", self.policy.seeds))
        self.policy.repeats = dict(state.get("repeats", {}))
        reruns: dict[str, list[int]] = {}  # a checkpoint from before "reruns": the finished ones
        for e in sorted((e for e in self.evaluations if e.repeat), key=lambda e: e.id):
            reruns.setdefault(e.key, []).append(e.id)
        self.policy.reruns = {k: list(v) for k, v in state.get("reruns", reruns).items()}
        self.elapsed_before, self.started = state["elapsed"], time.time()
        self.reported_generations = state["reported_generations"]
        self.fingerprint = dict(state.get("fingerprint") or {})
        self.pending = {}


def short_fingerprint(fp: dict[str, str]) -> str:
    import hashlib

    return hashlib.sha256("".join(fp[k] for k in sorted(fp)).encode()).hexdigest()[:8]


def _clock(seconds: float) -> str:
    m, s = divmod(int(seconds), 60)
    return f"{m}m{s:02d}s"
