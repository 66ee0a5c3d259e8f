"""`evo-msa search`: the orchestrator.

    prepare     options, space, data and evaluator, checked: if anything is wrong, one line and
                no run directory
    claim       the run directory (new, or the one resumed) and its lock
    evolve      the engine until its strategy is done: Ray Tune trials (HAEMSA trainings) or
                inline (lookup tables); a checkpoint after every settled evaluation
    conclude    leaderboard.csv, best_genome.json, progress.png; the final trainer

Ray (`ray_session`) and Ctrl-C/SIGTERM (`interrupt`) are rooms of their own; what each run file
holds: `evo_msa.record.rundir`.
"""
from __future__ import annotations

import contextlib
import dataclasses
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from evo_msa.data import load_data
from evo_msa.data.dataset import MSAData
from evo_msa.errors import UserError
from evo_msa.io import StorageError
from evo_msa.nas.callbacks import Callbacks
from evo_msa.nas.engine import SearchEngine
from evo_msa.nas.evaluators import Evaluator, make_evaluator
from evo_msa.nas.final import ensemble_size, final_trainer
from evo_msa.nas.interrupt import STOP_GRACE_S, StopGuard, interruption, signals_deferred
from evo_msa.nas.options import SearchOptions, final_settings
from evo_msa.nas.policies import EvaluationPolicy
from evo_msa.nas.ray_session import ray_session
from evo_msa.nas.references import fit_references, reference
from evo_msa.nas.selection import FinalSelection
from evo_msa.nas.strategies import make_strategy
from evo_msa.nas.verdict import read_compared
from evo_msa.progress import Heartbeat
from evo_msa.provenance import fingerprint, provenance
from evo_msa.record import rundir
from evo_msa.record.best import best_genome_record
from evo_msa.record.evaluation import Evaluation
from evo_msa.record.leaderboard import leaderboard_frame
from evo_msa.record.ranking import pareto_front
from evo_msa.record.rundir import RunDir
from evo_msa.report.plots import pareto_figure, progress_figure
from evo_msa.space import SearchSpace, load_space

MAX_FINAL_FRONT = 8  # a long Pareto front is retrained up to this many (best first); --final-top K for more


@dataclass
class Search:
    """A search, checked and ready: what `prepare` found, and its engine."""

    opts: SearchOptions
    space: SearchSpace
    space_file: Path
    data: MSAData | None  # None for a lookup-table space
    evaluator: Evaluator
    engine: SearchEngine
    options: dict  # as search.json holds them (what the fingerprint hashes)


def search(opts: SearchOptions, *, resume: str | None = None, force: bool = False,
           log: Callable[[str], None] = print, callbacks: Callbacks | None = None) -> Path:
    """Run (or resume) a search; returns the run directory. A resume refuses a run whose space
    copy, data or options changed since it started, unless `force`. The console is never quiet
    for long: a heartbeat says where a long step stands (progress.Heartbeat)."""
    with Heartbeat.around(log) as beat:
        return _search(opts, resume, force, beat, callbacks or Callbacks())


