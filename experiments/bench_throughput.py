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

`--data PKL` adds the shape "data": a real package (e.g. MOSI's MiniLM tokens, T = 50).
`--encoder gru` gives every genome that sequence encoder; (a) then runs each GRU expert as
torch.nn.GRU over packed sequences (pack_padded_sequence), the rest of the network unchanged:
the MMSA-style per-genome loop the batched path has to beat on sequences. `--space` draws the
genomes from another space file.

`--search-compare` also times `evo-msa search --space <haemsa.yaml of OLD> --pop 32` of an
older commit (default 919476c, the one-Ray-trial-per-genome search) against this checkout,
side by side, with the old commit's space file for both (equal work: evaluations, trained
genomes and member-epochs per minute).

`--time-to-quality` runs the default search of an older commit (default 6685d45) and of this
checkout side by side, one search seed after the other (old, new, old, new, ...), on real data
(default MOSI MiniLM, the old commit's haemsa_small_data.yaml for both): minutes from the start
of the process until the best full-budget validation fitness (leaderboard rows ok or cached,
polled every second) first reaches `--threshold`, and the final trainer's test metrics of each
search's pick (5 seeds). `--ttq-stop-at-threshold` kills each search there instead (the time to
the threshold only): six search seeds of both codes in about 20 minutes.

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
import signal
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
from evo_msa.data import DataInfo  # noqa: E402
from evo_msa.data.dataset import SPLITS, MSAData, Split  # noqa: E402
from evo_msa.losses import TaskLabels  # noqa: E402
from evo_msa.losses.labels import coarse_labels  # noqa: E402
from evo_msa.record import rundir  # noqa: E402
from evo_msa.space import load_space  # noqa: E402
from evo_msa.status import Status  # noqa: E402
from evo_msa.training import build_population, resolve_device, train_population  # noqa: E402

SHAPES = {  # name: (dims, seq_len, split sizes)
    "utterance": ({"text": 384, "audio": 73, "vision": 100}, 1, (1447, 265, 487)),  # MOSI v2
    "unaligned": ({"text": 768, "audio": 5, "vision": 20}, 50, (1284, 229, 686)),  # MMSA MOSI
}


