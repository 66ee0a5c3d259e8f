"""`evo-msa search`: validate everything, evolve on Ray Tune, then retrain the best genomes.

Run directory (all files people can open):
    search.json        the options, so `--resume RUN_DIR` needs nothing else
    <space>.yaml       a copy of the search space
    state.json         searcher checkpoint (population, hall of fame, RNG states, cache)
    leaderboard.csv    one row per evaluation
    best_genome.json   the best genome, decoded, and its run config
    progress.png       best and median fitness per generation
    final.json/.csv    the final trainer: top genomes retrained with several seeds, test metrics
"""
from __future__ import annotations

import copy
import json
import logging
import os
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import pandas as pd

from evo_msa.config import TrainConfig
from evo_msa.data import load_data
from evo_msa.data.dataset import MSAData
from evo_msa.errors import UserError
from evo_msa.models import DataInfo
from evo_msa.report.leaderboard import to_frame, top, write_csv_atomic
from evo_msa.report.plots import plot_progress
from evo_msa.search.policies import EvaluationPolicy
from evo_msa.search.searcher import STATE_FILE, EvolutionSearcher
from evo_msa.search.strategy import EvolutionSettings, make_strategy
from evo_msa.space import SearchSpace, load_space
from evo_msa.train.multiseed import format_summary, train_seeds
from evo_msa.train.trainer import resolve_device


@dataclass
class SearchOptions:
    space: str
    data: str = "synthetic:mosi"
    pop: int = 32
    generations: int = 6
    patience: int | None = None
    strategy: str = "evolution"  # "evolution" or "random"
    mode: str = "generational"  # "generational" or "steady-state"
    seed: int = 0
    device: str = "auto"
    cpus_per_trial: float = 1.0
    gpus_per_trial: float = 0.0
    asha: bool = False
    address: str | None = None
    final_seeds: int = 5
    final_top: int = 1
    final_epochs: int = 50  # the final trainer trains to convergence, not to the fitness budget
    out: str | None = None
    evolution: dict = field(default_factory=dict)  # EvolutionSettings overrides (tests, experts)

    def validate(self) -> None:
        checks = [
            (self.pop >= 2, "--pop", "an integer >= 2"),
            (self.generations >= 1, "--generations", "an integer >= 1"),
            (self.patience is None or self.patience >= 1, "--patience", "an integer >= 1"),
            (self.strategy in ("evolution", "random"), "--strategy", "evolution or random"),
            (self.mode in ("generational", "steady-state"), "--mode", "generational or steady-state"),
            (self.device in ("auto", "cpu", "cuda"), "--device", "auto, cpu or cuda"),
            (self.cpus_per_trial > 0, "--cpus-per-trial", "a number > 0"),
            (self.gpus_per_trial >= 0, "--gpus-per-trial", "a number >= 0 (0.25: four trials per GPU)"),
            (self.final_seeds >= 0, "--final-seeds", "an integer >= 0 (0 skips the final trainer)"),
            (self.final_top >= 1, "--final-top", "an integer >= 1"),
            (self.final_epochs >= 1, "--final-epochs", "an integer >= 1"),
        ]
        for ok, flag, expected in checks:
            if not ok:
                raise UserError(f"{flag} must be {expected}")
        if self.device == "cuda" and self.gpus_per_trial == 0:
            raise UserError("--device cuda needs --gpus-per-trial > 0 (e.g. 0.25)")

    @property
    def strategy_kind(self) -> str:
        return "random" if self.strategy == "random" else self.mode

    @property
    def trial_device(self) -> str:
        return "cuda" if self.gpus_per_trial > 0 and self.device != "cpu" else "cpu"


def search(opts: SearchOptions, *, resume: str | None = None,
           log: Callable[[str], None] = print) -> Path:
    """Run (or resume) a search; returns the run directory."""
    if resume:
        run_dir = Path(resume)
        if not (run_dir / "search.json").is_file() or not (run_dir / STATE_FILE).is_file():
            raise UserError(f"{run_dir}: not a resumable run directory "
                            f"(needs search.json and {STATE_FILE})")
        opts = SearchOptions(**json.loads((run_dir / "search.json").read_text()))
    opts.validate()
    # everything that can be wrong with the input fails here, before a run directory exists
    space = load_space(opts.space if not resume else _space_copy(run_dir))
    data = load_data(opts.data)
    settings = EvolutionSettings(pop_size=opts.pop, generations=opts.generations,
                                 patience=opts.patience, **opts.evolution)
    if not resume:
        run_dir = _new_run_dir(opts.out)
        _write_json(run_dir / "search.json", asdict(opts))
        shutil.copyfile(opts.space, run_dir / f"{space.name}.yaml")

    log(f"data   {data.describe()}")
    log(f"space  {space.name}: {len(space.genes)} genes, {space.size} genome slots; fitness = "
        f"valid {space.metric} ({space.direction})")
    log(f"search {opts.strategy_kind}, pop {opts.pop}, up to {opts.generations} generations"
        f"{f', patience {opts.patience}' if opts.patience else ''}, seed {opts.seed} -> {run_dir}")

    info = DataInfo.from_data(data)
    strategy = make_strategy(opts.strategy_kind, space, settings, seed=opts.seed)
    searcher = EvolutionSearcher(strategy, EvaluationPolicy(space, info), run_dir=run_dir,
                                 trial_seed=opts.seed, device=opts.trial_device, log=log)
    if resume:
        searcher.restore(str(run_dir / STATE_FILE))
        log(f"resumed: {len(searcher.rows)} evaluations already done")
    if not strategy.done:
        _run_tune(opts, searcher, data, run_dir)
    searcher.checkpoint()
    log(f"search finished ({strategy.stopped_reason}); {len(searcher.rows)} evaluations")

    rows = to_frame(searcher.rows)
    best = _write_best(run_dir, space, rows, info)
    plot_progress(rows, run_dir / "progress.png", space.metric, space.direction)
    log(f"best   #{best['id']} (generation {best['generation']}): valid {space.metric} "
        f"{best['fitness']:.4f}")
    if opts.final_seeds > 0 and not (run_dir / "final.json").is_file():
        final_trainer(run_dir, space, data, rows, opts, log)
    return run_dir


