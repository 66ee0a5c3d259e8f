"""Where should a fine-tuning search spend its CPU? Issue #32, item 2, measured on recorded
trainings: train every genome whole, stop the weak ones at rungs, prefer cheap genomes by their
cost, or search heads on the frozen encoder and fine-tune only the finalists.

    python experiments/finetune_budget.py --data mosi_acl17_minilm.pkl \
        --space search_spaces/haemsa_finetune.yaml --genomes 32 --shards 2 --out DIR

Recording: `--genomes` genomes drawn uniformly from the space (seed 0; over max_params: drawn
again), each trained twice with fitness seed 0: as the space says (its top 1, 2 or all
encoder layers fine-tuned) and with the encoder frozen (`pretrained.finetune_layers: 0`, the
same heads over the cached token states). Every epoch's validation fitness and wall time, and
the test metrics of the whole training at its best valid epoch (what the user would get; never
used to choose) go to curves.csv and genomes.csv. `--shards N` records in N processes of one
thread each (one per core); the layers below the first fine-tuned one are computed once per
process before any timing (a search caches them once per dataset).

Simulation (no more training: a stopped genome changes nobody else's training, so a policy is
a cut of the curves), at equal CPU seconds. Every draw is a random order of the recorded genomes
(the proposals of a random search); a policy spends its seconds down that order:

  whole        each proposal trains its 5 epochs (what `evo-msa search` does today)
  rungs R/k    batches of 8 proposals trained together; at each rung the best k go on
               (successive halving on the recorded curves: training.halving, ASHA)
  cost-aware   the proposals' fine-tuned depth is chosen for the best fitness per second
               measured so far (a cost-aware bandit over the depth gene; expected
               improvement per second in Snoek et al. 2012 terms, with the depth as the cost)
  frozen->ft   every proposal first trains frozen (cheap); the best `m` of each batch of 8 (or
               2, 4: the trial's batch) by frozen fitness are then fine-tuned whole

The outcome of a draw at a budget is the finished genome with the best valid fitness (what a
search would pick), scored by its true valid fitness and its test MAE / Corr; summary.csv gives
the means over draws per policy and budget, and the chance of holding one of the best 10% of
the recorded genomes.
"""
from __future__ import annotations

import argparse
import json
import math
import random
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from scipy.stats import norm  # noqa: E402

BATCH = 8  # proposals that train (and are halved) together
DEPTH = "pretrained.finetune_layers"


# ---- recording ---------------------------------------------------------------------------------
def draw(space, data, count: int, seed: int):
    """`count` genomes drawn uniformly (within max_params), with their run configs."""
    from evo_msa.data import DataInfo
    from evo_msa.models import member_parameters

    info = DataInfo.from_data(data)
    rng = random.Random(seed)
    out = []
    while len(out) < count:
        genome = space.sample(rng)
        cfg = space.to_config(genome, available=data.modalities)
        if space.max_params and member_parameters(cfg, info) > space.max_params:
            continue
        out.append((genome, cfg))
    return out


def train_timed(data, cfg, metric: str):
    """One training of `cfg` (seed 0): per-epoch (valid fitness, seconds) and the result."""
    from evo_msa.training import train_population

    marks = [time.perf_counter()]
    result = train_population(data, [cfg], [0], device="cpu", eval_splits=("valid", "test"),
                              watch=[metric],
                              on_epoch=lambda epoch, valid: marks.append(time.perf_counter()))[0]
    rows = [{"epoch": h["epoch"], "value": h.get(f"valid_{metric}", math.nan),
             "select": h.get(f"valid_{cfg.train.select_metric}", math.nan),
             "seconds": marks[i + 1] - marks[i] if i + 1 < len(marks) else math.nan}
            for i, h in enumerate(result.history)]
    return rows, result