def shaped_data(shape: str, seed: int = 0, path: str | None = None) -> MSAData:
    """Random data of a benchmark shape (throughput does not depend on the signal), or the
    package at `path` for the shape "data"."""
    if shape == "data":
        from evo_msa.data import load_data

        if not path:
            raise SystemExit("the shape 'data' needs --data PKL")
        return load_data(path)
    dims, steps, sizes = SHAPES[shape]
    rng = np.random.default_rng(seed)
    splits = {}
    for name, n in zip(SPLITS, sizes):
        lengths = rng.integers(max(1, steps // 2), steps + 1, n) if steps > 1 else np.ones(n, int)
        feats = {m: rng.standard_normal((n, steps, d)).astype(np.float32) for m, d in dims.items()}
        splits[name] = Split(features=feats, lengths={m: lengths.astype(np.int64) for m in dims},
                             regression=np.clip(rng.normal(0, 1.5, n), -3, 3).astype(np.float32))
    return MSAData(name=f"bench:{shape}", splits=splits, task="regression", scale=3.0)


def genome_set(n: int, data: MSAData, epochs: int, batch: int, seed: int = 0,
               space: str | None = None, encoder: str = "") -> list[RunConfig]:
    space = load_space(space or ROOT / "search_spaces" / "haemsa.yaml")
    rng = random.Random(seed)
    configs = []
    for _ in range(n):
        cfg = space.to_config(space.sample(rng), available=data.modalities)
        cfg.train.epochs, cfg.train.patience, cfg.train.batch_size = epochs, epochs, batch
        if encoder:  # every modality, so a space's per-modality genes cannot undo it
            cfg.model.encoder = encoder
            for m in ("text", "audio", "vision"):
                setattr(cfg.model, f"{m}_encoder", "")
        configs.append(cfg)
    return configs


# ---- (a) the reference loop ------------------------------------------------------------------
def reference_loop(data: MSAData, cfg: RunConfig, seed: int, device: torch.device) -> float:
    """MMSA-style training of one genome; returns its best validation MAE over the epochs (the
    fitness the population trainer reports: L1 on valid at the best epoch)."""
    from torch.utils.data import DataLoader, TensorDataset

    torch.manual_seed(seed)
    model, population_loss, weighting = build_population([cfg], DataInfo.from_data(data), [seed],
                                                         device)
    grus = torch_gru_experts(model, data)
    model.train()
    mods = model.modalities
    tr = data.splits["train"]
    tensors = [torch.from_numpy(tr.features[m]) for m in mods]
    tensors += [torch.from_numpy(tr.lengths[m]) for m in mods]
    tensors.append(torch.from_numpy(tr.regression))
    loader = DataLoader(TensorDataset(*tensors), batch_size=cfg.train.batch_size, shuffle=True,
                        drop_last=True)
    opt = torch.optim.AdamW([*model.parameters(), *grus.parameters()], lr=cfg.train.lr,
                            weight_decay=cfg.train.weight_decay)
    k = len(mods)
    best = math.inf
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
            labels = TaskLabels(main=y, coarse=coarse_labels(y, cfg.loss.coarse_classes, 3.0))
            loss = weighting.combine(population_loss.losses(out, labels)).sum()
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_([*model.parameters(), *grus.parameters()],
                                           cfg.train.grad_clip)
            opt.step()
            total += loss.item()  # MMSA reads the loss back every step
        model.eval()
        va = data.splits["valid"]
        with torch.no_grad():
            x = {m: torch.from_numpy(va.features[m]).to(device)[None] for m in mods}
            n = {m: torch.from_numpy(va.lengths[m]).to(device)[None] for m in mods}
            pred = model(x, n).main[0].cpu()
        mae = float((pred - torch.from_numpy(va.regression)).abs().mean())
        best = min(best, mae) if math.isfinite(mae) else best
    return best


def torch_gru_experts(model, data: MSAData) -> torch.nn.ModuleList:
    """Make every GRU expert of a population of one run torch.nn.GRU over its packed steps (a
    PackedSequence: what pack_padded_sequence makes of the padded batch; its own weights,
    PyTorch's init), then the expert's block as before; returns the GRUs, whose parameters
    the caller optimises. Experts of other kinds are left as they are."""
    from torch.nn.utils.rnn import PackedSequence

    grus = torch.nn.ModuleList()
    width = model.configs[0].model.expert_dim
    for m, expert in model.experts.items():
        if expert.kinds != ["gru"]:
            continue
        gru = torch.nn.GRU(data.dims[m], width, batch_first=True).to(model.device)
        grus.append(gru)

        def forward(params, x, lengths, rate, noise, mean=None, expert=expert, gru=gru):
            lay = x.layout
            packed = PackedSequence(x.x[0], torch.tensor(lay.counts), lay.perm[0], lay.inv[0])
            h = gru(packed)[1][0]  # (B, width), batch order
            h = torch.nn.functional.pad(h, (0, expert.gru_width - width))
            return expert.blocks["gru"](params, h[None], rate, noise, expert.name)

        expert.forward = forward
    return grus


# ---- (b) and (c) through Ray Tune ----------------------------------------------------------
def ray_way(data: MSAData, configs: list[RunConfig], per_trial: int, device: torch.device,
            resources: dict) -> dict:
    from ray import tune

    from evo_msa.data import DataInfo
    from evo_msa.nas.evaluators.haemsa import HaemsaEvaluator
    from evo_msa.nas.execution.tune import trial
    from evo_msa.space import parse_space

    members = [{"eval_id": i, "seed": 0, "config": c.to_dict()} for i, c in enumerate(configs)]
    batches = [members[i:i + per_trial] for i in range(0, len(members), per_trial)]
    # the fitness every trial reports: the validation loss (the genes are in the members)
    space = parse_space({"genes": {"model.depth": {"type": "int", "low": 0, "high": 1}}},
                        "bench")
    evaluator = HaemsaEvaluator(space, DataInfo.from_data(data), data=data, device=device.type)
    trainable = tune.with_resources(
        tune.with_parameters(trial, evaluator=evaluator,
                             threads=max(1, int(resources.get("cpu", 1)))), resources)
    t0 = time.perf_counter()
    tuner = tune.Tuner(trainable, param_space={"members": tune.grid_search(batches)},
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
            "fitness": {o["eval_id"]: o["metrics"].get("loss", math.nan)
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


def warm_up() -> None:
    """A process's one-time costs, paid before any way is timed: torch.optim's first AdamW
    step imports for ~1.5 s (it would land on (a)'s first genome)."""
    p = torch.zeros(4, requires_grad=True)
    opt = torch.optim.AdamW([p])
    p.sum().backward()
    opt.step()


def bench_shape(shape: str, args, device: torch.device) -> dict:
    warm_up()
    data = shaped_data(shape, path=args.data)
    configs = genome_set(args.genomes, data, args.epochs, args.batch, space=args.space,
                         encoder=args.encoder)
    n = len(configs)
    rows = {}
    fitness: dict[str, list[float]] = {}  # way: validation fitness per genome (nan = not run)
    ways = set(args.ways.split(","))
    log = lambda s: print(f"[{shape}] {s}", flush=True)  # noqa: E731
    log(f"uptime before: {uptime()}")
    load_before = uptime()
    # (c0) in-process populations: the training the batched trials do
    per_trial = args.batch_genomes or n
    if "c0" in ways or "c" in ways or args.agreement:
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats()
        with GpuSampler() as gpu:
            t0 = time.perf_counter()
            batched = []
            for i in range(0, n, per_trial):
                part = configs[i:i + per_trial]
                batched += train_population(data, part, [0] * len(part), device=device,
                                            eval_splits=("valid",))
            wall = time.perf_counter() - t0
        peak = (torch.cuda.max_memory_allocated() / 2**20 if device.type == "cuda"
                else peak_rss_mb())
        rows["c0 in-process batch"] = {"wall": wall, "gpu_util": gpu.mean, "peak_memory_mb": peak,
                                       "genomes_per_trial": per_trial,
                                       "populations": sorted({r.population for r in batched})}
        fitness["c0"] = [r.metrics["valid"]["loss"] for r in batched]
        log(f"(c0) {n} genomes as populations of {per_trial}: {wall:.1f}s")
    # (a) reference loop, right after (c0): the ratio is side by side
    if "a" in ways:
        k = min(n, args.reference_genomes or n)
        with GpuSampler() as gpu:
            t0 = time.perf_counter()
            fitness["a"] = [reference_loop(data, c, 0, device) for c in configs[:k]]
            fitness["a"] += [math.nan] * (n - k)
            wall = (time.perf_counter() - t0) * n / k  # extrapolated to every genome when k < n
        rows["a reference loop"] = {"wall": wall, "gpu_util": gpu.mean, "measured_genomes": k,
                                    "peak_memory_mb": peak_rss_mb()}
        log(f"(a) reference: {wall / n:.2f}s per genome ({k} measured)")
    if "b" in ways or "c" in ways:
        import ray

        ray.init(include_dashboard=False, log_to_driver=False, configure_logging=True,
                 logging_level="ERROR")
        res = {"cpu": 1, "gpu": args.gpus_per_trial} if device.type == "cuda" else {"cpu": 1}
        try:
            if "c" in ways:
                per = args.batch_genomes or max(1, math.ceil(n / max(1, int(resources_slots(res)))))
                with GpuSampler() as gpu:
                    out = ray_way(data, configs, per, device, res)
                rows[f"c ray, {per} genomes per trial"] = {
                    **{k: v for k, v in out.items() if k != "fitness"}, "gpu_util": gpu.mean}
                fitness["c"] = [out["fitness"].get(i, math.nan) for i in range(n)]
                log(f"(c) {out['wall']:.1f}s, overhead per trial "
                    f"{out['ray_overhead_per_trial']:.2f}s")
            if "b" in ways:
                with GpuSampler() as gpu:
                    out = ray_way(data, configs, 1, device, res)
                rows["b ray, 1 genome per trial"] = {**{k: v for k, v in out.items()
                                                        if k != "fitness"}, "gpu_util": gpu.mean}
                fitness["b"] = [out["fitness"].get(i, math.nan) for i in range(n)]
                log(f"(b) {out['wall']:.1f}s, overhead per trial "
                    f"{out['ray_overhead_per_trial']:.2f}s")
        finally:
            ray.shutdown()
    # fitness agreement (not timed): batched (c0) against one at a time ((b)'s trials, each a
    # population of one, or in-process when (b) did not run), and against another seed
    if args.agreement:
        if "b" in fitness:
            alone, source = fitness["b"], "b (one Ray trial per genome)"
        else:
            alone = [train_population(data, [c], [0], device=device, eval_splits=("valid",))[0]
                     .metrics["valid"]["loss"] for c in configs]
            source = "in-process populations of one"
        fitness["alone"] = alone
        seed1 = []
        for i in range(0, n, per_trial):
            part = configs[i:i + per_trial]
            seed1 += [r.metrics["valid"]["loss"] for r in train_population(
                data, part, [1] * len(part), device=device, eval_splits=("valid",))]
        fitness["c0_seed1"] = seed1
        from scipy.stats import spearmanr

        fb = fitness["c0"]
        rows["agreement"] = {
            "alone_from": source,
            "spearman_batched_vs_alone": float(spearmanr(fb, alone)[0]),
            "mean_abs_diff_batched_vs_alone": float(np.mean(np.abs(np.subtract(fb, alone)))),
            "max_abs_diff_batched_vs_alone": float(np.max(np.abs(np.subtract(fb, alone)))),
            "mean_abs_diff_seed0_vs_seed1": float(np.mean(np.abs(np.subtract(fb, seed1)))),
            "std_over_seeds": float(np.mean(np.std([fb, seed1], axis=0, ddof=1)))}
        if "a" in fitness:
            k = rows["a reference loop"]["measured_genomes"]
            rows["agreement"]["mean_abs_diff_a_vs_c0"] = float(np.mean(np.abs(np.subtract(
                fitness["a"][:k], fb[:k]))))
        log(f"agreement {rows['agreement']}")
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
    log(f"uptime after: {uptime()}")
    genomes = [{"genome": i, "params_width": c.model.widest, "depth": c.model.depth,
                "modalities": "+".join(c.model.modalities), "weighting": c.loss.weighting,
                "encoders": "+".join(c.model.encoder_of(m) for m in c.model.modalities
                                     if data.seq_lens.get(m, 1) > 1),
                **{f"fitness_{w}": f[i] for w, f in fitness.items()}}
               for i, c in enumerate(configs)]
    return {"shape": shape if shape != "data" else data.name, "genomes": n,
            "epochs": args.epochs, "batch_size": args.batch, "encoder": args.encoder or "space",
            "space": str(args.space or "search_spaces/haemsa.yaml"),
            "threads": torch.get_num_threads(), "load_before": load_before,
            "load_after": uptime(), "ways": rows, "per_genome": genomes}


def uptime() -> str:
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    except OSError:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return "unknown CPU"


WAY_COLUMNS = ["shape", "genomes", "epochs", "batch_size", "threads", "encoder", "way", "wall",
               "evaluations_per_minute", "x_vs_a", "x_vs_b", "trials", "trial_seconds",
               "ray_overhead_per_trial", "peak_memory_mb", "gpu_util", "measured_genomes",
               "genomes_per_trial"]


def write_csvs(report: dict, out: Path, stem: str) -> None:
    import csv

    with open(out / f"{stem}-ways.csv", "w", newline="") as f:
        w = csv.DictWriter(f, WAY_COLUMNS, extrasaction="ignore")
        w.writeheader()
        for sh in report["shapes"]:
            for way, row in sh["ways"].items():
                if way != "agreement":
                    w.writerow({**{k: sh.get(k, "") for k in WAY_COLUMNS[:6]}, "way": way,
                                **row})
    rows = [{"shape": sh["shape"], **g} for sh in report["shapes"] for g in sh["per_genome"]]
    if rows:
        cols = list(dict.fromkeys(k for r in rows for k in r))
        with open(out / f"{stem}-fitness.csv", "w", newline="") as f:
            w = csv.DictWriter(f, cols)
            w.writeheader()
            w.writerows(rows)


def step_analysis(shape: str, args, device: torch.device) -> dict:
    """Milliseconds per training step of one genome (P = 1, mean over 2 genomes) against per
    member of a population of P (one program): what bounds (c)/(a) on this device."""
    from evo_msa.training.trainer import PopulationTrainer

    data = shaped_data(shape, path=args.data)
    P = args.step_analysis
    configs = genome_set(P, data, 1, args.batch, space=args.space, encoder=args.encoder)
    steps = len(data.splits["train"].regression) // args.batch

    def epoch_ms(part):
        trainer = PopulationTrainer(data, part, [0] * len(part), device=device)
        trainer.train_epoch()  # warm-up
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        trainer.train_epoch()
        if device.type == "cuda":
            torch.cuda.synchronize()
        return 1000 * (time.perf_counter() - t0) / steps

    one = statistics.fmean(epoch_ms([c]) for c in configs[:2])
    many = epoch_ms(configs)
    out = {"shape": shape, "P": P, "ms_per_step_P1": one, "ms_per_step_P": many,
           "ms_per_member_step_P": many / P, "ideal_speedup": one / (many / P)}
    print(f"[{shape}] steps: P=1 {one:.1f} ms/step; P={P} {many:.1f} ms/step = "
          f"{many / P:.1f} ms per member-step ({one / (many / P):.1f}x)", flush=True)
    return out


# ---- the search, old commit against this checkout ----------------------------------------
@contextlib.contextmanager
def old_checkout(commit: str):
    """`commit` checked out into a temporary folder (a detached git worktree), removed after."""
    old = Path(tempfile.mkdtemp(prefix="evo-msa-old-"))
    subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "-f", "--detach", str(old),
                    commit], check=True, capture_output=True)
    try:
        yield old
    finally:
        subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(old)],
                       capture_output=True)


