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
from evo_msa.provenance import provenance
from evo_msa.report.leaderboard import leaderboard_frame, pareto_front, ranked
from evo_msa.report.plots import pareto_figure, progress_figure
from evo_msa.rundir import RunDir
from evo_msa.nas.engine import SearchEngine
from evo_msa.nas.evaluation import Evaluation
from evo_msa.nas.final import final_trainer
from evo_msa.nas.options import SearchOptions
from evo_msa.nas.policies import EvaluationPolicy
from evo_msa.nas.strategy import EvolutionSettings, make_strategy
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
        ray_session = contextlib.nullcontext() if engine.finished else _ray_session(opts)

        def stuck(code: int) -> None:
            print(f"interrupted: the stop took over {STOP_GRACE_S:.0f}s; exiting. "
                  f"{len(engine.evaluations)} evaluations are checkpointed; resume with:  "
                  f"evo-msa search --resume {run.path}", file=sys.stderr, flush=True)

        with ray_session, _interruptible(stuck):  # ours after ray.init: it installs its own
            if not resume:
                run = RunDir.create(opts.out).lock(log)
                run.write_json(rundir.SEARCH, {**vars(opts), "provenance": provenance(opts.data)})
                run.copy_in(opts.space, f"{space.name}.yaml")
            _banner(log, data, space, opts, engine, run)
            if resume:
                log(f"resumed: {len(engine.evaluations)} evaluations already done")
            if not engine.finished:
                _evolve(opts, engine, data, run)
            _write_outcome(run, space, engine, log)
            if opts.final_seeds and not run.has(rundir.FINAL_JSON):
                final_trainer(run, space, data, _final_genomes(engine, space, opts), opts, log)
        return run.path
    except BaseException as exc:
        stop = _interruption(exc)
        if stop is None:
            raise
        done = len(engine.evaluations)
        where = run.path if "run" in locals() else None
        if where is not None and run.has(rundir.STATE):
            log(f"interrupted ({stop}): {done} evaluations done and checkpointed; "
                f"resume with:  evo-msa search --resume {where}")
        raise stop from None
    finally:
        if "run" in locals():
            run.unlock()


