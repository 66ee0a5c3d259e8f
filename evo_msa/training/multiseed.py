"""Train configurations with several seeds each, as one population; summarise and write the
metrics: `evo-msa train`, the final trainer of a search, a study's train variants."""
from __future__ import annotations

import math
import posixpath
import time
from typing import Callable, Sequence

import numpy as np
import pandas as pd

from evo_msa.config import RunConfig
from evo_msa.data.dataset import MSAData
from evo_msa.progress import QUIET_S, Heartbeat, clock
from evo_msa.record import rundir
from evo_msa.record.rundir import RunDir, seed_folder
from evo_msa.status import Status
from evo_msa.training.trainer import PopulationTrainer, TrainingDiverged, TrainResult

SPLITS = ("train", "valid", "test")


def pool(table: pd.DataFrame) -> dict:
    """Mean and std over the rows of a per-seed table, of every <split>_<metric> column:
    {"test": {"mae": {"mean": m, "std": s}, ...}, "valid": {...}} (NaN and inf left out)."""
    out: dict = {}
    for col in table.columns:
        split, _, metric = col.partition("_")
        if split in SPLITS and metric:
            vals = pd.to_numeric(table[col], errors="coerce").to_numpy(dtype=float)
            vals = vals[np.isfinite(vals)]
            out.setdefault(split, {})[metric] = {
                "mean": float(vals.mean()) if len(vals) else math.nan,
                "std": float(vals.std(ddof=1)) if len(vals) > 1 else 0.0}
    return out


def summarise(results: list[TrainResult], seeds: list[int]) -> dict:
    """{"test": {"mae": {"mean": m, "std": s}, ...}, "valid": {...}, "seeds": [...], ...}"""
    summary = pool(per_seed_table(results, seeds))
    summary["seeds"] = list(seeds)
    summary["params"] = results[0].params
    summary["epochs"] = [r.epochs for r in results]
    summary["best_epochs"] = [r.best_epoch for r in results]
    summary["seconds"] = [round(r.seconds, 2) for r in results]
    return summary


def per_seed_table(results: list[TrainResult], seeds: list[int]) -> pd.DataFrame:
    """One row per seed: its epochs, parameters, time and every split's metrics."""
    rows = []
    for seed, r in zip(seeds, results):
        row = {"seed": seed, "params": r.params, "epochs": r.epochs, "best_epoch": r.best_epoch,
               "seconds": round(r.seconds, 3)}
        for split, metrics in r.metrics.items():
            row.update({f"{split}_{k}": v for k, v in metrics.items()})
        rows.append(row)
    return pd.DataFrame(rows)


def train_configs(data: MSAData, jobs: Sequence[tuple[RunConfig, Sequence[int]]], *,
                  device: str = "auto", log: Callable[[str], None] = print,
                  saves: Sequence[RunDir | None] | None = None, folder: str = "",
                  provenance: dict | None = None, names: Sequence[str] | None = None,
                  ) -> list[tuple[dict, pd.DataFrame]]:
    """Train every (config, seeds) job as one population of configs x seeds members, each with
    its own seed's data order, initialisation and dropout noise; per job, its summary and
    per-seed table. With `saves` (a run directory per job, or None), every seed's model is
    written to <folder>/seed_<s>/ of its job's run (see training.saved); `names` label the jobs
    in the log and in errors."""
    from evo_msa.training.saved import save_member

    configs = [cfg for cfg, seeds in jobs for _ in seeds]
    member_seeds = [s for _, seeds in jobs for s in seeds]
    # one population per text encoder (members of one train on the same text), else one
    groups: dict[tuple, list[int]] = {}
    for k, (cfg, _) in enumerate(jobs):
        groups.setdefault(cfg.pretrained.key, []).append(k)
    done: dict[int, tuple[dict, pd.DataFrame]] = {}
    seconds = 0.0
    head = "mae" if data.task == "regression" else "weighted_f1"
    for ks in groups.values():
        trainer = PopulationTrainer(data, [jobs[k][0] for k in ks for _ in jobs[k][1]],
                                    [s for k in ks for s in jobs[k][1]], device=device)
        results = trainer.fit(on_epoch=_progress(log, max(c.train.epochs for c in configs)))
        seconds += results[0].seconds
        start = 0
        for k in ks:
            seeds = list(jobs[k][1])
            label = f"{names[k]} " if names else ""
            save = saves[k] if saves else None
            rs = results[start:start + len(seeds)]
            for p, (seed, r) in enumerate(zip(seeds, rs), start):
                if r.status is not Status.OK:
                    raise TrainingDiverged(f"{label}seed {seed}: {r.error}")
                log(f"  {label}seed {seed}: {r.epochs} epochs (best {r.best_epoch}), valid loss "
                    f"{r.metrics['valid']['loss']:.4f}, test {head} "
                    f"{r.metrics['test'][head]:.4f}")
                if save is not None:  # what the model reads: the trainer's data (its text)
                    save_member(save, posixpath.join(folder, seed_folder(seed)), trainer.model,
                                p, seed, r, trainer.data.signature(), trainer.data.normalization,
                                provenance or {})
            done[k] = (summarise(rs, seeds), per_seed_table(rs, seeds))
            start += len(seeds)
    out = [done[k] for k in range(len(jobs))]
    what = (f"{len(member_seeds)} seed(s)" if len(jobs) == 1
            else f"{len(jobs)} configs x their seeds ({len(member_seeds)} members)")
    log(f"  {what} trained together in {seconds:.1f}s")
    return out