def timed_search(tree: Path, options: list[str], threshold: float | None = None,
                 name: str = "", stop_at_threshold: bool = False) -> dict:
    """`evo-msa search` of the code in `tree`; polls the leaderboard every second for the first
    time its best full-budget fitness (ok or cached rows; lower is better) reached
    `threshold`. `stop_at_threshold` kills the search (and its Ray) there: the time to the
    threshold without the rest of the search, and no pick."""
    import pandas as pd

    run_dir = Path(tempfile.mkdtemp(prefix=f"bench-search-{name}-")) / "run"
    cmd = [sys.executable, "-m", "evo_msa", "search", *options, "--out", str(run_dir)]
    env = dict(os.environ, PYTHONPATH=str(tree))
    log = open(run_dir.parent / "stdout.txt", "w")
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=tree, env=env, stdout=log, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True)  # one group with its Ray
    reached, curve, last = None, [], math.inf
    board = run_dir / rundir.LEADERBOARD
    while proc.poll() is None:
        time.sleep(1.0)
        with contextlib.suppress(Exception):  # a leaderboard being replaced
            frame = pd.read_csv(board)
            full = frame[frame["status"].isin(Status.usable_values())]["fitness"].astype(float)
            best = float(full.min()) if len(full) else math.inf
            now = time.perf_counter() - t0
            if best < last:
                curve.append((round(now, 1), best))
                last = best
            if threshold is not None and reached is None and best <= threshold:
                reached = now
                if stop_at_threshold:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()
    wall = time.perf_counter() - t0
    log.close()
    output = (run_dir.parent / "stdout.txt").read_text()
    stopped = stop_at_threshold and reached is not None
    if proc.returncode != 0 and not stopped:
        raise SystemExit(f"{name} search failed:\n{output[-3000:]}")
    frame = pd.read_csv(board)
    trained = frame["status"].isin(Status.trained_values())
    full = frame["status"].isin(Status.usable_values())
    finished = re.search(r"search finished.*", output)
    out = {"run_dir": str(run_dir), "process_wall": wall, "evaluations": len(frame),
           "trained": int(trained.sum()),
           "full_budget": int((frame["status"] == "ok").sum()),
           "early_stopped": int((frame["status"] == "early-stopped").sum()),
           "member_epochs": float((frame.loc[trained, "epochs"].fillna(0)).sum()),
           "best_valid": float(frame.loc[full, "fitness"].min()), "curve": curve,
           "seconds_to_threshold": reached, "stopped_at_threshold": stopped,
           "finished_line": finished.group(0) if finished else ""}
    final = run_dir / rundir.FINAL_JSON
    if final.is_file():
        pick = json.loads(final.read_text())["genomes"][0]
        out["pick"] = {"id": pick["id"], "search_fitness": pick["search_fitness"][0],
                       **{f"test_{k}": pick["test"][k] for k in ("mae", "corr")
                          if k in pick.get("test", {})}}
    return out