def _interruption(exc: BaseException) -> Interrupted | None:
    """The Ctrl-C/SIGTERM behind `exc`: a signal that lands inside Ray's compiled code comes
    back wrapped (SystemError "returned a result with an exception set")."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, Interrupted):
            return exc
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return None


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

    from evo_msa.nas.searcher import EngineSearcher
    from evo_msa.nas.trainable import fitness_trainable

    def persist() -> None:
        with _signals_deferred():  # a checkpoint is never cut by Ctrl-C
            run.checkpoint(engine.state_dict())
            run.write_csv(rundir.LEADERBOARD, leaderboard_frame(engine.evaluations,
                                                                engine.fitness))

    slots = _trial_slots(opts)
    batch = opts.batch_genomes or max(1, math.ceil(opts.pop / slots))
    searcher = EngineSearcher(engine, batch_size=batch, device=opts.trial_device, slots=slots,
                              on_change=persist, track=bool(opts.track))
    callbacks = []
    if opts.track == "tensorboard":
        from evo_msa.nas.tracking import TensorBoardTracker

        callbacks.append(TensorBoardTracker(run.file("tensorboard"), engine))
        engine.log(f"track  tensorboard --logdir {run.file('tensorboard')}")
    engine.log(f"trials {batch} genome(s) x {engine.fitness.seeds} seed(s) per trial, "
               f"{opts.cpus_per_trial:g} CPU / {opts.gpus_per_trial:g} GPU each")
    # the data goes into the object store once; every trial reads the same copy.
    # The test split stays behind: selection never sees it.
    search_data = copy.copy(data)
    search_data.splits = {k: v for k, v in data.splits.items() if k != "test"}
    shipped = {"data": search_data}
    if opts.data_on_nodes:  # each trial reads it from a path every node sees
        shipped = {"data_spec": opts.data if opts.data.startswith("synthetic:")
                   else os.path.abspath(opts.data)}  # trials run in their own folders
    trainable = tune.with_resources(
        tune.with_parameters(fitness_trainable, **shipped,
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
                                  log_to_file=True, callbacks=callbacks,
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


JOIN_WAIT_S = 5  # joining a cluster: Ray retries ~1 s apart for 20 s; a refused token never heals
REACH_TIMEOUT_S = 5  # the TCP check before that; Ray itself waits 30 s+ per try on a dead port


class SharedRay:
    """`with SharedRay():` the searches run inside share one Ray, started by the first and shut
    down at the block's end, instead of starting one each (a study of many small searches:
    starting Ray is most of their time)."""

    active: "SharedRay | None" = None

    def __enter__(self) -> "SharedRay":
        if SharedRay.active is not None:
            raise RuntimeError("SharedRay blocks do not nest")
        self.stack, SharedRay.active = contextlib.ExitStack(), self
        self.joined = False
        return self

    def __exit__(self, *exc) -> None:
        SharedRay.active = None
        self.stack.close()

    def join(self, opts: SearchOptions):
        if not self.joined:  # the first search connects as a search alone would
            self.stack.enter_context(_connect_ray(opts))
            self.joined = True
        return contextlib.nullcontext()


def _ray_session(opts: SearchOptions):
    """This search's Ray: the enclosing SharedRay block's, or one of its own."""
    shared = SharedRay.active
    return shared.join(opts) if shared is not None else _connect_ray(opts)


@contextlib.contextmanager
def _connect_ray(opts: SearchOptions):
    """Join `--address`, or `RAY_ADDRESS` (a job's entrypoint has it), or start a Ray of our
    own: never one that a `ray start` happened to leave on this machine (that is `--address
    auto`), and never without token authentication, since Ray runs any code a client sends."""
    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")  # no per-trial CSV/TBX
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    os.environ["TUNE_DISABLE_SIGINT_HANDLER"] = "1"  # our handler: stop, keep the checkpoint
    address = opts.address or os.environ.get("RAY_ADDRESS") or "local"
    joining = address != "local"
    if joining:
        why = _unreachable(address)
        if why:
            raise UserError(f"cannot reach the Ray cluster at {address}: {why} (check the "
                            f"address and port, that `ray start --head` runs there, and that "
                            f"this machine may connect to that port)")
    else:
        # Ray >= 2.59 turns token auth on for a Ray that ray.init starts, unless RAY_AUTH_MODE
        # says otherwise; ours is on whatever the shell exports (the token: ~/.ray/auth_token)
        os.environ["RAY_AUTH_MODE"] = "token"
        _workers_import_this_checkout()
    import ray
    from ray._raylet import AuthenticationMode, Config, get_authentication_mode

    if not joining and get_authentication_mode() != AuthenticationMode.TOKEN:
        Config.initialize("")  # Ray caches the mode on first read: read RAY_AUTH_MODE again
    wait = {"RAY_gcs_server_port_wait_time_s": str(JOIN_WAIT_S)} if joining else {}
    captured = ""
    try:
        # a local Ray's processes inherit this signal mask: a SIGTERM sent to the whole process
        # group then stops only this driver, which shuts them down in order (Ray already shields
        # them from SIGINT; they still die with the driver, by Ray's fate sharing)
        with _signals_deferred(), _env_default(**wait), _stderr_held(joining) as held:
            try:
                ray.init(address=address, include_dashboard=False, log_to_driver=False,
                         logging_level=logging.ERROR, ignore_reinit_error=True,
                         configure_logging=True)
            finally:
                captured = held()
    except (ConnectionError, RuntimeError, ValueError, ray.exceptions.RayError) as exc:
        raise UserError(_join_failure(address, exc, captured)) from None
    if captured:  # joined after all: what Ray's core printed on the way is not hidden
        sys.stderr.write(captured)
    try:
        if not joining and get_authentication_mode() != AuthenticationMode.TOKEN:
            raise UserError("the local Ray started without token authentication; refusing to "
                            "run on it (needs ray >= 2.59; unset RAY_AUTH_MODE)")
        pending = {} if "TUNE_MAX_PENDING_TRIALS_PG" in os.environ else {
            # Tune's default for a custom searcher is one trial starting at a time: with a trial
            # actor taking seconds to start, a cluster's slots would fill one by one
            "TUNE_MAX_PENDING_TRIALS_PG": str(_trial_slots(opts))}
        with _env_default(**pending):
            yield
    finally:
        ray.shutdown()


def _workers_import_this_checkout() -> None:
    """A local Ray's workers inherit our environment: put the folder evo_msa was imported from
    on their PYTHONPATH, so trials run this code even when it is not installed (a checkout run
    with `python -m evo_msa`) or another version is. A cluster's nodes install it themselves."""
    root = str(Path(__file__).resolve().parents[2])
    paths = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    if root not in paths:
        os.environ["PYTHONPATH"] = os.pathsep.join([root, *paths])


def _unreachable(address: str) -> str | None:
    """Why no TCP connection to ADDRESS opens within REACH_TIMEOUT_S; None if one does (or the
    address is Ray's to resolve: "auto")."""
    import socket

    host, colon, port = address.rpartition("://")[2].rpartition(":")
    if not colon or not port.isdigit():
        return None
    try:
        socket.create_connection((host.strip("[]"), int(port)), REACH_TIMEOUT_S).close()
    except OSError as exc:
        return exc.strerror or str(exc) or type(exc).__name__
    return None


def _join_failure(address: str, exc: BaseException, captured: str) -> str:
    text, e = captured, exc
    while e is not None:
        text += f" {type(e).__name__} {e}"
        e = e.__cause__ or e.__context__
    if any(k in text for k in ("InvalidAuthToken", "Unauthenticated", "AuthenticationError")):
        return (f"the Ray cluster at {address} refused this client's token (check that "
                f"RAY_AUTH_MODE=token is set here and RAY_AUTH_TOKEN_PATH names a copy of the "
                f"cluster's token file)")
    detail = " ".join(str(exc).split())[:200]
    return (f"cannot join the Ray cluster at {address}: {detail} (check that `ray start --head` "
            f"runs there and that its port is reachable)")


@contextlib.contextmanager
def _env_default(**values: str):
    """Set environment variables the user has not set, for the block only."""
    mine = {k: v for k, v in values.items() if k not in os.environ}
    os.environ.update(mine)
    try:
        yield
    finally:
        for k in mine:
            os.environ.pop(k, None)


@contextlib.contextmanager
def _stderr_held(hold: bool):
    """Hold back what is written to file descriptor 2 (Ray's core logs a warning per retry of
    a failing join there); the block gets a function that ends the hold and returns the text."""
    if not hold:
        yield lambda: ""
        return
    import tempfile

    sys.stderr.flush()
    saved = os.dup(2)
    buf = tempfile.TemporaryFile()
    os.dup2(buf.fileno(), 2)
    done: list[str] = []

    def release() -> str:
        if not done:
            os.dup2(saved, 2)
            buf.seek(0)
            done.append(buf.read().decode(errors="replace"))
        return done[0]

    try:
        yield release
    finally:
        release()
        os.close(saved)
        buf.close()


STOP_GRACE_S = 15.0  # an orderly stop that takes longer than this is cut short
MAX_FINAL_FRONT = 8  # a long Pareto front is retrained up to this many (best first); --final-top K for more


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
    board = leaderboard_frame(engine.evaluations, fitness)
    run.write_csv(rundir.LEADERBOARD, board)
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
    if fitness.multi:
        run.write_figure(rundir.PARETO, pareto_figure(board, fitness.objectives))
    log(f"best   #{best.id} (generation {best.generation}): valid {fitness.metric} "
        f"{best.fitness[0]:.4f}")
    return best


def _final_genomes(engine: SearchEngine, space: SearchSpace, opts: SearchOptions):
    """What the final trainer retrains: the --final-top K best on the first objective; by
    default the best one, or with several objectives the Pareto front (best first)."""
    if opts.final_top or not space.fitness.multi:
        return ranked(engine.evaluations, space.fitness, opts.final_top or 1)
    front = pareto_front(engine.evaluations, space.fitness)
    return front[:MAX_FINAL_FRONT]


def _space_copy(run: RunDir) -> Path:
    """The run's own copy of the space: a resume never depends on the original file."""
    copies = sorted(run.path.glob("*.yaml"))
    if not copies:
        raise UserError(f"{run.path}: the copy of the search space (*.yaml) is missing")
    return copies[0]
