"""Evaluations per minute: one fixed set of genomes trained three ways, side by side in one run.

  (a) reference   a loop in the style of MMSA's trainers: torch DataLoader over CPU tensors,
                  each batch copied to the device, fp32, loss.item() every step, one genome
                  after another (the same HAEMSA and losses: a population of one)
  (b) ray x1      one Ray Tune trial per genome (the previous search's evaluation path)
  (c) ray batch   Ray Tune trials of several genomes trained as one population (the search's
                  path now); (c0) the same populations in-process, without Ray

Every way trains the same genomes with the same epochs and batch size (no early stopping).
Also printed: Ray overhead per trial, peak memory per trial, mean GPU utilisation (nvidia-smi,
when there is a GPU), and whether batching changes the fitness signal: Spearman correlation and
mean absolute difference between batched and one-at-a-time validation fitness, against the
seed-to-seed difference.

`--search-compare` also times `evo-msa search --space <haemsa.yaml of OLD> --pop 32` of an
older commit (default 919476c, the one-Ray-trial-per-genome search) against this checkout,
side by side, with the old commit's space file for both.

    python experiments/bench_throughput.py --out experiments/results/throughput
"""
from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from evo_msa.config import RunConfig  # noqa: E402
from evo_msa.data.dataset import SPLITS, MSAData, Split  # noqa: E402
from evo_msa.models import HAEMSA, DataInfo  # noqa: E402
from evo_msa.objectives import PopulationObjective, TaskLabels, TaskWeighting  # noqa: E402
from evo_msa.objectives.labels import coarse_labels  # noqa: E402
from evo_msa.space import load_space  # noqa: E402
from evo_msa.train import resolve_device, train_population  # noqa: E402

SHAPES = {  # name: (dims, seq_len, split sizes)
    "utterance": ({"text": 384, "audio": 73, "vision": 100}, 1, (1447, 265, 487)),  # MOSI v2
    "unaligned": ({"text": 768, "audio": 5, "vision": 20}, 50, (1284, 229, 686)),  # MMSA MOSI
}


def shaped_data(shape: str, seed: int = 0) -> MSAData:
    """Random data of a benchmark shape (throughput does not depend on the signal)."""
    dims, steps, sizes = SHAPES[shape]
    rng = np.random.default_rng(seed)
    splits = {}
    for name, n in zip(SPLITS, sizes):
        lengths = rng.integers(max(1, steps // 2), steps + 1, n) if steps > 1 else np.ones(n, int)
        feats = {m: rng.standard_normal((n, steps, d)).astype(np.float32) for m, d in dims.items()}
        splits[name] = Split(features=feats, lengths={m: lengths.astype(np.int64) for m in dims},
                             regression=np.clip(rng.normal(0, 1.5, n), -3, 3).astype(np.float32))
    return MSAData(name=f"bench:{shape}", splits=splits, task="regression", scale=3.0)


def genome_set(n: int, data: MSAData, epochs: int, batch: int, seed: int = 0) -> list[RunConfig]:
    space = load_space(ROOT / "search_spaces" / "haemsa.yaml")
    rng = random.Random(seed)
    configs = []
    for _ in range(n):
        cfg = space.to_config(space.sample(rng), available=data.modalities)
        cfg.train.epochs, cfg.train.patience, cfg.train.batch_size = epochs, epochs, batch
        configs.append(cfg)
    return configs


# ---- (a) the reference loop ------------------------------------------------------------------
def reference_loop(data: MSAData, cfg: RunConfig, seed: int, device: torch.device) -> float:
    """MMSA-style training of one genome; returns its final validation MAE."""
    from torch.utils.data import DataLoader, TensorDataset

    torch.manual_seed(seed)
    info = DataInfo.from_data(data)
    model = HAEMSA([cfg], info)
    weighting = TaskWeighting([cfg.objective], model.store)
    model.build(device, [seed]).train()
    objective = PopulationObjective([cfg.objective], model)
    weighting.setup(objective.weights, objective.active)
    mods = model.modalities
    tr = data.splits["train"]
    tensors = [torch.from_numpy(tr.features[m]) for m in mods]
    tensors += [torch.from_numpy(tr.lengths[m]) for m in mods]
    tensors.append(torch.from_numpy(tr.regression))
    loader = DataLoader(TensorDataset(*tensors), batch_size=cfg.train.batch_size, shuffle=True,
                        drop_last=True)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.train.lr,
                            weight_decay=cfg.train.weight_decay)
    k = len(mods)
    for _ in range(cfg.train.epochs):
        model.train()
        total = 0.0
        for batch in loader:
            batch = [b.to(device) for b in batch]  # a host-to-device copy per step
            x = {m: batch[i][None] for i, m in enumerate(mods)}
            n = {m: batch[k + i][None] for i, m in enumerate(mods)}
            y = batch[-1][None]
            model.noise.step += 1
            out = model(x, n)
            labels = TaskLabels(main=y, coarse=coarse_labels(y, cfg.objective.coarse_classes, 3.0))
            loss = weighting.combine(objective.losses(out, labels)).sum()
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.train.grad_clip)
            opt.step()
            total += loss.item()  # MMSA reads the loss back every step
        model.eval()
        va = data.splits["valid"]
        with torch.no_grad():
            x = {m: torch.from_numpy(va.features[m]).to(device)[None] for m in mods}
            n = {m: torch.from_numpy(va.lengths[m]).to(device)[None] for m in mods}
            pred = model(x, n).main[0].cpu()
        mae = float((pred - torch.from_numpy(va.regression)).abs().mean())
    return mae


