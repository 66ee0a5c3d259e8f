"""Evaluations as Ray Tune trials: a trial evaluates a batch of members (genomes x seeds) with
the search's evaluator, on a laptop or anywhere on a cluster. The DEAP population stays in the
driver; a trial receives plain dicts.

    EngineSearcher   a Tune `Searcher` driving the engine: a thin ask/tell adapter (as Ray's own
                     Optuna and Nevergrad searchers are); settles each evaluation as soon as
                     its trainings have ended, checkpoints after every change
    trial            the function trainable: evaluate the batch, report per epoch (ASHA, and
                     the trainings that ended) and at the end (one outcome per member)
    run_on_tune      the Tuner: trials, resources, ASHA, TensorBoard tracking
"""
from __future__ import annotations

import contextlib
import errno
import json
import logging
import math
import os
import socket
import time
from typing import Callable

from ray.tune.search import Searcher

from evo_msa.io import StorageError
from evo_msa.metrics import Objective
from evo_msa.nas.engine import SearchEngine
from evo_msa.nas.evaluators.base import Evaluator, Member, Outcome, members
from evo_msa.space.fitness import NETWORK_OBJECTIVES
from evo_msa.status import Status


class EngineSearcher(Searcher):
    """suggest(trial_id): engine.ask(batch) -> one trial's members, or wait / FINISHED;
    on_trial_result: the evaluations whose every training has ended -> engine.complete (a
    batch's early-stopped genomes settle at their rung, not when its last genome is done);
    on_trial_complete: the rest; a checkpoint after each."""

    def __init__(self, engine: SearchEngine, *, batch_size: int, slots: int = 1,
                 on_change: Callable[[], None] = lambda: None, track: bool = False):
        super().__init__(metric="fitness", mode=engine.fitness.direction)
        self.engine, self.batch_size = engine, batch_size
        self.slots = max(1, slots)  # trials that run at once
        self.on_change = on_change
        self.track = track  # trials report per-epoch metrics of every member
        self.trials: dict[str, list[int]] = {}  # trial id -> evaluation ids not yet settled
        self.trainings: dict[int, int] = {}  # evaluation id -> its trainings (seeds)
        self.ready: list[list] = []  # batches made, not yet handed out
        self.failure: StorageError | None = None  # a checkpoint that could not be written

    def suggest(self, trial_id: str):
        """Tune asks for a trial: the next batch's members, None (wait) or FINISHED."""
        if self.failure is not None:
            return Searcher.FINISHED  # stop the search: the runner raises the failure
        if not self.ready:
            self.ready = balanced_batches(self.engine.ask(self.batch_size * self.slots),
                                          self.batch_size, at_least=self.slots)
        self._persist()
        batch = self.ready.pop(0) if self.ready else []
        if not batch:
            return Searcher.FINISHED if self.engine.finished else None
        self.trials[trial_id] = [ev.id for ev in batch]
        self.trainings.update((ev.id, len(members(ev))) for ev in batch)
        return {"members": [m.to_dict() for ev in batch for m in members(ev)],
                "track": self.track}

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        """A trial's per-epoch report: how far its evaluations are (the heartbeat); those whose
        every training has ended settle now."""
        ids = self.trials.get(trial_id)
        if ids and result.get("epoch"):
            self.engine.trained_epoch(ids, result["epoch"])
        if not ids or not result.get("ended"):
            return
        ended = [Outcome.from_dict(o) for o in json.loads(result["ended"])]
        done = [i for i in ids
                if sum(o.eval_id == i for o in ended) >= self.trainings.get(i, math.inf)]
        self._settle(trial_id, done, ended, result)

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False):
        """A trial ended (or was lost): the rest of its evaluations settle."""
        ids = self.trials.get(trial_id)
        if ids is None:
            return
        result = result or {}
        outcomes = [Outcome.from_dict(o) for o in json.loads(result.get("outcomes", "[]"))]
        self._settle(trial_id, list(ids), outcomes, result, lost=error)
        del self.trials[trial_id]

    def _settle(self, trial_id: str, ids: list[int], outcomes: list[Outcome], result: dict,
                lost: bool = False) -> None:
        where = {"trial": trial_id, "node": result.get("node", ""),
                 "device": result.get("device", ""), "seconds": result.get("seconds"),
                 "population": result.get("population")}
        for eval_id in ids:
            self.trials[trial_id].remove(eval_id)
            self.trainings.pop(eval_id, None)
            mine = [o for o in outcomes if o.eval_id == eval_id]
            self.engine.complete(eval_id, mine, lost=lost, **where)
        self._persist()

    def _persist(self) -> None:
        """Checkpoint; a write that fails (a full disk) stops the search instead of going on
        without checkpoints (Tune would swallow an exception raised here)."""
        if self.engine.changed and self.failure is None:
            self.engine.changed = False
            try:
                self.on_change()
            except StorageError as exc:
                self.failure = exc

    def save_to_dir(self, checkpoint_dir: str, session_str: str = "default") -> None:
        """Nothing: the run's state.json (written on every change) is the search's one
        checkpoint; a resume reads it, never Tune's folder."""


