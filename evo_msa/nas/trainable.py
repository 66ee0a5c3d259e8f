"""The fitness evaluation as a Ray Tune function trainable: one trial trains a batch of genomes
(each with its seeds) as one population on train, scored on valid. The test split is not even
shipped to trials, so selection can never touch it.

Per epoch the trial reports the best fitness of its batch so far (what ASHA compares) and each
training's best validation metrics so far (what an early-stopped batch keeps). At the end it
reports one outcome per training. A batch that runs out of GPU memory is split in halves and
retried, not penalised; one training that diverges or fails is penalised alone (a member whose
config breaks the batch is found by bisection).
"""
from __future__ import annotations

import functools
import json
import math
import socket
import time
from typing import Callable

import torch

from evo_msa.config import RunConfig
from evo_msa.data.dataset import MSAData
from evo_msa.metrics import Objective
from evo_msa.nas.policies import OUTCOME_ERROR, OUTCOME_OK, OUTCOME_PARTIAL
from evo_msa.training.trainer import MemberStatus, resolve_device, train_population


def evaluate_batch(config: dict, data: MSAData, report: Callable[[dict], None]) -> dict:
    """Train every member of `config["members"]`; never raises for a bad member."""
    t0 = time.perf_counter()
    members = config["members"]
    watch = list(config.get("watch", []))
    objective = Objective(**config["objective"]) if config.get("objective") else None
    device = resolve_device(config.get("device", "auto"))
    node, device_name = _where(device)
    partial: dict[int, dict] = {}  # member index -> best outcome so far
    best = [math.inf]  # the batch's best fitness so far, as a loss

    def on_epoch(epoch: int, valid: dict[int, dict | None]) -> None:
        for i, metrics in valid.items():
            if metrics is None or objective is None:
                continue
            value = objective.loss(metrics.get(objective.metric, math.nan))
            old = partial.get(i)
            if old is None or (math.isfinite(value) and value < old["loss"]):
                partial[i] = {"eval": members[i]["eval"], "seed": members[i]["seed"],
                              "status": OUTCOME_PARTIAL, "metrics": dict(metrics),
                              "epochs": epoch, "loss": value}
            if math.isfinite(value):
                best[0] = min(best[0], value)
        fitness = objective.sign * best[0] if objective and math.isfinite(best[0]) else math.nan
        result = {"fitness": fitness, "epoch": epoch, "node": node, "device": device_name,
                  "outcomes": json.dumps([{k: v for k, v in o.items() if k != "loss"}
                                          for o in partial.values()])}
        if config.get("track"):  # this epoch's validation metrics, for learning curves
            result["epoch_metrics"] = json.dumps([
                {"eval": members[i]["eval"], "seed": members[i]["seed"], "metrics": metrics}
                for i, metrics in valid.items() if metrics is not None])
        report(result)

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    outcomes = train_members(data, members, device, watch, on_epoch)
    final = {"fitness": math.nan, "epoch": max((o.get("epochs") or 0) for o in outcomes) + 1,
             "outcomes": json.dumps(outcomes), "node": node, "device": device_name,
             "seconds": round(time.perf_counter() - t0, 3), "population": len(members),
             "peak_memory_mb": peak_memory_mb(device)}
    if objective is not None:
        values = [objective.loss(o["metrics"].get(objective.metric, math.nan))
                  for o in outcomes if o["status"] == OUTCOME_OK]
        values = [v for v in values if math.isfinite(v)]
        if values:
            final["fitness"] = objective.sign * min(values)
    report(final)
    return final


def train_members(data: MSAData, members: list[dict], device: torch.device, watch: list[str],
                  on_epoch=None) -> list[dict]:
    """One outcome per member, splitting the population in halves on out-of-memory."""

    def train(indices: list[int]) -> list[dict]:
        cfgs = [RunConfig.from_dict(members[i]["config"], "trial config") for i in indices]
        hook = None
        if on_epoch is not None:
            hook = lambda epoch, valid: on_epoch(epoch, {indices[j]: v for j, v in valid.items()})  # noqa: E731
        results = train_population(data, cfgs, [members[i]["seed"] for i in indices],
                                   device=device, eval_splits=("valid",), watch=watch,
                                   on_epoch=hook)
        return [_outcome(members[i], r) for i, r in zip(indices, results)]

    def failed(indices: list[int], exc: BaseException) -> list[dict]:
        text = str(exc).splitlines()[0][:300] if str(exc) else ""
        return [{"eval": members[i]["eval"], "seed": members[i]["seed"], "status": OUTCOME_ERROR,
                 "metrics": {}, "epochs": 0, "error": f"{type(exc).__name__}: {text}"}
                for i in indices]

    return isolate_failures(train, list(range(len(members))), failed)


def isolate_failures(train: Callable[[list[int]], list[dict]], indices: list[int],
                     failed: Callable[[list[int], BaseException], list[dict]]) -> list[dict]:
    """Train `indices` together; if that raises (out of GPU memory, or one member's config
    breaks the program), train each half on its own, recursively. A batch that does not fit
    is so split until it does; a member that fails alone is the only one penalised."""
    try:
        return train(indices)
    except Exception as exc:  # noqa: BLE001 - any failure of a candidate is its fitness
        if isinstance(exc, torch.OutOfMemoryError) and torch.cuda.is_available():
            torch.cuda.empty_cache()
        if len(indices) == 1:
            return failed(indices, exc)
        half = len(indices) // 2
        return (isolate_failures(train, indices[:half], failed)
                + isolate_failures(train, indices[half:], failed))


def _outcome(member: dict, result) -> dict:
    ok = result.status is MemberStatus.OK
    return {"eval": member["eval"], "seed": member["seed"],
            "status": OUTCOME_OK if ok else result.status.value,
            "metrics": result.metrics.get("valid", {}), "epochs": result.epochs,
            "error": result.error}


def peak_memory_mb(device: torch.device) -> float:
    """Peak GPU memory allocated since the trial started, or the process's peak RSS on CPU."""
    if device.type == "cuda":
        return round(torch.cuda.max_memory_allocated(device) / 2**20, 1)
    import resource

    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)  # KiB on Linux


def _where(device: torch.device) -> tuple[str, str]:
    """(node, device) of this trial: host and Ray node id; CPU or the GPU's name."""
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


def fitness_trainable(config: dict, data: MSAData | None = None, threads: int = 1,
                      data_spec: str | None = None) -> None:
    from ray import tune

    torch.set_num_threads(max(1, threads))
    evaluate_batch(config, data if data is not None else search_split(data_spec), tune.report)


@functools.lru_cache(maxsize=1)
def search_split(spec: str) -> MSAData:
    """--data-on-nodes: the data read here, on the trial's node (once per actor: Tune reuses
    it for the next trial), without the test split, as the driver would have sent it."""
    from evo_msa.data import load_data

    data = load_data(spec)
    data.splits = {k: v for k, v in data.splits.items() if k != "test"}
    return data