def _run_tune(opts: SearchOptions, searcher: EvolutionSearcher, data: MSAData, run_dir: Path):
    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")  # no per-trial CSV/TBX files
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    import ray
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler

    from evo_msa.search.trainable import fitness_trainable

    ray.init(address=opts.address, include_dashboard=False, log_to_driver=False,
             logging_level=logging.ERROR, ignore_reinit_error=True,
             configure_logging=True)
    try:
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
            epochs = searcher.policy.space.to_config(
                [0.5] * searcher.policy.space.size).train.epochs
            # max_t past the budget: a trial that runs its full budget ends on its own and
            # reports its final result, instead of being stopped at the last epoch
            scheduler = ASHAScheduler(metric="fitness", mode=searcher.policy.space.direction,
                                      time_attr="epoch", max_t=epochs + 1,
                                      grace_period=max(1, epochs // 4), reduction_factor=3)
        tuner = tune.Tuner(
            trainable,
            tune_config=tune.TuneConfig(search_alg=searcher, scheduler=scheduler,
                                        num_samples=-1, reuse_actors=True),
            run_config=tune.RunConfig(name=f"tune-{int(time.time())}",
                                      storage_path=str((run_dir / "ray").resolve()), verbose=0,
                                      log_to_file=True))
        tuner.fit()
    finally:
        ray.shutdown()


def final_trainer(run_dir: Path, space: SearchSpace, data: MSAData, rows: pd.DataFrame,
                  opts: SearchOptions, log: Callable[[str], None] = print) -> dict:
    """Retrain the top genomes with several seeds on train, early-stop on valid, score on test."""
    seeds = list(range(opts.final_seeds))
    device = str(resolve_device(opts.device))
    entries, tables = [], []
    for rank, (_, row) in enumerate(top(rows, opts.final_top, space.direction).iterrows(), 1):
        genome = json.loads(row["genome"])
        cfg = space.to_config(genome, available=data.modalities)
        cfg.train.epochs = max(cfg.train.epochs, opts.final_epochs)
        cfg.train.patience = max(cfg.train.patience, TrainConfig.patience)
        log(f"final  #{int(row['id'])} (rank {rank}): {len(seeds)} seeds, up to "
            f"{cfg.train.epochs} epochs, on {device}")
        summary, table = train_seeds(data, cfg, seeds, device=device, log=log)
        log(format_summary(summary))
        table.insert(0, "rank", rank)
        table.insert(1, "id", int(row["id"]))
        tables.append(table)
        entries.append({"rank": rank, "id": int(row["id"]), "search_fitness": float(row["fitness"]),
                        "genome": genome, "run_config": cfg.to_dict(), **summary})
    final = {"metric": space.metric, "direction": space.direction, "device": device,
             "data": opts.data, "genomes": entries}
    write_csv_atomic(pd.concat(tables, ignore_index=True), run_dir / "final.csv")
    _write_json(run_dir / "final.json", json.loads(json.dumps(final, default=_np_default)))
    return final


def _write_best(run_dir: Path, space: SearchSpace, rows: pd.DataFrame, info: DataInfo) -> dict:
    ranked = top(rows, 1, space.direction)
    if ranked.empty:
        raise UserError("every evaluation failed: no best genome (see leaderboard.csv notes)")
    row = ranked.iloc[0]
    genome = json.loads(row["genome"])
    best = {"id": int(row["id"]), "generation": int(row["generation"]),
            "fitness": float(row["fitness"]), "metric": space.metric,
            "direction": space.direction, "space": f"{space.name}.yaml", "genome": genome,
            "decoded": space.decode(genome, info.modalities),
            "run_config": space.to_config(genome, available=info.modalities).to_dict()}
    _write_json(run_dir / "best_genome.json", best)
    return best


def _new_run_dir(out: str | None) -> Path:
    run_dir = Path(out) if out else Path("runs") / time.strftime("%Y%m%d-%H%M%S")
    if run_dir.exists() and any(run_dir.iterdir()):
        raise UserError(f"{run_dir}: already exists and is not empty "
                        f"(choose another --out, or --resume {run_dir})")
    run_dir.mkdir(parents=True, exist_ok=True)
    return run_dir


def _space_copy(run_dir: Path) -> Path:
    """The run's own copy of the space: a resume never depends on the original file."""
    copies = sorted(run_dir.glob("*.yaml"))
    if not copies:
        raise UserError(f"{run_dir}: the copy of the search space (*.yaml) is missing")
    return copies[0]


def _write_json(path: Path, obj) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(obj, indent=2, default=_np_default))
    os.replace(tmp, path)


def _np_default(x):
    if hasattr(x, "item"):
        return x.item()
    raise TypeError(f"not JSON serialisable: {type(x).__name__}")