def record_shard(args) -> None:
    import dataclasses

    import torch

    from evo_msa.data import load_data
    from evo_msa.space import load_space

    torch.set_num_threads(1)
    data = load_data(args.data)
    space = load_space(args.space)
    metric = space.fitness.metric
    drawn = draw(space, data, args.genomes, args.seed)
    mine = [g for g in range(len(drawn)) if g % args.shards == args.shard]
    # the layers below the first fine-tuned one, computed (and cached) before any timing
    depths = sorted({drawn[g][1].pretrained.finetune_layers for g in mine} | {0})
    for d in depths:
        cfg = drawn[mine[0]][1]
        warm = dataclasses.replace(cfg, pretrained=dataclasses.replace(cfg.pretrained,
                                                                       finetune_layers=d),
                                   train=dataclasses.replace(cfg.train, epochs=1))
        train_timed(data, warm, metric)
    rows, meta = [], []
    t0 = time.perf_counter()
    for g in mine:
        genome, cfg = drawn[g]
        frozen = dataclasses.replace(cfg, pretrained=dataclasses.replace(cfg.pretrained,
                                                                         finetune_layers=0))
        for mode, c in (("finetuned", cfg), ("frozen", frozen)):
            curve, result = train_timed(data, c, metric)
            rows += [{"genome": g, "mode": mode, **r} for r in curve]
            meta.append({"genome": g, "mode": mode, "depth": c.pretrained.finetune_layers,
                         "best_epoch": result.best_epoch, "status": result.status.value,
                         **{f"{split}_{k}": v for split in ("valid", "test")
                            for k, v in result.metrics.get(split, {}).items()},
                         "genes": json.dumps(space.decode(genome, data.modalities))})
        print(f"[finetune_budget {args.shard}/{args.shards}] genome {g} (depth "
              f"{cfg.pretrained.finetune_layers}): {time.perf_counter() - t0:.0f}s", flush=True)
    out = Path(args.out)
    pd.DataFrame(rows).to_csv(out / f"curves.{args.shard}.csv", index=False)
    pd.DataFrame(meta).to_csv(out / f"genomes.{args.shard}.csv", index=False)


def record(args) -> None:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    procs = [subprocess.Popen([sys.executable, __file__, "--shard", str(k), "--shards",
                               str(args.shards), "--data", args.data, "--space", args.space,
                               "--genomes", str(args.genomes), "--seed", str(args.seed),
                               "--out", args.out]) for k in range(args.shards)]
    if any(p.wait() for p in procs):
        raise SystemExit("finetune_budget: a recording shard failed")
    for name in ("curves", "genomes"):
        parts = [pd.read_csv(out / f"{name}.{k}.csv") for k in range(args.shards)]
        pd.concat(parts).sort_values(["genome", "mode"], kind="stable").to_csv(
            out / f"{name}.csv", index=False)
        for k in range(args.shards):
            (out / f"{name}.{k}.csv").unlink()
    (out / "run.json").write_text(json.dumps({
        "command": " ".join(sys.argv), "data": args.data, "space": args.space,
        "genomes": args.genomes, "seed": args.seed, "shards": args.shards,
        "seconds": round(time.perf_counter() - t0, 1)}, indent=2))


# ---- the recorded trainings -------------------------------------------------------------------
class Recorded:
    """Per genome and mode: fit[e] (valid fitness, as a loss, of the best epoch up to e+1),
    cost[e] (seconds up to the end of epoch e+1), the depth, and the whole training's test."""

    def __init__(self, curves: pd.DataFrame, genomes: pd.DataFrame, sign: float = 1.0):
        self.G = int(genomes["genome"].max()) + 1
        self.fit, self.cost = {}, {}
        for (g, mode), c in curves.groupby(["genome", "mode"]):
            c = c.sort_values("epoch")
            best, cur, fit = math.inf, math.inf, []
            for sel, val in zip(c["select"], sign * c["value"]):
                if np.isfinite(sel) and sel < best:
                    best, cur = sel, val
                fit.append(cur)
            self.fit[g, mode] = np.array(fit)
            self.cost[g, mode] = np.cumsum(c["seconds"].to_numpy())
        ft = genomes[genomes["mode"] == "finetuned"].set_index("genome").sort_index()
        self.depth = ft["depth"].to_numpy()
        # the data's headline test metrics: regression or classification
        self.headline = [m for m in ("mae", "corr", "weighted_f1", "acc")
                         if f"test_{m}" in ft][:2]
        self.test = ft[[f"test_{m}" for m in self.headline]].to_numpy()
        self.truth = np.array([self.fit[g, "finetuned"][-1] for g in range(self.G)])
        self.epochs = min(len(self.fit[g, "finetuned"]) for g in range(self.G))
        self.top10 = float(np.quantile(self.truth[np.isfinite(self.truth)], 0.1))


class Spend:
    """A policy's run down one order of proposals: the finished genomes and the seconds spent."""

    def __init__(self, rec: Recorded, budget: float):
        self.rec, self.budget, self.spent, self.done = rec, budget, 0.0, []

    def pay(self, seconds: float) -> bool:
        if self.spent + seconds > self.budget:
            return False
        self.spent += seconds
        return True

    def pick(self) -> int | None:
        """What a search would report: the finisher with the best (recorded) valid fitness."""
        if not self.done:
            return None
        return min(self.done, key=lambda g: self.rec.fit[g, "finetuned"][-1])


