"""The fitness evaluation as a Ray Tune function trainable: a short training on train, scored
on valid. The test split is not even shipped to trials, so selection can never touch it."""
from __future__ import annotations

import math
import time

import torch
from ray import tune

from evo_msa.config import RunConfig
from evo_msa.data.dataset import MSAData
from evo_msa.metrics import metric_direction
from evo_msa.train.trainer import Trainer


def evaluate_fitness(config: dict, data: MSAData, report=tune.report) -> dict:
    """Train one candidate; report per-epoch progress (for ASHA) and the final fitness.

    Never raises for a bad candidate: an exception, NaN or OOM becomes a result with
    status "error"/"nan" that the searcher turns into a penalty fitness.
    """
    t0 = time.perf_counter()
    metric = config["metric"]
    sign = 1.0 if metric_direction(metric) == "min" else -1.0
    best = [math.inf]

    def on_epoch(epoch: int, valid: dict) -> None:
        value = valid.get(metric, math.nan)
        if math.isfinite(value):
            best[0] = min(best[0], sign * value)
        report({"fitness": sign * best[0] if math.isfinite(best[0]) else math.nan,
                "epoch": epoch, "status": "running"})

    try:
        cfg = RunConfig.from_dict(config["run_config"], "trial config")
        trainer = Trainer(data, cfg, seed=config["seed"], device=config["device"])
        result = trainer.fit(eval_splits=("valid",), on_epoch=on_epoch)
        valid = result.metrics["valid"]
        fitness = valid.get(metric)
        if fitness is None:
            raise KeyError(f"fitness metric {metric!r} is not a validation metric "
                           f"(have: {', '.join(sorted(valid))})")
        final = {"fitness": float(fitness), "status": "ok" if math.isfinite(fitness) else "nan",
                 "epoch": result.epochs, "epochs": result.epochs,
                 "seconds": round(time.perf_counter() - t0, 3),
                 **{f"valid_{k}": v for k, v in valid.items()}}
    except Exception as exc:  # noqa: BLE001 - any failure of a candidate is its fitness
        if isinstance(exc, torch.cuda.OutOfMemoryError):
            torch.cuda.empty_cache()
        status = "nan" if "non-finite" in str(exc) or "never finite" in str(exc) else "error"
        final = {"fitness": math.nan, "status": status, "epoch": 0, "epochs": 0,
                 "seconds": round(time.perf_counter() - t0, 3),
                 "error": f"{type(exc).__name__}: {str(exc).splitlines()[0][:300] if str(exc) else ''}"}
    report(final)
    return final


def fitness_trainable(config: dict, data: MSAData | None = None, threads: int = 1) -> None:
    torch.set_num_threads(max(1, threads))
    evaluate_fitness(config, data)