def _search(opts: SearchOptions, resume: str | None, force: bool, beat: Heartbeat,
            callbacks: Callbacks) -> Path:
    log = beat.log
    run = RunDir(resume) if resume else None
    beat.doing(f"reading the search space and the data ({opts.data})" if run is None
               else f"reading {run.path}")
    s = prepare(opts, run, log)
    s.engine.callbacks = callbacks
    guard = StopGuard(lambda code: _say_stuck(s.engine, run))
    try:
        if run is not None:
            run.lock(log)
            s.engine.load_state_dict(run.read_checkpoint())
            _check_unchanged(s, run, force, log)
        needs_ray = s.evaluator.needs_ray and not s.engine.finished
        if needs_ray:
            where = s.opts.address or "a local Ray on this machine"
            log(f"ray    starting {where} (seconds; the search's lines follow)"
                if not s.opts.address else f"ray    joining {where}")
            beat.doing("starting Ray")
        # our signal handlers after ray.init: Ray installs its own
        with ray_session(s.opts, log) if needs_ray else contextlib.nullcontext(), \
                guard.catching():
            if run is None:
                run = claim(s, log)
            _banner(log, s, run, resumed=resume is not None)
            if s.opts.track == "mlflow":
                from evo_msa.nas.mlflow_tracker import MLflowTracker

                beat.doing("opening the MLflow store")
                callbacks.add(MLflowTracker(run.path, s.space.fitness, log))
            if s.data is not None and not run.has(rundir.BASELINES):
                beat.doing("fitting the baselines")
                run.write_csv(rundir.BASELINES, fit_references(s.data, log))
            if not s.engine.finished:
                beat.status = s.engine.progress_line
                evolve(s, run)
            beat.doing("writing the leaderboard; then the final training")
            conclude(s, run, log, callbacks)
        return run.path
    except StorageError as exc:  # a full disk: one line, the checkpoint intact
        if run is None or "--resume" in str(exc):
            raise
        if not run.has(rundir.STATE):
            raise StorageError(f"{exc}; nothing was evaluated yet: free some space, remove "
                               f"{run.path} and start again") from None
        raise StorageError(f"{exc}; the checkpoint ({len(s.engine.evaluations)} evaluations) "
                           f"is intact: free some space, then resume with:  evo-msa search "
                           f"--resume {run.path}") from None
    except BaseException as exc:
        stop = interruption(exc)
        if stop is None:
            raise
        if run is not None and run.has(rundir.STATE):
            log(f"interrupted ({stop}): {len(s.engine.evaluations)} evaluations done and "
                f"checkpointed; resume with:  evo-msa search --resume {run.path}")
        raise stop from None
    finally:
        guard.disarm()
        if run is not None:
            run.unlock()


def prepare(opts: SearchOptions, run: RunDir | None, log: Callable[[str], None]) -> Search:
    """Everything that can be wrong with the input fails here, before a run directory exists."""
    options = {k: v for k, v in vars(opts).items()}
    if run is not None:
        if not run.path.is_dir():
            raise UserError(f"{run.path}: no such run directory")
        options = run.read_json(rundir.SEARCH, "the search options")
        opts = SearchOptions.from_dict(options, str(run.file(rundir.SEARCH)))
        space_file = _space_copy(run)
    else:
        if not opts.space:
            raise UserError("--space is required (e.g. --space search_spaces/haemsa.yaml)")
        space_file = Path(opts.space)
    opts.validate()
    for folder in opts.compare:  # a wrong --compare folder fails before any run directory
        read_compared(folder, opts.data)
    space = load_space(space_file)
    if run is None:  # the final stage as it will run (the space's final: section): on record
        epochs, ensemble = final_settings(opts, space)
        opts = dataclasses.replace(opts, final_epochs=epochs, ensemble=ensemble)
        options.update(final_epochs=epochs, ensemble=ensemble)
    data = load_data(opts.data) if space.haemsa else None
    evaluator = make_evaluator(space, data, device=opts.trial_device,
                               data_spec=_data_on_nodes(opts), seed=opts.seed)
    return Search(opts, space, space_file, data, evaluator, build_engine(opts, evaluator, log),
                  options)


def build_engine(opts: SearchOptions, evaluator: Evaluator,
                 log: Callable[[str], None] = print) -> SearchEngine:
    """The engine a search runs: the options' strategy over the evaluator's space, on the
    budget the final selection leaves it (--finalist-share)."""
    space = evaluator.space
    objectives = len(space.fitness.objectives)
    settings = opts.evolution_settings()
    selection = FinalSelection.for_budget(space, settings.budget or
                                          settings.pop_size * settings.generations,
                                          opts.finalist_share, opts.finalists, opts.seed)
    settings = dataclasses.replace(settings, budget=(settings.budget or settings.pop_size
                                                     * settings.generations)
                                   - selection.trainings)
    strategy = make_strategy(opts.kind_for(objectives), space, settings, seed=opts.seed,
                             objectives=objectives)
    return SearchEngine(strategy, EvaluationPolicy(evaluator, trial_seed=opts.seed), log=log,
                        selection=selection)


