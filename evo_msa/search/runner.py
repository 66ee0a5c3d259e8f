"""`evo-msa search`: orchestration only.

    validate the options, space and data (no run directory exists yet if anything is wrong)
    -> claim the run directory -> evolve on Ray Tune (EngineSearcher + batch trials)
    -> best genome, progress plot -> the final trainer

Ctrl-C or SIGTERM stops the trials, keeps the last checkpoint and says how to resume; a second
one exits at once. What each file holds: see `evo_msa.rundir`.
"""
from __future__ import annotations

import contextlib
import copy
import logging
import math
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Callable

from evo_msa import rundir
from evo_msa.data import load_data
from evo_msa.data.dataset import MSAData
from evo_msa.errors import UserError
from evo_msa.models import DataInfo
from evo_msa.report.leaderboard import leaderboard_frame, ranked
from evo_msa.report.plots import progress_figure
from evo_msa.rundir import RunDir
from evo_msa.search.engine import SearchEngine
from evo_msa.search.evaluation import Evaluation
from evo_msa.search.final import final_trainer
from evo_msa.search.options import SearchOptions
from evo_msa.search.policies import EvaluationPolicy
from evo_msa.search.strategy import EvolutionSettings, make_strategy
from evo_msa.space import SearchSpace, load_space


class Interrupted(BaseException):
    """SIGINT/SIGTERM during a run (a BaseException: no `except Exception` swallows it)."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.exit_code = 128 + signum  # 130 for SIGINT, 143 for SIGTERM


def search(opts: SearchOptions, *, resume: str | None = None,
           log: Callable[[str], None] = print) -> Path:
    """Run (or resume) a search; returns the run directory."""
    if resume:
        run = RunDir(resume)
        if not run.path.is_dir():
            raise UserError(f"{resume}: no such run directory")
        opts = SearchOptions.from_dict(run.read_json(rundir.SEARCH, "the search options"),
                                       str(run.file(rundir.SEARCH)))
        space_path = _space_copy(run)
    else:
        if not opts.space:
            raise UserError("--space is required (e.g. --space search_spaces/haemsa.yaml)")
        space_path = opts.space
    opts.validate()
    # everything that can be wrong with the input fails here, before a run directory exists
    space = load_space(space_path)
    data = load_data(opts.data)
    info = DataInfo.from_data(data)
    strategy = make_strategy(opts.strategy_kind, space,
                             EvolutionSettings(pop_size=opts.pop, generations=opts.generations,
                                               patience=opts.patience, **opts.evolution),
                             seed=opts.seed, objectives=len(space.fitness.objectives))
    engine = SearchEngine(strategy, EvaluationPolicy(space, info, trial_seed=opts.seed), log=log)

    if resume:
        run.lock(log)
    try:
        if resume:
            engine.load_state_dict(run.read_checkpoint())
        ray_session = _connect_ray(opts) if not engine.finished else contextlib.nullcontext()

        def stuck(code: int) -> None:
            print(f"interrupted: the stop took over {STOP_GRACE_S:.0f}s; exiting. "
                  f"{len(engine.evaluations)} evaluations are checkpointed; resume with:  "
                  f"evo-msa search --resume {run.path}", file=sys.stderr, flush=True)

        with ray_session, _interruptible(stuck):  # ours after ray.init: it installs its own
            if not resume:
                run = RunDir.create(opts.out).lock(log)
                run.write_json(rundir.SEARCH, vars(opts))
                run.copy_in(opts.space, f"{space.name}.yaml")
            _banner(log, data, space, opts, engine, run)
            if resume:
                log(f"resumed: {len(engine.evaluations)} evaluations already done")
            if not engine.finished:
                _evolve(opts, engine, data, run)
            _write_outcome(run, space, engine, log)
            if opts.final_seeds and not run.has(rundir.FINAL_JSON):
                final_trainer(run, space, data, ranked(engine.evaluations, space.fitness,
                                                       opts.final_top), opts, log)
        return run.path
    except Interrupted as stop:
        done = len(engine.evaluations)
        where = run.path if "run" in locals() else None
        if where is not None and run.has(rundir.STATE):
            log(f"interrupted ({stop}): {done} evaluations done and checkpointed; "
                f"resume with:  evo-msa search --resume {where}")
        raise
    finally:
        if "run" in locals():
            run.unlock()


def _banner(log, data, space, opts, engine, run) -> None:
    log(f"data   {data.describe()}")
    f = space.fitness
    what = ", ".join(f"{o.metric} ({o.direction})" for o in f.objectives)
    seeds = f", mean of {f.seeds} seeds" if f.seeds > 1 else ""
    log(f"space  {space.name}: {len(space.genes)} genes, {space.size} genome slots; fitness = "
        f"valid {what}{seeds}")
    log(f"search {opts.strategy_kind}, pop {opts.pop}, budget {engine.strategy.budget} "
        f"evaluations{f', patience {opts.patience}' if opts.patience else ''}, seed {opts.seed}"
        f" -> {run.path}")


def _evolve(opts: SearchOptions, engine: SearchEngine, data: MSAData, run: RunDir) -> None:
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler

    from evo_msa.search.searcher import EngineSearcher
    from evo_msa.search.trainable import fitness_trainable

    def persist() -> None:
        with _signals_deferred():  # a checkpoint is never cut by Ctrl-C
            run.checkpoint(engine.state_dict())
            run.write_csv(rundir.LEADERBOARD, leaderboard_frame(engine.evaluations,
                                                                engine.fitness))

    slots = _trial_slots(opts)
    batch = opts.batch_genomes or max(1, math.ceil(opts.pop / slots))
    searcher = EngineSearcher(engine, batch_size=batch, device=opts.trial_device, slots=slots,
                              on_change=persist)
    engine.log(f"trials {batch} genome(s) x {engine.fitness.seeds} seed(s) per trial, "
               f"{opts.cpus_per_trial:g} CPU / {opts.gpus_per_trial:g} GPU each")
    # the data goes into the object store once; every trial reads the same copy.
    # The test split stays behind: selection never sees it.
    search_data = copy.copy(data)
    search_data.splits = {k: v for k, v in data.splits.items() if k != "test"}
    trainable = tune.with_resources(
        tune.with_parameters(fitness_trainable, data=search_data,
                             threads=max(1, int(opts.cpus_per_trial))),
        {"cpu": opts.cpus_per_trial, "gpu": opts.gpus_per_trial})
    scheduler = None
    if opts.asha:
        space_epochs = max(1, max((ev.config["train"]["epochs"] for ev in engine.evaluations),
                                  default=0) or _fixed_epochs(engine))
        # max_t past the budget: a trial that runs its full budget ends on its own and
        # reports its final result, instead of being stopped at the last epoch
        scheduler = ASHAScheduler(metric="fitness", mode=engine.fitness.direction,
                                  time_attr="epoch", max_t=space_epochs + 1,
                                  grace_period=max(1, space_epochs // 4), reduction_factor=3)
    tuner = tune.Tuner(
        trainable,
        tune_config=tune.TuneConfig(search_alg=searcher, scheduler=scheduler, num_samples=-1,
                                    reuse_actors=True),
        run_config=tune.RunConfig(name=f"tune-{int(time.time())}",
                                  storage_path=str((run.path / "ray").resolve()), verbose=0,
                                  log_to_file=True,
                                  failure_config=tune.FailureConfig(max_failures=1)))
    tuner.fit()
    if searcher.failure is not None:
        raise searcher.failure
    persist()
    engine.log(f"search finished ({engine.strategy.stopped_reason}); "
               f"{len(engine.evaluations)} evaluations")


def _fixed_epochs(engine: SearchEngine) -> int:
    space = engine.policy.space
    return space.to_config([0.5] * space.size).train.epochs


def _trial_slots(opts: SearchOptions) -> int:
    """Trials the cluster runs at once; by default a generation is split into that many
    batches, so that it fills every slot."""
    import ray

    resources = ray.cluster_resources()
    if opts.gpus_per_trial > 0:
        slots = resources.get("GPU", 0) / opts.gpus_per_trial
    else:
        slots = resources.get("CPU", 1) / opts.cpus_per_trial
    return max(1, int(slots))


@contextlib.contextmanager
def _connect_ray(opts: SearchOptions):
    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")  # no per-trial CSV/TBX
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    os.environ["TUNE_DISABLE_SIGINT_HANDLER"] = "1"  # our handler: stop, keep the checkpoint
    import ray

    try:
        # a local Ray's processes inherit this signal mask: a SIGTERM sent to the whole process
        # group then stops only this driver, which shuts them down in order (Ray already shields
        # them from SIGINT; they still die with the driver, by Ray's fate sharing)
        with _signals_deferred():
            ray.init(address=opts.address, include_dashboard=False, log_to_driver=False,
                     logging_level=logging.ERROR, ignore_reinit_error=True,
                     configure_logging=True)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        detail = " ".join(str(exc).split())[:200]
        raise UserError(f"cannot join the Ray cluster at {opts.address}: {detail} (check that "
                        f"`ray start --head` runs there and its port is reachable)") from None
    try:
        yield
    finally:
        ray.shutdown()


STOP_GRACE_S = 15.0  # an orderly stop that takes longer than this is cut short


@contextlib.contextmanager
def _interruptible(on_stuck: Callable[[int], None] = lambda code: None):
    """SIGINT/SIGTERM raise Interrupted once; a second signal exits at once. Should the orderly
    stop hang (e.g. a cluster that died under it), a watchdog exits after STOP_GRACE_S."""
    hits = []

    def handler(signum, frame):
        code = 128 + signum
        if hits:
            os._exit(code)
        hits.append(signum)

        def force():
            on_stuck(code)
            os._exit(code)

        watchdog = threading.Timer(STOP_GRACE_S, force)
        watchdog.daemon = True
        watchdog.start()
        raise Interrupted(signum)

    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


@contextlib.contextmanager
def _signals_deferred():
    blocked = {signal.SIGINT, signal.SIGTERM}
    old = signal.pthread_sigmask(signal.SIG_BLOCK, blocked)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


def _write_outcome(run: RunDir, space: SearchSpace, engine: SearchEngine, log) -> Evaluation:
    """leaderboard.csv, best_genome.json and progress.png from the evaluations."""
    fitness = space.fitness
    run.write_csv(rundir.LEADERBOARD, leaderboard_frame(engine.evaluations, fitness))
    top = ranked(engine.evaluations, fitness, 1)
    if not top:
        raise UserError("every evaluation failed: no best genome (see leaderboard.csv notes)")
    best = top[0]
    run.write_json(rundir.BEST, {
        "id": best.id, "generation": best.generation, "fitness": best.fitness[0],
        "metric": fitness.metric, "direction": fitness.direction,
        "objectives": fitness.to_dict()["objectives"], "fitness_values": list(best.fitness),
        "space": f"{space.name}.yaml", "genome": best.genome, "decoded": best.genes,
        "params": best.params, "run_config": best.config})
    run.write_figure(rundir.PROGRESS, progress_figure(engine.evaluations, fitness))
    log(f"best   #{best.id} (generation {best.generation}): valid {fitness.metric} "
        f"{best.fitness[0]:.4f}")
    return best


def _space_copy(run: RunDir) -> Path:
    """The run's own copy of the space: a resume never depends on the original file."""
    copies = sorted(run.path.glob("*.yaml"))
    if not copies:
        raise UserError(f"{run.path}: the copy of the search space (*.yaml) is missing")
    return copies[0]
