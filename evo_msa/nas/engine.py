"""The search loop without Ray: strategy (which genomes) -> policy (decode through the evaluator,
dedup, constraints, penalty) -> batches of evaluations for the trials -> outcomes back to the
strategy.

ask(n)          up to n evaluations to train now ([] while a generation is in flight)
complete(...)   a trial's typed outcomes settle its evaluations; the strategy is told
finished        the strategy is done (its budget is spent or it converged) and the final
                selection has re-trained its finalists
pick()          the configuration the search hands on (selection.py: the same stage and rule
                for every strategy)
state_dict()    everything a resume needs, as JSON (the run's state.json)

Evaluations answered without training (cached, rejected) are settled inside `ask`. Once the
strategy is done and every result is in, the final selection (selection.FinalSelection) asks
for its re-trainings through the same policy; the strategy is not told of them.

Parallel trials end in an order set by timing. For a strategy that learns from results as they
come (the surrogate, TPE, steady-state evolution), the engine therefore tells results in
candidate id order through a window (`set_window`): proposal k is made when every candidate
older than k - window has settled, and the strategy then knows exactly those. What it proposes
depends on the seed alone, so a resumed search repeats the uninterrupted one; a window of about
twice the evaluations in flight keeps every slot busy unless one trial outlasts several others.
"""
from __future__ import annotations

import math
import statistics
import time
from typing import Callable

from evo_msa.nas.callbacks import Callbacks
from evo_msa.nas.evaluators.base import Outcome
from evo_msa.nas.policies import EvaluationPolicy
from evo_msa.nas.selection import FinalSelection
from evo_msa.nas.strategies import Strategy
from evo_msa.progress import clock
from evo_msa.record.evaluation import Evaluation
from evo_msa.record.ranking import ranked
from evo_msa.status import Status