def claim(s: Search, log: Callable[[str], None]) -> RunDir:
    """A new run directory with the options, their provenance and a copy of the space."""
    run = RunDir.create(s.opts.out).lock(log)
    run.write_json(rundir.SEARCH, {**s.options, "provenance": provenance(s.opts.data)})
    s.space_file = run.copy_in(s.space_file, rundir.space_copy(s.space.name))
    s.engine.fingerprint = fingerprint(s.space_file, s.opts.data, s.options)
    return run


def _check_unchanged(s: Search, run: RunDir, force: bool, log: Callable[[str], None]) -> None:
    """A resume continues the search it started, or says which input changed (--force: it
    goes on, and the later leaderboard rows carry the new fingerprint)."""
    now = fingerprint(s.space_file, s.opts.data, s.options)
    before = s.engine.fingerprint
    changed = [k for k in ("space", "data", "options") if before and before.get(k) != now[k]]
    what = {"space": f"its copy of the search space ({s.space_file.name})",
            "data": f"the data ({s.opts.data})", "options": f"its options ({rundir.SEARCH})"}
    if changed and not force:
        raise UserError(f"{run.path}: {' and '.join(what[k] for k in changed)} changed since the "
                        f"search started (sha256 differs); resume with --force to continue "
                        f"anyway (the leaderboard then shows the change in its fingerprint "
                        f"column)")
    if changed:
        log(f"note   resuming although {' and '.join(what[k] for k in changed)} changed "
            f"(--force): evaluations from now on carry another fingerprint")
    s.engine.fingerprint = now


def evolve(s: Search, run: RunDir) -> None:
    """Evaluate until the strategy is done, checkpointing as evaluations settle."""
    engine = s.engine

    def persist() -> None:
        with signals_deferred():  # a checkpoint is never cut by Ctrl-C
            run.checkpoint(engine.state_dict())
            run.write_csv(rundir.LEADERBOARD, leaderboard_frame(engine.evaluations,
                                                                engine.fitness))

    if s.evaluator.needs_ray:
        from evo_msa.nas.execution.tune import run_on_tune

        run_on_tune(engine, s.evaluator, s.opts, str(run.file(rundir.RAY).resolve()), persist,
                    tensorboard=str(run.file(rundir.TENSORBOARD))
                    if s.opts.track == "tensorboard" else None)
    else:
        from evo_msa.nas.execution.inline import run_inline

        run_inline(engine, s.evaluator, persist=persist)
    persist()
    stage = engine.selection
    finalists = (f", then {stage.planned} re-trainings of the finalists in {stage.rounds} "
                 f"round(s)" if stage.planned else "")
    engine.log(f"search finished ({engine.strategy.stopped_reason}){finalists}; "
               f"{len(engine.evaluations)} evaluations")


def conclude(s: Search, run: RunDir, log: Callable[[str], None],
             callbacks: Callbacks | None = None) -> None:
    """The run's outcome files, then the final trainer (once: a resume does not redo it)."""
    _write_outcome(run, s.space, s.engine, log)
    if s.opts.final_seeds and s.data is not None and not run.has(rundir.FINAL_JSON):
        final = final_trainer(run, s.space, s.data, _final_genomes(s.engine, s.space, s.opts),
                              s.opts, log)
        if callbacks is not None:
            callbacks.final(final)


def _data_on_nodes(opts: SearchOptions) -> str | None:
    """--data-on-nodes: the path each trial reads the data from (trials run in folders of
    their own, so a relative path is made absolute)."""
    if not opts.data_on_nodes:
        return None
    return opts.data if opts.data.startswith("synthetic:") else str(Path(opts.data).resolve())


def _say_stuck(engine: SearchEngine, run: RunDir | None) -> None:
    print(f"interrupted: the stop took over {STOP_GRACE_S:.0f}s; exiting. "
          f"{len(engine.evaluations)} evaluations are checkpointed"
          + (f"; resume with:  evo-msa search --resume {run.path}" if run is not None else ""),
          file=sys.stderr, flush=True)


