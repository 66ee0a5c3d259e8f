"""Train one configuration with several seeds and summarise: `evo-msa train` and the final trainer."""
from __future__ import annotations

import math
import posixpath
import time
from typing import Callable

import numpy as np
import pandas as pd

from evo_msa.config import RunConfig
from evo_msa.data.dataset import MSAData
from evo_msa.rundir import RunDir, seed_folder
from evo_msa.status import Status
from evo_msa.training.trainer import PopulationTrainer, TrainingDiverged, TrainResult


def summarise(results: list[TrainResult], seeds: list[int]) -> dict:
    """{"test": {"mae": {"mean": m, "std": s}, ...}, "valid": {...}, "seeds": [...]}"""
    summary: dict = {}
    for split in results[0].metrics:
        names = results[0].metrics[split]
        summary[split] = {}
        for name in names:
            values = np.array([r.metrics[split][name] for r in results], dtype=float)
            finite = values[np.isfinite(values)]
            summary[split][name] = {
                "mean": float(finite.mean()) if len(finite) else math.nan,
                "std": float(finite.std(ddof=1)) if len(finite) > 1 else 0.0}
    summary["seeds"] = list(seeds)
    summary["params"] = results[0].params
    summary["epochs"] = [r.epochs for r in results]
    summary["best_epochs"] = [r.best_epoch for r in results]
    summary["seconds"] = [round(r.seconds, 2) for r in results]
    return summary


def per_seed_table(results: list[TrainResult], seeds: list[int]) -> pd.DataFrame:
    rows = []
    for seed, r in zip(seeds, results):
        row = {"seed": seed, "params": r.params, "epochs": r.epochs, "best_epoch": r.best_epoch,
               "seconds": round(r.seconds, 3)}
        for split, metrics in r.metrics.items():
            row.update({f"{split}_{k}": v for k, v in metrics.items()})
        rows.append(row)
    return pd.DataFrame(rows)


def train_seeds(data: MSAData, cfg: RunConfig, seeds: list[int], *, device: str = "auto",
                log: Callable[[str], None] = print, save: RunDir | None = None,
                folder: str = "", provenance: dict | None = None) -> tuple[dict, pd.DataFrame]:
    """Train one config with several seeds, as one population; summary and per-seed table.
    With `save`, every seed's model is written to <folder>/seed_<s>/ (see training.saved)."""
    from evo_msa.training.saved import save_member

    trainer = PopulationTrainer(data, [cfg] * len(seeds), seeds, device=device)
    results = trainer.fit(on_epoch=_progress(log, cfg.train.epochs))
    head = "mae" if data.task == "regression" else "weighted_f1"
    for p, (seed, r) in enumerate(zip(seeds, results)):
        if r.status is not Status.OK:
            raise TrainingDiverged(f"seed {seed}: {r.error}")
        log(f"  seed {seed}: {r.epochs} epochs (best {r.best_epoch}), valid loss "
            f"{r.metrics['valid']['loss']:.4f}, test {head} {r.metrics['test'][head]:.4f}")
        if save is not None:
            save_member(save, posixpath.join(folder, seed_folder(seed)), trainer.model, p, seed,
                        r, data.signature(), data.normalization, provenance or {})
    log(f"  {len(seeds)} seed(s) trained together in {results[0].seconds:.1f}s")
    return summarise(results, seeds), per_seed_table(results, seeds)


def format_summary(summary: dict, split: str = "test") -> str:
    """A short two-column table of mean +- std."""
    lines = [f"{split} metrics over seeds {summary['seeds']}:"]
    for name, v in summary[split].items():
        lines.append(f"  {name:<16} {v['mean']:.4f} +- {v['std']:.4f}")
    return "\n".join(lines)


def _progress(log: Callable[[str], None], epochs: int, every_s: float = 10.0):
    """A line at most every `every_s` seconds while the seeds train (long final trainings)."""
    last = [time.perf_counter()]

    def on_epoch(epoch: int, valid: list[dict | None]) -> None:
        now = time.perf_counter()
        if now - last[0] < every_s:
            return
        last[0] = now
        losses = [v["loss"] for v in valid if v is not None and "loss" in v]
        if losses:
            log(f"  epoch {epoch}/{epochs}: {len(losses)} seed(s) still training, valid loss "
                f"{np.mean(losses):.4f}")
    return on_epoch