def time_to_quality(args) -> dict:
    """Old commit against this checkout, search seed by search seed, on real data."""
    seeds = [int(x) for x in args.search_seeds.split(",")]
    out: dict = {"threshold": args.threshold, "data": args.ttq_data, "pop": args.pop,
                 "generations": args.ttq_generations, "seeds": seeds, "runs": []}
    with old_checkout(args.ttq_commit) as old:
        space = old / "search_spaces" / "haemsa_small_data.yaml"
        for seed in seeds:
            for name, tree in (("old", old), ("new", ROOT)):
                options = ["--space", str(space), "--data", args.ttq_data, "--pop",
                           str(args.pop), "--generations", str(args.ttq_generations),
                           "--seed", str(seed), "--final-seeds", *args.final_seeds.split(",")]
                load = uptime()
                r = timed_search(tree, options, args.threshold, name,
                                 stop_at_threshold=args.ttq_stop_at_threshold)
                r.update(code=name, seed=seed, load_before=load, load_after=uptime())
                out["runs"].append(r)
                reached = r["seconds_to_threshold"]
                print(f"[ttq] {name} seed {seed}: threshold "
                      f"{'not reached' if reached is None else f'{reached:.0f}s'}, "
                      f"{r['trained']} trainings in {r['process_wall']:.0f}s, best "
                      f"{r['best_valid']:.4f}, pick {r.get('pick')}", flush=True)
    for name in ("old", "new"):
        mine = [r for r in out["runs"] if r["code"] == name]
        times = [r["seconds_to_threshold"] if r["seconds_to_threshold"] is not None
                 else math.inf for r in mine]
        out[name] = {"median_seconds_to_threshold": statistics.median(times),
                     "reached": sum(math.isfinite(t) for t in times)}
    old_t, new_t = (out[n]["median_seconds_to_threshold"] for n in ("old", "new"))
    out["ratio"] = round(old_t / new_t, 2) if math.isfinite(new_t) and new_t > 0 else None
    return out