# ---- (b) and (c) through Ray Tune ----------------------------------------------------------
def ray_way(data: MSAData, configs: list[RunConfig], per_trial: int, device: torch.device,
            resources: dict) -> dict:
    from ray import tune

    from evo_msa.search.trainable import fitness_trainable

    members = [{"eval": i, "seed": 0, "config": c.to_dict()} for i, c in enumerate(configs)]
    batches = [members[i:i + per_trial] for i in range(0, len(members), per_trial)]
    search_data = MSAData(name=data.name, task=data.task, scale=data.scale,
                          splits={k: v for k, v in data.splits.items() if k != "test"})
    trainable = tune.with_resources(
        tune.with_parameters(fitness_trainable, data=search_data,
                             threads=max(1, int(resources.get("cpu", 1)))), resources)
    t0 = time.perf_counter()
    tuner = tune.Tuner(trainable, param_space={
        "members": tune.grid_search(batches), "watch": ["loss"],
        "objective": {"metric": "loss", "direction": "min"}, "device": device.type},
        tune_config=tune.TuneConfig(num_samples=1, reuse_actors=True),
        run_config=tune.RunConfig(verbose=0, storage_path=tempfile.mkdtemp(prefix="bench-ray-")))
    results = tuner.fit()
    wall = time.perf_counter() - t0
    finals = [r.metrics for r in results]
    inner = [f["seconds"] for f in finals]
    slots = max(1, min(len(batches), int(resources_slots(resources))))
    return {"wall": wall, "trials": len(batches), "trial_seconds": statistics.fmean(inner),
            # the time a trial slot spends per trial beyond its own training: start-up,
            # scheduling, data from the object store, result plumbing
            "ray_overhead_per_trial": max(0.0, wall * slots / len(batches)
                                          - statistics.fmean(inner)),
            "peak_memory_mb": max(f.get("peak_memory_mb", 0) for f in finals),
            "fitness": {o["eval"]: o["metrics"].get("loss", math.nan)
                        for f in finals for o in json.loads(f["outcomes"])}}


def resources_slots(resources: dict) -> float:
    import ray

    total = ray.cluster_resources()
    if resources.get("gpu"):
        return total.get("GPU", 0) / resources["gpu"]
    return total.get("CPU", 1) / resources.get("cpu", 1)