# the fewest genomes a CPU trial is cut to: successive halving (keep 1/2 at two rungs) still
# ranks 8 -> 4 -> 2 of them
MIN_CPU_BATCH = 8


def default_batch(pop: int, slots: int, gpu: bool, cpu_cap: int | None = None) -> int:
    """Genomes per trial when --batch-genomes is not given. On a GPU (launch-bound: a
    population costs not much more than one member) a generation fills the slots once. On a
    CPU a trial's time grows with its members (MOSI MiniLM, one core: an epoch of 48 members
    5.8 s, 24 3.3 s, 12 1.6 s), so a generation is dealt into two trials per slot while each
    keeps MIN_CPU_BATCH genomes: the first results come in half the time and a learning
    strategy learns sooner, for the same throughput. `cpu_cap` (the evaluator's) caps a CPU
    trial: 1 where each member's own compute dominates (it fine-tunes an encoder), so a
    learning strategy hears of every result at once instead of proposing a small budget
    blind."""
    whole = max(1, math.ceil(pop / slots))
    half = math.ceil(pop / (2 * slots))
    batch = whole if gpu or half < MIN_CPU_BATCH else half
    return min(batch, cpu_cap) if cpu_cap and not gpu else batch


def balanced_batches(evaluations: list, size: int, at_least: int = 1) -> list[list]:
    """Deal evaluations into batches of at most `size` with about equal work (parameter count
    as the proxy; largest first, each to the lightest batch), so trials that run side by side
    finish together instead of one slot idling; into `at_least` batches (the trial slots) when
    there are that many evaluations, so a short round (the finalists' re-trainings) still
    fills every slot."""
    if not evaluations:
        return []
    # as few batches as the size allows, but no slot left idle
    n = max(-(-len(evaluations) // size), min(at_least, len(evaluations)))
    batches: list[list] = [[] for _ in range(n)]
    load = [0] * n
    for ev in sorted(evaluations, key=lambda e: -e.params):
        open_ = [i for i in range(n) if len(batches[i]) < size]
        i = min(open_, key=lambda j: load[j])
        batches[i].append(ev)
        load[i] += ev.params
    return [sorted(b, key=lambda e: e.id) for b in batches]


# ---- the trial -----------------------------------------------------------------------------

def trial(config: dict, evaluator: Evaluator, threads: int = 1) -> None:
    """Tune's function trainable."""
    import torch
    from ray import tune

    torch.set_num_threads(max(1, threads))
    run_trial(config, evaluator, tune.report)


def run_trial(config: dict, evaluator: Evaluator, report: Callable[[dict], None]) -> dict:
    """Evaluate `config["members"]`; never raises for a bad member. Per epoch it reports the
    batch's best fitness so far (what ASHA compares), each training's best validation metrics
    so far (what an early-stopped batch keeps) and the final outcomes of the trainings that
    have ended ("ended"); at the end one outcome per training."""
    import torch

    t0 = time.perf_counter()
    members = [Member.from_dict(m) for m in config["members"]]
    objective = primary_measured(evaluator)
    device = _device(evaluator)
    node, device_name = _where(device)
    best: dict[tuple[int, int], tuple[float, Outcome]] = {}  # (eval, seed) -> best so far

    def progress(epoch: int, outcomes: list[Outcome], ended: list[Outcome]) -> None:
        for o in outcomes:
            value = _loss(objective, o)
            mine = best.get((o.eval_id, o.seed))
            if mine is None or value < mine[0]:
                best[(o.eval_id, o.seed)] = (value, o)
        top = min((v for v, _ in best.values()), default=math.inf)
        result = {"fitness": objective.sign * top if objective and math.isfinite(top)
                  else math.nan, "epoch": epoch, "node": node, "device": device_name,
                  "outcomes": json.dumps([o.to_dict() for _, o in best.values()]),
                  "ended": json.dumps([o.to_dict() for o in ended]),
                  "seconds": round(time.perf_counter() - t0, 3), "population": len(members)}
        if config.get("track"):  # this epoch's validation metrics, for learning curves
            result["epoch_metrics"] = json.dumps([o.to_dict() for o in outcomes])
        report(result)

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    outcomes = evaluator.evaluate(members, progress)
    final = {"fitness": math.nan, "epoch": max((o.epochs for o in outcomes), default=0) + 1,
             "outcomes": json.dumps([o.to_dict() for o in outcomes]), "node": node,
             "device": device_name, "seconds": round(time.perf_counter() - t0, 3),
             "population": len(members), "peak_memory_mb": peak_memory_mb(device)}
    values = [_loss(objective, o) for o in outcomes if o.status is Status.OK]
    values = [v for v in values if math.isfinite(v)]
    if objective is not None and values:
        final["fitness"] = objective.sign * min(values)
    report(final)
    return final


def primary_measured(evaluator: Evaluator) -> Objective | None:
    """The first objective measured on valid (not a property of the network, e.g. params)."""
    measured = [o for o in evaluator.space.fitness.objectives
                if o.metric not in NETWORK_OBJECTIVES]
    return measured[0] if measured else None


def _loss(objective: Objective | None, o: Outcome) -> float:
    if objective is None:
        return math.inf
    value = objective.loss(o.metrics.get(objective.metric, math.nan))
    return value if math.isfinite(value) else math.inf


def _device(evaluator: Evaluator):
    from evo_msa.training.trainer import resolve_device

    return resolve_device(getattr(evaluator, "device", "cpu"))


def peak_memory_mb(device) -> float:
    """Peak GPU memory allocated since the trial started, or the process's peak RSS on CPU."""
    import torch

    if device.type == "cuda":
        return round(torch.cuda.max_memory_allocated(device) / 2**20, 1)
    import resource

    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)  # KiB on Linux


def _where(device) -> tuple[str, str]:
    """(node, device) of this trial: host and Ray node id; CPU or the GPU's name."""
    import torch

    node = socket.gethostname()
    try:
        import ray

        if ray.is_initialized():
            node = f"{node}:{ray.get_runtime_context().get_node_id()[:8]}"
    except Exception:  # noqa: BLE001 - outside Ray: the host alone
        pass
    name = "cpu"
    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        name = f"cuda:{index} {torch.cuda.get_device_name(index)}"
    return node, name


# ---- the Tuner ------------------------------------------------------------------------------

def run_on_tune(engine: SearchEngine, evaluator: Evaluator, opts, storage: str,
                persist: Callable[[], None], tensorboard: str | None = None) -> None:
    """Evaluate until the engine is finished: batches of genomes as Tune trials, each with
    `opts.cpus_per_trial` / `opts.gpus_per_trial`; ASHA with `opts.asha`."""
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler

    from evo_msa.nas.ray_session import trial_slots

    slots = trial_slots(opts)
    batch = opts.batch_genomes or default_batch(opts.pop, slots, gpu=opts.gpus_per_trial > 0,
                                                cpu_cap=evaluator.cpu_batch_cap())
    # results are told in id order; a proposal waits only for those older than twice what
    # runs or waits at once (a trial per slot, a batch per slot made ahead): see the engine
    engine.set_window(2 * slots * batch)
    searcher = EngineSearcher(engine, batch_size=batch, slots=slots, on_change=persist,
                              track=tensorboard is not None)
    callbacks = []
    if tensorboard is not None:
        from evo_msa.nas.tracking import TensorBoardTracker, viewer_hint

        callbacks.append(TensorBoardTracker(tensorboard, engine))
        engine.log(f"track  TensorBoard: {tensorboard} ({viewer_hint(tensorboard)})")
    engine.log(f"trials {batch} genome(s) x {engine.fitness.seeds} seed(s) per trial, "
               f"{opts.cpus_per_trial:g} CPU / {opts.gpus_per_trial:g} GPU each")
    trainable = tune.with_resources(
        tune.with_parameters(trial, evaluator=evaluator, threads=max(1, int(opts.cpus_per_trial))),
        {"cpu": opts.cpus_per_trial, "gpu": opts.gpus_per_trial})
    scheduler = None
    if opts.asha:
        epochs = max(1, evaluator.max_epochs() or 1)
        # max_t past the budget: a trial that runs its full budget ends on its own and
        # reports its final result, instead of being stopped at the last epoch
        scheduler = ASHAScheduler(metric="fitness", mode=engine.fitness.direction,
                                  time_attr="epoch", max_t=epochs + 1,
                                  grace_period=max(1, epochs // 4), reduction_factor=3)
    with storage_failures(storage) as failed:
        tuner = tune.Tuner(
            trainable,
            tune_config=tune.TuneConfig(search_alg=searcher, scheduler=scheduler, num_samples=-1,
                                        reuse_actors=True),
            run_config=tune.RunConfig(name=f"tune-{int(time.time())}", storage_path=storage,
                                      verbose=0, log_to_file=True, callbacks=callbacks,
                                      failure_config=tune.FailureConfig(max_failures=1)))
        tuner.fit()
    if searcher.failure is not None:
        raise searcher.failure
    if failed:
        raise failed[0]


# errors of a full or read-only disk: the run stops with one line, its checkpoint intact
STORAGE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS}


@contextlib.contextmanager
def storage_failures(storage: str):
    """Ray Tune writing its own files (its experiment state, the tuner) to a full disk: instead
    of Tune's tracebacks on stderr, the block collects one StorageError (and the search stops
    at its next checkpoint, which fails the same way, or right after Tune)."""
    failed: list[StorageError] = []

    def what(exc: BaseException | None) -> OSError | None:
        while exc is not None:
            if isinstance(exc, OSError) and (exc.errno in STORAGE_ERRNOS
                                             or "No space left" in str(exc)):
                return exc
            exc = exc.__cause__ or exc.__context__
        return None

    def record(exc: OSError) -> None:
        if not failed:
            reason = os.strerror(exc.errno) if exc.errno in STORAGE_ERRNOS else "disk full"
            failed.append(StorageError(f"{storage}: Ray Tune cannot write its files ({reason})"))

    class Quiet(logging.Filter):
        def filter(self, rec: logging.LogRecord) -> bool:
            exc = what(rec.exc_info[1] if rec.exc_info else None)
            if exc is None and "No space left on device" in rec.getMessage():
                exc = OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            if exc is not None:
                record(exc)
                return False
            return True

    quiet = Quiet()
    handlers = [h for name in ("", "ray", "ray.tune", "ray.train")
                for h in logging.getLogger(name).handlers]
    for h in handlers:
        h.addFilter(quiet)
    try:
        yield failed
    except OSError as exc:
        if what(exc) is None:
            raise
        record(what(exc))
    finally:
        for h in handlers:
            h.removeFilter(quiet)