def search_compare(args) -> dict:
    """Equal work: the same search options on both, synthetic data, the old space file."""
    out = {}
    with old_checkout(args.old_commit) as old:
        space = old / "search_spaces" / "haemsa.yaml"  # the old space file, for both
        for name, tree, extra in (("old", old, ["--final-seeds", "0"]),
                                  ("new", ROOT, ["--final-seeds"])):
            load = uptime()
            r = timed_search(tree, ["--space", str(space), "--pop", str(args.pop),
                                    "--generations", str(args.generations), "--seed", "0",
                                    *extra], name=name)
            minutes = r["process_wall"] / 60
            r.update(load_before=load, load_after=uptime(),
                     evaluations_per_minute=round(r["evaluations"] / minutes, 2),
                     trained_per_minute=round(r["trained"] / minutes, 2),
                     full_budget_per_minute=round(r["full_budget"] / minutes, 2),
                     member_epochs_per_minute=round(r["member_epochs"] / minutes, 2))
            out[name] = r
            print(f"[search] {name}: {r['evaluations']} evaluations, {r['trained']} trained "
                  f"in {r['process_wall']:.0f}s ({r['trained_per_minute']}/min)", flush=True)
    for key in ("evaluations", "trained", "full_budget", "member_epochs"):
        out[f"ratio_{key}"] = round(out["new"][f"{key}_per_minute"]
                                    / max(out["old"][f"{key}_per_minute"], 1e-9), 2)
    out["ratio"] = out["ratio_trained"]
    return out


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"CPU {cpu_model()} ({os.cpu_count()} cores)"