class GpuSampler:
    """Mean GPU utilisation from nvidia-smi, sampled every 200 ms while a way runs."""

    def __init__(self):
        self.samples: list[float] = []
        self.proc = None

    def __enter__(self):
        if shutil.which("nvidia-smi") and torch.cuda.is_available():
            self.proc = subprocess.Popen(
                ["nvidia-smi", "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits",
                 "-lms", "200"], stdout=subprocess.PIPE, text=True)
            threading.Thread(target=self._read, daemon=True).start()
        return self

    def _read(self):
        for line in self.proc.stdout:
            with contextlib.suppress(ValueError):
                self.samples.append(float(line.split(",")[0]))

    def __exit__(self, *exc):
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait()

    @property
    def mean(self) -> float | None:
        return round(statistics.fmean(self.samples), 1) if self.samples else None


def peak_rss_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def bench_shape(shape: str, args, device: torch.device) -> dict:
    data = shaped_data(shape)
    configs = genome_set(args.genomes, data, args.epochs, args.batch)
    n = len(configs)
    rows = {}
    log = lambda s: print(f"[{shape}] {s}", flush=True)  # noqa: E731
    # (c0) in-process populations: the training the batched trials do
    per_trial = args.batch_genomes or n
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    with GpuSampler() as gpu:
        t0 = time.perf_counter()
        batched = []
        for i in range(0, n, per_trial):
            batched += train_population(data, configs[i:i + per_trial], [0] * len(configs[i:i + per_trial]),
                                        device=device, eval_splits=("valid",))
        wall = time.perf_counter() - t0
    peak = (torch.cuda.max_memory_allocated() / 2**20 if device.type == "cuda" else peak_rss_mb())
    rows["c0 in-process batch"] = {"wall": wall, "gpu_util": gpu.mean, "peak_memory_mb": peak,
                                   "genomes_per_trial": per_trial}
    log(f"(c0) {n} genomes as populations of {per_trial}: {wall:.1f}s")
    fit_batched = [r.metrics["valid"]["loss"] for r in batched]
    # fitness agreement: one at a time, and another seed (batched)
    if args.agreement:
        alone = [train_population(data, [c], [0], device=device, eval_splits=("valid",))[0]
                 .metrics["valid"]["loss"] for c in configs]
        seed1 = []
        for i in range(0, n, per_trial):
            seed1 += [r.metrics["valid"]["loss"] for r in train_population(
                data, configs[i:i + per_trial], [1] * len(configs[i:i + per_trial]), device=device,
                eval_splits=("valid",))]
        from scipy.stats import spearmanr

        rows["agreement"] = {
            "spearman_batched_vs_alone": float(spearmanr(fit_batched, alone)[0]),
            "mean_abs_diff_batched_vs_alone": float(np.mean(np.abs(np.subtract(fit_batched, alone)))),
            "mean_abs_diff_seed0_vs_seed1": float(np.mean(np.abs(np.subtract(fit_batched, seed1)))),
            "std_over_seeds": float(np.mean(np.std([fit_batched, seed1], axis=0, ddof=1)))}
        log(f"agreement {rows['agreement']}")
    # (a) reference loop
    if "a" in args.ways:
        k = min(n, args.reference_genomes or n)
        with GpuSampler() as gpu:
            t0 = time.perf_counter()
            for c in configs[:k]:
                reference_loop(data, c, 0, device)
            wall = (time.perf_counter() - t0) * n / k  # extrapolated to every genome when k < n
        rows["a reference loop"] = {"wall": wall, "gpu_util": gpu.mean, "measured_genomes": k}
        log(f"(a) reference: {wall / n:.2f}s per genome ({k} measured)")
    if "b" in args.ways or "c" in args.ways:
        import ray

        ray.init(include_dashboard=False, log_to_driver=False, configure_logging=True,
                 logging_level="ERROR")
        res = {"cpu": 1, "gpu": args.gpus_per_trial} if device.type == "cuda" else {"cpu": 1}
        try:
            if "b" in args.ways:
                with GpuSampler() as gpu:
                    out = ray_way(data, configs, 1, device, res)
                rows["b ray, 1 genome per trial"] = {**{k: v for k, v in out.items()
                                                        if k != "fitness"}, "gpu_util": gpu.mean}
                log(f"(b) {out['wall']:.1f}s, overhead per trial {out['ray_overhead_per_trial']:.2f}s")
            if "c" in args.ways:
                per = args.batch_genomes or max(1, math.ceil(n / max(1, int(resources_slots(res)))))
                with GpuSampler() as gpu:
                    out = ray_way(data, configs, per, device, res)
                rows[f"c ray, {per} genomes per trial"] = {
                    **{k: v for k, v in out.items() if k != "fitness"}, "gpu_util": gpu.mean}
                log(f"(c) {out['wall']:.1f}s, overhead per trial {out['ray_overhead_per_trial']:.2f}s")
        finally:
            ray.shutdown()
    for row in rows.values():
        if "wall" in row:
            row["evaluations_per_minute"] = round(60 * n / row["wall"], 2)
    ref = rows.get("a reference loop", {}).get("evaluations_per_minute")
    one = rows.get("b ray, 1 genome per trial", {}).get("evaluations_per_minute")
    for row in rows.values():
        if "evaluations_per_minute" in row:
            if ref:
                row["x_vs_a"] = round(row["evaluations_per_minute"] / ref, 2)
            if one:
                row["x_vs_b"] = round(row["evaluations_per_minute"] / one, 2)
    return {"shape": shape, "genomes": n, "epochs": args.epochs, "batch_size": args.batch,
            "ways": rows}