def train_seeds(data: MSAData, cfg: RunConfig, seeds: list[int], *, device: str = "auto",
                log: Callable[[str], None] = print, save: RunDir | None = None,
                folder: str = "", provenance: dict | None = None) -> tuple[dict, pd.DataFrame]:
    """Train one config with several seeds, as one population; summary and per-seed table.
    With `save`, every seed's model is written to <folder>/seed_<s>/ (see training.saved)."""
    return train_configs(data, [(cfg, seeds)], device=device, log=log, saves=[save],
                         folder=folder, provenance=provenance)[0]


def write_run_metrics(run: RunDir | None, summary: dict, table: pd.DataFrame, *, data: str,
                      provenance: dict, config: RunConfig | None = None, **extra) -> dict:
    """Complete a training's summary with what was trained on what (the run config, the data
    spec and its provenance, `extra`), and write it and the per-seed table into `run` as
    metrics.json and metrics.csv (nothing without a run); the summary."""
    if config is not None:
        summary["run_config"] = config.to_dict()
    summary["data"] = data
    summary["provenance"] = provenance
    summary.update(extra)
    if run is not None:
        run.write_json(rundir.METRICS_JSON, summary)
        run.write_csv(rundir.METRICS_CSV, table)
    return summary


def format_summary(summary: dict, split: str = "test") -> str:
    """A short two-column table of mean +- std; a deterministic model (a baseline fitted once)
    has no spread over seeds, and its values are shown without one."""
    if (summary.get("baseline") or {}).get("deterministic"):
        lines = [f"{split} metrics (deterministic: one fit, the same for every seed):"]
        lines += [f"  {name:<16} {v['mean']:.4f}" for name, v in summary[split].items()]
        return "\n".join(lines)
    lines = [f"{split} metrics over seeds {summary['seeds']}:"]
    for name, v in summary[split].items():
        lines.append(f"  {name:<16} {v['mean']:.4f} +- {v['std']:.4f}")
    return "\n".join(lines)


def _progress(log: Callable[[str], None], epochs: int, every_s: float = QUIET_S):
    """Where the seeds stand while they train (long final trainings): epoch of the cap, seeds
    still training, valid loss, elapsed and an upper bound of the time left (early stopping
    ends it sooner). Under a search's heartbeat (progress.Heartbeat) the line is its status,
    said when the console has been quiet; else a line at most every `every_s` seconds."""
    start = last = time.perf_counter()

    def on_epoch(epoch: int, valid: list[dict | None]) -> None:
        nonlocal last
        now = time.perf_counter()
        losses = [v["loss"] for v in valid if v is not None and "loss" in v]
        if not losses:
            return
        per_epoch = (now - start) / epoch
        head = (f"  epoch {epoch}/{epochs}: {len(losses)} seed(s) still training, valid loss "
                f"{np.mean(losses):.4f}")

        def line() -> str:  # the time as it is said, not as it was at the epoch's end
            spent = time.perf_counter() - start
            return (f"{head}, elapsed {clock(spent)}, at most "
                    f"{clock(per_epoch * epochs - spent)} left (early stopping: sooner)")
        beat = Heartbeat.active
        if beat is not None:
            beat.status = line
        elif now - last >= every_s:
            last = now
            log(line())
    return on_epoch