def _banner(log, s: Search, run: RunDir, resumed: bool) -> None:
    opts, space, engine = s.opts, s.space, s.engine
    log(f"data   {s.data.describe() if s.data is not None else s.evaluator.describe_data()}")
    f = space.fitness
    what = ", ".join(f"{o.metric} ({o.direction})" for o in f.objectives)
    seeds = f", mean of {f.seeds} seeds" if f.seeds > 1 else ""
    log(f"space  {space.name}: {len(space.genes)} genes, {space.size} genome slots; fitness = "
        f"valid {what}{seeds}")
    stage = engine.selection
    finalists = (f" ({stage.trainings} of them re-train the {stage.finalists} finalists)"
                 if stage.trainings else "")
    log(f"search {engine.strategy.describe()}; budget {engine.budget} "
        f"trainings{finalists}{f', patience {opts.patience}' if opts.patience else ''}, "
        f"seed {opts.seed} -> {run.path}")
    if resumed:
        log(f"resumed: {len(engine.evaluations)} evaluations already done")


def _write_outcome(run: RunDir, space: SearchSpace, engine: SearchEngine, log) -> Evaluation:
    """leaderboard.csv, best_genome.json and progress.png from the evaluations."""
    fitness = space.fitness
    board = leaderboard_frame(engine.evaluations, fitness)
    run.write_csv(rundir.LEADERBOARD, board)
    best = engine.pick()
    if best is None:
        raise UserError(f"every evaluation failed: no best genome (see the notes in "
                        f"{rundir.LEADERBOARD})")
    values, evaluated = engine.standing(best)
    run.write_json(rundir.BEST, best_genome_record(best, values, evaluated, fitness,
                                                   rundir.space_copy(space.name)))
    run.write_figure(rundir.PROGRESS, progress_figure(engine.evaluations, fitness))
    if fitness.multi:
        run.write_figure(rundir.PARETO, pareto_figure(board, fitness.objectives))
    bar = ""
    if run.has(rundir.BASELINES):
        ref = reference(run.read_csv(rundir.BASELINES, "the baselines"))
        if f"valid_{fitness.metric}" in ref:
            bar = (f" ({ref['model']} on {ref['modalities']}: "
                   f"{ref[f'valid_{fitness.metric}']:.4f})")
    mean = f", mean of {evaluated} evaluations" if evaluated > 1 else ""
    log(f"best   #{best.id} (generation {best.generation}): valid {fitness.metric} "
        f"{values[0]:.4f}{mean}{bar}")
    return best


def _final_genomes(engine: SearchEngine, space: SearchSpace, opts: SearchOptions):
    """What the final trainer retrains: the search's pick and then the best others on the first
    objective, --final-top K in all (default 1; --ensemble K: at least its K candidates); with
    several objectives, by default the Pareto front (best first)."""
    if space.fitness.multi and not opts.final_top:
        return pareto_front(engine.evaluations, space.fitness)[:MAX_FINAL_FRONT]
    pick = engine.pick()
    k = max(opts.final_top or 1, ensemble_size(opts, space))
    # one per architecture, named by its first training and ranked as the pick is: by the mean
    # over its trainings (a re-trained finalist's luckiest draw would otherwise rank it)
    firsts: dict = {}
    for e in sorted(engine.evaluations, key=lambda e: e.id):
        if not e.repeat and e.status.usable and space.fitness.usable(e.fitness):
            firsts.setdefault(e.key, e)
    others = sorted((e for key, e in firsts.items() if key != pick.key),
                    key=lambda e: space.fitness.primary.loss(engine.policy.standing(e)[0][0]))
    return [pick, *others][:k]


def _space_copy(run: RunDir) -> Path:
    """The run's own copy of the space: a resume never depends on the original file."""
    copies = run.space_copies()
    if not copies:
        raise UserError(f"{run.path}: the copy of the search space "
                        f"({rundir.space_copy(rundir.ANY)}) is missing")
    return copies[0]