# ---- the search, old commit against this checkout ----------------------------------------
def search_compare(args) -> dict:
    old = Path(tempfile.mkdtemp(prefix="evo-msa-old-"))
    subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "-f", "--detach", str(old),
                    args.old_commit], check=True, capture_output=True)
    space = old / "search_spaces" / "haemsa.yaml"  # the old space file, for both
    out = {}
    try:
        for name, tree, extra in (("old", old, ["--final-seeds", "0"]),
                                  ("new", ROOT, ["--final-seeds"])):
            run_dir = Path(tempfile.mkdtemp(prefix=f"bench-search-{name}-")) / "run"
            cmd = [sys.executable, "-m", "evo_msa", "search", "--space", str(space), "--pop",
                   str(args.pop), "--generations", str(args.generations), "--seed", "0",
                   "--out", str(run_dir), *extra]
            env = dict(os.environ, PYTHONPATH=str(tree))
            t0 = time.perf_counter()
            proc = subprocess.run(cmd, cwd=tree, env=env, capture_output=True, text=True)
            wall = time.perf_counter() - t0
            if proc.returncode != 0:
                raise SystemExit(f"{name} search failed:\n{proc.stderr[-3000:]}")
            import pandas as pd

            board = pd.read_csv(run_dir / "leaderboard.csv")
            trained = int(board["status"].isin(["ok", "nan", "error", "early-stopped"]).sum())
            last = [m for m in re.finditer(r"elapsed (\d+)m(\d+)s", proc.stdout)][-1]
            loop = int(last.group(1)) * 60 + int(last.group(2))
            out[name] = {"evaluations": len(board), "trained": trained, "process_wall": wall,
                         "search_elapsed": loop,
                         "evaluations_per_minute": round(60 * len(board) / wall, 2),
                         "best_valid": float(board.loc[board["status"] == "ok", "fitness"].min())}
            print(f"[search] {name}: {len(board)} evaluations in {wall:.0f}s "
                  f"({out[name]['evaluations_per_minute']}/min)", flush=True)
    finally:
        subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(old)],
                       capture_output=True)
    out["ratio"] = round(out["new"]["evaluations_per_minute"] / out["old"]["evaluations_per_minute"], 2)
    return out


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"CPU ({os.cpu_count()} cores)"