class SearchEngine:
    """The search loop: a strategy proposes, the policy decodes and filters through the
    evaluator, trials (any execution) train, outcomes come back through `complete`. Knows
    nothing of Ray: Tune drives it through execution.tune.EngineSearcher, lookups through
    execution.inline."""

    def __init__(self, strategy: Strategy, policy: EvaluationPolicy,
                 log: Callable[[str], None] = print, selection: FinalSelection | None = None):
        self.strategy, self.policy, self.fitness = strategy, policy, policy.fitness
        # without one: nothing re-trained, the pick by the same robust estimate
        self.selection = selection or FinalSelection(policy.space)
        strategy.set_identity(policy.evaluator.identity)  # what the policy's cache counts as one
        self.log = log
        self.callbacks = Callbacks()  # the API caller's hooks (on_evaluation, on_generation)
        self.evaluations: list[Evaluation] = []  # settled, in the order they settled
        self.pending: dict[int, Evaluation] = {}  # handed to trials
        # pending evaluations whose trial has reported an epoch (they run; the rest wait for a
        # slot): the heartbeat shows how far they are, where one training takes minutes
        self.at_epoch: dict[int, int] = {}
        self.window: int | None = None  # None: each result is told as it settles
        self.held: dict[int, Evaluation] = {}  # settled, not yet told to the strategy
        self.started = time.time()
        self.elapsed_before = 0.0  # seconds spent before a resume
        self.reported_generations = 0
        self.changed = False  # something to checkpoint
        self.trainings_done = 0  # settled evaluations that spent a training (the budget's unit)
        self.phase = strategy.phase  # what the strategy does now (kept here for progress lines)
        # sha256 of the space, data and options (provenance.fingerprint) the evaluations settled
        # under; its first 8 characters stamp each evaluation (a forced resume shows in them)
        self.fingerprint: dict[str, str] = {}

    @property
    def finished(self) -> bool:
        """The strategy is done, the final selection has re-trained its finalists, nothing is in
        flight."""
        return self.strategy.done and self.selection.finished and not self.pending

    @property
    def budget(self) -> int:
        """Trainings in all: the strategy's and the final selection's."""
        return self.strategy.budget + self.selection.trainings

    def pick(self) -> Evaluation | None:
        """The evaluation of the configuration the search hands on (see selection.py)."""
        return self.selection.pick(self.evaluations)

    def standing(self, ev: Evaluation) -> tuple[tuple[float, ...], int]:
        """The fitness `ev`'s architecture stands by and over how many evaluations (a genome
        trained several times, a re-trained finalist, stands by its mean)."""
        return self.policy.standing(ev)

    def set_window(self, window: int) -> None:
        """Tell results in id order, `window` proposals behind (see the module's docstring);
        a resumed search keeps the window it started with."""
        if self.window is None:
            self.window = max(0, int(window))

    @property
    def _in_order(self) -> bool:
        return self.window is not None and self.strategy.learns_as_results_come

    def ask(self, max_size: int = 1) -> list[Evaluation]:
        """Up to `max_size` evaluations to train now: the strategy's, then the final selection's re-
        trainings ([] while results the next proposal needs are in flight)."""
        batch = self._ask_search(max_size)
        self.phase = self.strategy.phase
        if self.strategy.done and len(batch) < max_size:
            quiet = not self.pending and not self.held
            next_id = max([self.strategy.next_id, *(e.id + 1 for e in self.evaluations)])
            for cand in self.selection.ask(self.evaluations, max_size - len(batch), next_id,
                                           quiet):
                ev = self.policy.propose(cand)  # a repeat of a trained configuration: trains
                self.pending[ev.id] = ev
                batch.append(ev)
        return batch

    def _ask_search(self, max_size: int) -> list[Evaluation]:
        batch: list[Evaluation] = []
        while len(batch) < max_size and not self.strategy.done:
            if not self.strategy.queue and not self._release():
                break  # a result the next proposal must know is still in flight
            if self.strategy.done:
                break
            cand = self.strategy.ask()
            if cand is None:
                if self.held and not self.pending:  # nothing in flight: all results count
                    self._tell(sorted(self.held))
                    continue
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
        self.at_epoch.pop(eval_id, None)
        if ev is None:
            return None  # a late report for something already settled (e.g. after a resume)
        for key, value in where.items():
            setattr(ev, key, value)
        self.policy.complete(ev, outcomes, lost=lost)
        self._settled(ev)
        return ev

    def trained_epoch(self, eval_ids: list[int], epoch: int) -> None:
        """A trial's per-epoch report: its pending evaluations have trained `epoch` epochs."""
        for i in eval_ids:
            if i in self.pending:
                self.at_epoch[i] = int(epoch)

    def _settled(self, ev: Evaluation) -> None:
        if self.fingerprint:
            ev.fingerprint = short_fingerprint(self.fingerprint)
        self.evaluations.append(ev)
        self.trainings_done += ev.status.trained
        self.callbacks.evaluation(ev)
        if ev.id in self.selection.ids:  # a finalist's re-training: not the strategy's
            self.changed = True
            return
        self.held[ev.id] = ev
        if not self._in_order:
            self._tell([ev.id])
        elif self.strategy.done:  # nothing more will be proposed: the pick sees everything
            self._tell(sorted(self.held))
        self.changed = True
        self._report_progress()

    def _release(self) -> bool:
        """Tell, in id order, the held results the next proposal sees (ids below
        next_id - window); False while one of those is still in flight."""
        if not self._in_order:
            return True
        limit = self.strategy.next_id - self.window
        first_open = min([*self.pending, *self.strategy.queue], default=limit)
        self._tell(sorted(i for i in self.held if i < min(limit, first_open)))
        return first_open >= limit

    def _tell(self, ids: list[int]) -> None:
        for i in ids:
            ev = self.held.pop(i)
            self.strategy.tell(ev.id, self.fitness.scores(ev.fitness), trained=ev.status.trained,
                               partial=ev.status is Status.EARLY_STOPPED)
        self.phase = self.strategy.phase
        if ids:  # the strategy may have moved on (or finished): a generation's line is due
            self._report_progress()

    # ---- progress --------------------------------------------------------------------------
    def elapsed(self) -> float:
        """Seconds of search so far, those before a resume included."""
        return self.elapsed_before + time.time() - self.started

    def progress_line(self) -> str:
        """Where the search stands inside a generation (the console's heartbeat): trainings
        done of the budget, running, elapsed, ETA. Reads plain counters only (another thread
        calls it)."""
        done, budget, running = self.trainings_done, self.budget, len(self.pending)
        elapsed = self.elapsed()
        eta = clock(elapsed / done * max(0, budget - done)) if done else "?"
        epochs = list(self.at_epoch.values())  # (a copy: the other thread may add to it)
        if epochs:
            low, high = min(epochs), max(epochs)
            span = f"epoch {low}" if low == high else f"epochs {low}-{high}"
            running = f"{running} running or queued ({len(epochs)} past {span})"
        else:
            running = f"{running} running or queued"
        return (f"       trainings {done}/{budget} done, {running}  elapsed "
                f"{clock(elapsed)}  eta {eta}{self._phase_note()}")

    def _phase_note(self) -> str:
        finalists = self.strategy.done and self.selection.trainings
        return _note("re-training the finalists" if finalists else self.phase)

    def _report_progress(self) -> None:
        """One compact line per finished generation (instead of Ray's per-trial tables): once
        the strategy has moved past it and none of its evaluations is in flight."""
        while True:
            g = self.reported_generations
            moved_on = self.strategy.generation > g or self.strategy.done
            if not moved_on or any(e.generation <= g for e in self.pending.values()):
                return
            mine = [e for e in self.evaluations
                    if e.generation == g and e.id not in self.selection.ids]
            if not mine or (self.strategy.done and g >= self.strategy.planned_generations):
                return  # (past the plan: known architectures proposed as the budget ran out)
            fits = [e.fitness[0] for e in mine if e.status.usable]
            stopped = sum(e.status is Status.EARLY_STOPPED for e in mine)
            failed = sum(e.status.failed for e in mine)
            top = ranked(self.evaluations, self.fitness, 1)  # the best settled so far
            best = top[0].fitness[0] if top else math.nan
            med = statistics.median(fits) if fits else math.nan
            done = g + 1
            total = max(self.strategy.planned_generations, done)
            elapsed = self.elapsed()
            eta = elapsed / done * (total - done) if done < total else 0.0
            halved = f" +{stopped} stopped early (a rung or a screen)" if stopped else ""
            phase = self.strategy.phase_of([e.id for e in mine])
            self.log(f"gen {done:>2}/{total}  evaluated {len(fits):>3}{halved}"
                     f" (+{failed} failed/rejected)  best {best:.4f}  median {med:.4f}"
                     f"  elapsed {clock(elapsed)}  eta {clock(eta)}{_note(phase)}")
            self.reported_generations += 1
            self.callbacks.generation({
                "generation": done, "generations": total, "evaluated": len(fits),
                "stopped": stopped, "failed": failed, "best": best, "median": med,
                "elapsed_s": round(elapsed, 3), "eta_s": round(eta, 3), "phase": phase})

    # ---- checkpointing ---------------------------------------------------------------------
    def state_dict(self) -> dict:
        """Everything a resume needs, as JSON: the strategy's, the policy's and the final
        selection's state beside the engine's own (the evaluations, what is held, the clock)."""
        return {"strategy": self.strategy.state_dict(),
                "selection": self.selection.state_dict(),
                "evaluations": [e.to_dict() for e in self.evaluations],
                **self.policy.state_dict(), "window": self.window, "held": sorted(self.held),
                "elapsed": self.elapsed(), "reported_generations": self.reported_generations,
                "fingerprint": self.fingerprint}

    def load_state_dict(self, state: dict) -> None:
        """Resume: evaluations that were in flight are asked again (the strategy re-queues
        them), so nothing finished is evaluated twice and nothing is lost."""
        self.strategy.load_state_dict(state["strategy"])
        self.evaluations = [Evaluation.from_dict(e) for e in state["evaluations"]]
        self.policy.load_state_dict(state, self.evaluations)
        self.trainings_done = sum(e.status.trained for e in self.evaluations)
        self.phase = self.strategy.phase
        self.elapsed_before, self.started = state["elapsed"], time.time()
        self.reported_generations = state["reported_generations"]
        self.fingerprint = dict(state.get("fingerprint") or {})
        self.pending = {}
        # results settled but not yet told: the strategy has them in flight, not lost
        self.window = state.get("window")
        held = set(state.get("held", []))
        self.held = {e.id: e for e in self.evaluations if e.id in held}
        self.strategy.hold(sorted(held))
        if "selection" in state:
            self.selection.load_state_dict(state["selection"],
                                           {e.id for e in self.evaluations})


def _note(phase: str) -> str:
    return f"  [{phase}]" if phase else ""


def short_fingerprint(fp: dict[str, str]) -> str:
    """The 8 characters of a fingerprint that stamp each evaluation (a forced resume shows in them)."""
    import hashlib

    return hashlib.sha256("".join(fp[k] for k in sorted(fp)).encode()).hexdigest()[:8]