def whole(rec: Recorded, order, budget: float) -> Spend:
    s = Spend(rec, budget)
    for g in order:
        if not s.pay(rec.cost[g, "finetuned"][-1]):
            break
        s.done.append(g)
    return s


def rungs(rec: Recorded, order, budget: float, at: tuple[int, ...], keep: float) -> Spend:
    """Successive halving of batches of BATCH proposals at epochs `at`, `keep` going on (a rung
    at or past the budget is the budget)."""
    at = tuple(r for r in at if r < rec.epochs)
    s = Spend(rec, budget)
    for start in range(0, len(order), BATCH):
        alive = list(order[start:start + BATCH])
        reached = {g: 0 for g in alive}  # epochs paid for
        for r in (*at, None):
            if not alive:
                break
            if r is not None:
                for g in alive:
                    if not s.pay(rec.cost[g, "finetuned"][r - 1] - (
                            rec.cost[g, "finetuned"][reached[g] - 1] if reached[g] else 0)):
                        return s
                    reached[g] = r
                n = max(1, math.ceil(keep * len(alive) - 1e-9))
                alive = sorted(alive, key=lambda g: rec.fit[g, "finetuned"][r - 1])[:n]
            else:
                for g in alive:
                    if not s.pay(rec.cost[g, "finetuned"][-1] - (
                            rec.cost[g, "finetuned"][reached[g] - 1] if reached[g] else 0)):
                        return s
                    s.done.append(g)
    return s


def frozen_first(rec: Recorded, order, budget: float, finalists: int,
                 size: int = BATCH) -> Spend:
    """Each batch of `size` proposals trains frozen; its best `finalists` are fine-tuned."""
    s = Spend(rec, budget)
    for start in range(0, len(order), size):
        batch = list(order[start:start + size])
        for g in batch:
            if not s.pay(rec.cost[g, "frozen"][-1]):
                return s
        for g in sorted(batch, key=lambda g: rec.fit[g, "frozen"][-1])[:finalists]:
            if not s.pay(rec.cost[g, "finetuned"][-1]):
                return s
            s.done.append(g)
    return s


def cost_aware(rec: Recorded, order, budget: float) -> Spend:
    """The depth gene chosen by expected gain per second: each depth is tried once first; then
    the next proposal comes from the depth with the best (chance of beating the incumbent) /
    (mean seconds), estimated from that depth's finished trainings (a cost-aware bandit)."""
    s = Spend(rec, budget)
    pools = {d: [g for g in order if rec.depth[g] == d] for d in sorted(set(rec.depth))}
    seen: dict[int, list[int]] = {d: [] for d in pools}
    while any(pools.values()):
        open_ = [d for d in pools if pools[d]]
        untried = [d for d in open_ if not seen[d]]
        if untried:
            d = untried[0]
        else:
            best = min(rec.truth[g] for d in seen for g in seen[d])
            score = {}
            for d in open_:
                f = np.array([rec.truth[g] for g in seen[d]])
                sec = np.mean([rec.cost[g, "finetuned"][-1] for g in seen[d]])
                # chance that the next of this depth beats the incumbent: a normal fitted to
                # the depth's fitnesses (std floored: few samples)
                sd = max(np.std(f), 0.02)
                score[d] = norm.cdf((best - np.mean(f)) / sd) / sec
            d = max(open_, key=score.get)
        g = pools[d].pop(0)
        if not s.pay(rec.cost[g, "finetuned"][-1]):
            break
        s.done.append(g)
        seen[d].append(g)
    return s


def policies(rec: Recorded):
    yield "whole", lambda o, b, r: whole(rec, o, b)
    for at, keep in (((1,), 1 / 2), ((1,), 1 / 4), ((2,), 1 / 2), ((2,), 1 / 4), ((1, 3), 1 / 2)):
        yield (f"rungs {'|'.join(map(str, at))} keep 1/{round(1 / keep)}",
               lambda o, b, r, at=at, keep=keep: rungs(rec, o, b, at, keep))
    yield "cost-aware depth", lambda o, b, r: cost_aware(rec, o, b)
    for m, size in ((1, BATCH), (2, BATCH), (4, BATCH), (1, 2), (2, 4)):
        yield (f"frozen->ft best {m}/{size}",
               lambda o, b, r, m=m, size=size: frozen_first(rec, o, b, m, size))