def markdown(report: dict) -> str:
    lines = [f"# Throughput on {report['device']}", "",
             f"`{report['command']}` (torch {torch.__version__}, {report['date']})", ""]
    for shape in report["shapes"]:
        lines += [f"## {shape['shape']}: {shape['genomes']} genomes, {shape['epochs']} epochs, "
                  f"batch {shape['batch_size']}", "",
                  "| way | evaluations/min | x vs (a) | x vs (b) | Ray overhead/trial s | "
                  "peak memory MB | GPU util % |", "|---|---|---|---|---|---|---|"]
        for way, row in shape["ways"].items():
            if way == "agreement":
                continue
            lines.append(f"| {way} | {row.get('evaluations_per_minute', '')} | "
                         f"{row.get('x_vs_a', '')} | {row.get('x_vs_b', '')} | "
                         f"{_fmt(row.get('ray_overhead_per_trial'))} | "
                         f"{_fmt(row.get('peak_memory_mb'))} | {row.get('gpu_util') or ''} |")
        if "agreement" in shape["ways"]:
            a = shape["ways"]["agreement"]
            lines += ["", f"Fitness signal: Spearman(batched, one at a time) = "
                          f"{a['spearman_batched_vs_alone']:.3f}; mean |batched - alone| = "
                          f"{a['mean_abs_diff_batched_vs_alone']:.4f}; std over seeds "
                          f"{a['std_over_seeds']:.4f}."]
        lines.append("")
    if "search" in report:
        s = report["search"]
        lines += ["## The search, side by side", "",
                  f"`evo-msa search --space <{report['old_commit']}>/search_spaces/haemsa.yaml "
                  f"--pop {report['pop']} --generations {report['generations']}` "
                  "(final trainer off), synthetic:mosi:", "",
                  "| code | evaluations | process wall s | evaluations/min | best valid loss |",
                  "|---|---|---|---|---|"]
        for name in ("old", "new"):
            r = s[name]
            label = report["old_commit"] if name == "old" else "this checkout"
            lines.append(f"| {label} | {r['evaluations']} | {r['process_wall']:.0f} | "
                         f"{r['evaluations_per_minute']} | {r['best_valid']:.4f} |")
        lines += ["", f"Ratio: **{s['ratio']}x** evaluations per minute.", ""]
    return "\n".join(lines)


def _fmt(x):
    return "" if x is None else f"{x:.2f}" if isinstance(x, float) else str(x)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--shapes", default="utterance,unaligned")
    p.add_argument("--genomes", type=int, default=32)
    p.add_argument("--epochs", type=int, default=12)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--ways", default="a,b,c")
    p.add_argument("--reference-genomes", type=int, default=0,
                   help="time (a) on this many genomes and extrapolate (0 = all)")
    p.add_argument("--batch-genomes", type=int, default=0, help="genomes per batched trial")
    p.add_argument("--gpus-per-trial", type=float, default=0.25)
    p.add_argument("--agreement", action="store_true", help="also measure the fitness signal")
    p.add_argument("--search-compare", action="store_true")
    p.add_argument("--old-commit", default="919476c")
    p.add_argument("--pop", type=int, default=32)
    p.add_argument("--generations", type=int, default=2)
    p.add_argument("--device", default="auto")
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--out", default=None, help="folder for throughput-<device>.json/.md")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    report = {"device": device_name(device), "command": " ".join(sys.argv),
              "date": time.strftime("%Y-%m-%d"), "old_commit": args.old_commit, "pop": args.pop,
              "generations": args.generations, "shapes": []}
    for shape in [s for s in args.shapes.split(",") if s]:
        report["shapes"].append(bench_shape(shape, args, device))
    if args.search_compare:
        report["search"] = search_compare(args)
    text = markdown(report)
    print(text)
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        stem = "throughput-" + re.sub(r"[^a-z0-9]+", "-", report["device"].lower()).strip("-")
        (out / f"{stem}.json").write_text(json.dumps(report, indent=2))
        (out / f"{stem}.md").write_text(text)


if __name__ == "__main__":
    main()