def markdown(report: dict) -> str:
    lines = [f"# Throughput on {report['device']}", "",
             f"`{report['command']}` (torch {torch.__version__}, {report['date']})", ""]
    for shape in report["shapes"]:
        encoder = shape.get("encoder", "space")
        lines += [f"## {shape['shape']}: {shape['genomes']} genomes, {shape['epochs']} epochs, "
                  f"batch {shape['batch_size']}"
                  + (f", sequence encoder {encoder}" if encoder != "space" else ""), "",
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
            lines += ["", f"Fitness signal (one at a time = {a['alone_from']}): "
                          f"Spearman(batched, one at a time) = "
                          f"{a['spearman_batched_vs_alone']:.3f}; mean |batched - alone| = "
                          f"{a['mean_abs_diff_batched_vs_alone']:.4f} (max "
                          f"{a['max_abs_diff_batched_vs_alone']:.4f}); seed-to-seed: mean "
                          f"|seed 0 - seed 1| = {a['mean_abs_diff_seed0_vs_seed1']:.4f}, std "
                          f"over seeds {a['std_over_seeds']:.4f}."]
            if "mean_abs_diff_a_vs_c0" in a:
                lines += ["", f"Reference loop (a) against batched (c0), genomes timed in (a): "
                              f"mean |a - c0| = {a['mean_abs_diff_a_vs_c0']:.4f} (different "
                              "shuffling and optimiser implementation, same genomes and seed)."]
        lines += ["", f"Load before: `{shape['load_before']}`; after: `{shape['load_after']}`; "
                      f"torch threads {shape['threads']}."]
        lines.append("")
    if report.get("steps"):
        lines += ["## Training step, one genome against a population", "",
                  "| shape | ms/step P=1 | P | ms/step at P | ms per member-step | ratio |",
                  "|---|---|---|---|---|---|"]
        for r in report["steps"]:
            lines.append(f"| {r['shape']} | {r['ms_per_step_P1']:.1f} | {r['P']} | "
                         f"{r['ms_per_step_P']:.1f} | {r['ms_per_member_step_P']:.1f} | "
                         f"{r['ideal_speedup']:.1f}x |")
        lines.append("")
    if "search" in report:
        s = report["search"]
        lines += ["## The search, side by side (equal work)", "",
                  f"`evo-msa search --space <{report['old_commit']}>/search_spaces/haemsa.yaml "
                  f"--pop {report['pop']} --generations {report['generations']}` "
                  "(final trainer off), synthetic:mosi:", "",
                  "| code | evaluations | trained | at full budget | process wall s | "
                  "evaluations/min | trained/min | full budget/min | member-epochs/min | "
                  "best valid loss | load before / after |", "|" + "---|" * 11]
        for name in ("old", "new"):
            r = s[name]
            label = report["old_commit"] if name == "old" else "this checkout"
            lines.append(f"| {label} | {r['evaluations']} | {r['trained']} | {r['full_budget']} "
                         f"| {r['process_wall']:.0f} | {r['evaluations_per_minute']} | "
                         f"{r['trained_per_minute']} | {r['full_budget_per_minute']} | "
                         f"{r['member_epochs_per_minute']} | {r['best_valid']:.4f} | "
                         f"{_load(r['load_before'])} / {_load(r['load_after'])} |")
        lines += ["", f"Ratios (this checkout / {report['old_commit']}): trained genomes per "
                      f"minute **{s['ratio_trained']}x**, evaluations {s['ratio_evaluations']}x, "
                      f"full-budget trainings {s['ratio_full_budget']}x, member-epochs "
                      f"{s['ratio_member_epochs']}x.", ""]
    if "ttq" in report:
        t = report["ttq"]
        after = ("each search killed there: no whole-search time, no pick"
                 if any(r.get("stopped_at_threshold") for r in t["runs"])
                 else "the final trainer retrains each pick with 5 seeds")
        lines += ["## Time to quality", "",
                  f"`evo-msa search --space <{report['ttq_commit']}>/search_spaces/"
                  f"haemsa_small_data.yaml --data {t['data']} --pop {t['pop']} --generations "
                  f"{t['generations']} --seed S` ({after}): seconds from the start of the process "
                  f"until the best full-budget valid loss first reached {t['threshold']}:", "",
                  "| code | search seed | seconds to threshold | trainings (at full budget) | "
                  "process wall s | best valid | pick: test MAE | pick: test Corr | load before "
                  "/ after |", "|---|---|---|---|---|---|---|---|---|"]
        for r in t["runs"]:
            label = report["ttq_commit"] if r["code"] == "old" else "this checkout"
            reached = r["seconds_to_threshold"]
            pick = r.get("pick", {})
            mae, corr = pick.get("test_mae", {}), pick.get("test_corr", {})
            when = "not reached" if reached is None else f"{reached:.0f}"
            wall = "stopped there" if r.get("stopped_at_threshold") else f"{r['process_wall']:.0f}"
            lines.append(
                f"| {label} | {r['seed']} | {when} | {r['trained']} ({r['full_budget']}) | "
                f"{wall} | "
                f"{r['best_valid']:.4f} | {_pm(mae)} | {_pm(corr)} | "
                f"{_load(r['load_before'])} / {_load(r['load_after'])} |")
        lines += ["", f"Median seconds to {t['threshold']}: {report['ttq_commit']} "
                      f"{t['old']['median_seconds_to_threshold']:.0f} "
                      f"({t['old']['reached']} of {len(t['seeds'])} reached it), this checkout "
                      f"{t['new']['median_seconds_to_threshold']:.0f} ({t['new']['reached']} "
                      f"reached it): **{t['ratio']}x**.", ""]
    return "\n".join(lines)


def _pm(m: dict) -> str:
    return f"{m['mean']:.4f} ± {m['std']:.4f}" if m else ""


def _load(line: str) -> str:
    """The three load averages of an `uptime` line."""
    found = re.search(r"load average: (.*)", line)
    return found.group(1) if found else line


def _fmt(x):
    return "" if x is None else f"{x:.2f}" if isinstance(x, float) else str(x)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--shapes", default="utterance,unaligned",
                   help="utterance, unaligned (random data of those shapes), data (--data)")
    p.add_argument("--data", default=None, help="a package for the shape 'data'")
    p.add_argument("--encoder", default="", help="every genome's sequence encoder (e.g. gru)")
    p.add_argument("--space", default=None, help="the genomes' space (default haemsa.yaml)")
    p.add_argument("--genomes", type=int, default=32)
    p.add_argument("--epochs", type=int, default=12)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--ways", default="a,b,c",
                   help="comma list of a, b, c, c0 (c0 runs whenever c or --agreement does)")
    p.add_argument("--reference-genomes", type=int, default=0,
                   help="time (a) on this many genomes and extrapolate (0 = all)")
    p.add_argument("--batch-genomes", type=int, default=0, help="genomes per batched trial")
    p.add_argument("--gpus-per-trial", type=float, default=0.25)
    p.add_argument("--agreement", action="store_true", help="also measure the fitness signal")
    p.add_argument("--search-compare", action="store_true")
    p.add_argument("--step-analysis", type=int, default=0, metavar="P",
                   help="also time one training step at P=1 and per member at P (e.g. 16)")
    p.add_argument("--old-commit", default="919476c")
    p.add_argument("--time-to-quality", action="store_true")
    p.add_argument("--ttq-commit", default="6685d45")
    p.add_argument("--ttq-data", default=str(ROOT.parent / "shared" / "data" / "mosi-acl17"
                                              / "mosi_acl17_minilm.pkl"))
    p.add_argument("--ttq-generations", type=int, default=6)
    p.add_argument("--threshold", type=float, default=0.785)
    p.add_argument("--ttq-stop-at-threshold", action="store_true",
                   help="end each search once it reaches the threshold (no whole-search time, "
                        "no pick): many search seeds in little time")
    p.add_argument("--search-seeds", default="0,1,2")
    p.add_argument("--final-seeds", default="0,1,2,3,4")
    p.add_argument("--pop", type=int, default=32)
    p.add_argument("--generations", type=int, default=2)
    p.add_argument("--device", default="auto")
    p.add_argument("--threads", type=int, default=0,
                   help="torch threads in this process (a, c0); Ray trials use 1 each")
    p.add_argument("--out", default=None, help="folder for throughput-<device>.json/.md")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    report = {"device": device_name(device), "command": " ".join(sys.argv),
              "torch": torch.__version__, "cpu_count": os.cpu_count(),
              "date": time.strftime("%Y-%m-%d"), "old_commit": args.old_commit, "pop": args.pop,
              "generations": args.generations, "shapes": []}
    for shape in [s for s in args.shapes.split(",") if s]:
        if args.step_analysis:
            report.setdefault("steps", []).append(step_analysis(shape, args, device))
        report["shapes"].append(bench_shape(shape, args, device))
    if args.search_compare:
        report["search"] = search_compare(args)
    if args.time_to_quality:
        report["ttq_commit"] = args.ttq_commit
        report["ttq"] = time_to_quality(args)
    text = markdown(report)
    print(text)
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        stem = "throughput-" + re.sub(r"[^a-z0-9]+", "-", report["device"].lower()).strip("-")
        (out / f"{stem}.json").write_text(json.dumps(report, indent=2))
        (out / f"{stem}.md").write_text(text)
        write_csvs(report, out, stem)


if __name__ == "__main__":
    main()