def simulate(rec: Recorded, budgets, draws: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    orders = [list(rng.permutation(rec.G)) for _ in range(draws)]
    rows = []
    for name, policy in policies(rec):
        for budget in budgets:
            picks = [policy(o, budget, rng).pick() for o in orders]
            got = [p for p in picks if p is not None]
            rows.append({
                "policy": name, "cpu_minutes": budget / 60,
                "draws_with_a_model": len(got) / draws,
                "valid_fitness": float(np.mean([rec.truth[p] for p in got])) if got else math.nan,
                "in_best_10pct": float(np.mean([rec.truth[p] <= rec.top10 for p in got]))
                if got else math.nan,
                **{f"test_{m}": float(np.mean([rec.test[p, i] for p in got])) if got else math.nan
                   for i, m in enumerate(rec.headline)},
                "finished": float(np.mean([len(policy(o, budget, rng).done)
                                           for o in orders[:50]]))})
    return pd.DataFrame(rows)


def analyse(args) -> None:
    out = Path(args.out)
    run = json.loads((out / "run.json").read_text())
    curves = pd.read_csv(out / "curves.csv")
    genomes = pd.read_csv(out / "genomes.csv")
    rec = Recorded(curves, genomes)
    per_depth = (genomes.assign(seconds=genomes.apply(
        lambda r: rec.cost[r["genome"], r["mode"]][-1], axis=1),
        fitness=genomes.apply(lambda r: rec.fit[r["genome"], r["mode"]][-1], axis=1))
        .groupby(["mode", "depth"]).agg(genomes=("genome", "size"), seconds=("seconds", "mean"),
                                         valid_fitness_mean=("fitness", "mean"),
                                         valid_fitness_best=("fitness", "min"),
                                         **{f"test_{m}_mean": (f"test_{m}", "mean")
                                            for m in rec.headline}).reset_index())
    per_depth.to_csv(out / "per_depth.csv", index=False)
    from scipy.stats import spearmanr

    frozen = np.array([rec.fit[g, "frozen"][-1] for g in range(rec.G)])
    early = {e: np.array([rec.fit[g, "finetuned"][e - 1] for g in range(rec.G)])
             for e in range(1, len(rec.fit[0, "finetuned"]))}
    ranks = pd.DataFrame([{"predictor": "frozen fitness (5 epochs)",
                           "spearman_with_finetuned": spearmanr(frozen, rec.truth)[0]}]
                         + [{"predictor": f"fine-tuned fitness at epoch {e}",
                             "spearman_with_finetuned": spearmanr(v, rec.truth)[0]}
                            for e, v in early.items()])
    ranks.to_csv(out / "ranks.csv", index=False)
    whole_cost = float(np.mean([rec.cost[g, "finetuned"][-1] for g in range(rec.G)]))
    budgets = [whole_cost * k for k in (4, 8, 12)]
    summary = simulate(rec, budgets, args.draws)
    summary.to_csv(out / "summary.csv", index=False)
    lines = [f"# Fine-tuning compute: {Path(run['data']).name}, {Path(run['space']).name}", "",
             f"`{run['command']}` ({run['genomes']} genomes, {run['seconds']:.0f} s to record "
             f"in {run['shards']} one-thread processes)", "",
             "## Cost and fitness per fine-tuned depth (-1 = all layers, 0 = frozen)", "",
             _md(per_depth), "", "## How well cheap signals rank the fine-tuned fitness", "",
             _md(ranks), "",
             f"## Policies at equal CPU ({args.draws} random orders of the recorded genomes; "
             f"budgets = 4, 8, 12 whole trainings of the mean genome, {whole_cost:.0f} s each)",
             "", _md(summary), ""]
    (out / "README.md").write_text("\n".join(lines))
    print("\n".join(lines))


def _md(frame: pd.DataFrame) -> str:
    cols = list(frame.columns)
    rows = ["| " + " | ".join(map(str, cols)) + " |", "|" + "---|" * len(cols)]
    for r in frame.itertuples(index=False):
        rows.append("| " + " | ".join(f"{v:.3f}" if isinstance(v, float) else str(v)
                                      for v in r) + " |")
    return "\n".join(rows)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", required=False, default="synthetic:mosi")
    p.add_argument("--space", default=str(ROOT / "search_spaces" / "haemsa_finetune.yaml"))
    p.add_argument("--genomes", type=int, default=32)
    p.add_argument("--shards", type=int, default=2, help="recording processes (one per core)")
    p.add_argument("--shard", type=int, default=None, help=argparse.SUPPRESS)
    p.add_argument("--draws", type=int, default=2000, help="random orders per policy and budget")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--analyse-only", action="store_true")
    p.add_argument("--out", required=True)
    args = p.parse_args(argv)
    if args.shard is not None:
        record_shard(args)
        return
    if not args.analyse_only:
        record(args)
    analyse(args)


if __name__ == "__main__":
    main()
