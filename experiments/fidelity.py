"""Rank fidelity of short trainings: does the ranking of genomes after a few epochs hold at the
full fitness budget? What successive halving (training.halving) bets on, measured.

    python experiments/fidelity.py --data PATH_OR_SYNTHETIC --space SPACE.yaml --genomes 96 \
        --out experiments/results/fidelity/NAME

Draws `--genomes` genomes uniformly from the space (seed 0; over max_params: drawn again),
trains each with the space's fitness seeds for the full budget (the space's epochs and
patience, no halving), and records every member's validation curve (curves.csv). From the
curves, with no more training (a stopped member never changes another's training, so halving is
exactly a cut of these curves):

  spearman.csv  per epoch e: Spearman and Kendall correlation between the fitness at e (each
                seed's value at its best epoch up to e, mean over seeds) and at the full budget;
                recall of the true best quarter within the best third at e
  halving.csv   candidate schedules (rungs, keep) on random batches of `--batch` genomes (a
                search trial's batch): compute left (member-epochs against no halving), how
                often the batch's truly best genome reaches the full budget, the regret of the
                best finisher, how many genomes of a batch finish, and the compute until a
                finisher reaches the level of the best 5% / 10% of the genomes (batches drawn
                anew, relative to no halving: time to quality on random proposals)
  told.csv      what a strategy should be told for a stopped genome: the extra-trees
                predictor of the default strategy fitted on one simulated generation (two
                batches, halved), scored by Spearman against the truth on held-out genomes,
                per scheme (raw rung value, rung first, finishers only, mapped through the
                finishers)

`--analyse-only` redoes the tables from an existing curves.csv.
"""
from __future__ import annotations

import argparse
import json
import math
import random
import sys
import time
from fractions import Fraction
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

SCHEDULES = [(r, k) for r in ((1,), (2,), (3,), (1, 3), (1, 4), (2, 4), (2, 5), (2, 6), (3, 6),
                              (1, 3, 7), (2, 5, 10))
             for k in (1 / 2, 1 / 3, 1 / 4)]


# ---- recording ---------------------------------------------------------------------------------
def record(args) -> None:
    import torch

    from evo_msa.data import DataInfo, load_data
    from evo_msa.models import member_parameters
    from evo_msa.space import load_space
    from evo_msa.training import train_population

    torch.set_num_threads(args.threads)
    data = load_data(args.data).without_test()
    space = load_space(args.space)
    info = DataInfo.from_data(data)
    rng = random.Random(args.seed)
    genomes, configs = [], []
    while len(configs) < args.genomes:
        genome = space.sample(rng)
        cfg = space.to_config(genome, available=data.modalities)
        if space.max_params and member_parameters(cfg, info) > space.max_params:
            continue
        genomes.append(genome)
        configs.append(cfg)
    seeds = list(range(space.fitness.seeds))
    metric = space.fitness.metric
    rows, meta = [], []
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    for start in range(0, len(configs), args.batch):
        part = list(range(start, min(start + args.batch, len(configs))))
        members = [(g, s) for g in part for s in seeds]
        results = train_population(data, [configs[g] for g, _ in members],
                                   [s for _, s in members], device="cpu",
                                   eval_splits=("valid",), watch=[metric])
        for (g, s), r in zip(members, results):
            for h in r.history:
                rows.append({"genome": g, "seed": s, "epoch": h["epoch"],
                             "value": h.get(f"valid_{metric}", math.nan),
                             "select": h.get(f"valid_{configs[g].train.select_metric}",
                                             math.nan)})
        print(f"[fidelity] genomes {part[0]}-{part[-1]}: {time.perf_counter() - t0:.0f}s",
              flush=True)
    for g, (genome, cfg) in enumerate(zip(genomes, configs)):
        meta.append({"genome": g, "epochs": cfg.train.epochs, "patience": cfg.train.patience,
                     "params": member_parameters(cfg, info), "genes": json.dumps(
                         space.decode(genome, data.modalities)), "vector": json.dumps(genome)})
    pd.DataFrame(rows).to_csv(out / "curves.csv", index=False)
    pd.DataFrame(meta).to_csv(out / "genomes.csv", index=False)
    (out / "run.json").write_text(json.dumps({
        "command": " ".join(sys.argv), "data": args.data, "space": args.space,
        "genomes": args.genomes, "seeds": seeds, "metric": metric,
        "direction": space.fitness.direction, "seconds": round(time.perf_counter() - t0, 1),
        "threads": args.threads}, indent=2))


# ---- the fitness a cut of the curves gives --------------------------------------------------
class Curves:
    """fit[g, e]: genome g's fitness (as a loss) if every seed stopped after epoch e+1 (each
    seed's value at its best epoch so far, mean over seeds); trained[g, e]: member-epochs."""

    def __init__(self, curves: pd.DataFrame, sign: float):
        E = int(curves["epoch"].max())
        G = int(curves["genome"].max()) + 1
        seeds = sorted(curves["seed"].unique())
        fit = np.zeros((G, E))
        trained = np.zeros((G, E))
        for (g, _), c in curves.groupby(["genome", "seed"]):
            c = c.sort_values("epoch")
            value = sign * c["value"].to_numpy()  # as a loss
            select = c["select"].to_numpy()
            best, cur = math.inf, math.inf
            for e in range(E):
                if e < len(c):
                    if np.isfinite(select[e]) and select[e] < best:
                        best, cur = select[e], value[e]
                fit[g, e] += cur / len(seeds)
                trained[g, e] += min(e + 1, len(c))
        self.fit, self.trained, self.E, self.G = fit, trained, E, G
        # epochs the longest seed of each genome trained (patience, its budget)
        self.length = curves.groupby("genome")["epoch"].max().reindex(range(G)).to_numpy()

    @property
    def full(self) -> np.ndarray:
        return self.fit[:, -1]

    def halve(self, batch: list[int], rungs, keep) -> tuple[dict[int, int], float]:
        """Successive halving of `batch` on the recorded curves: each genome's rung (0 = full)
        and the member-epochs it cost."""
        alive, rung = list(batch), {g: 0 for g in batch}
        cost = 0.0
        for k, r in enumerate(rungs, 1):
            if r >= self.E:
                break
            # as training.halving: a genome that finished (patience) by the rung is not ranked
            running = [g for g in alive if self.length[g] > r]
            n_keep = max(1, math.ceil(keep * len(running) - 1e-9))
            ranked = sorted(running, key=lambda g: (self.fit[g, r - 1], batch.index(g)))
            for g in ranked[n_keep:]:
                rung[g] = k
                cost += self.trained[g, r - 1]
            alive = [g for g in alive if not rung[g]]
        cost += sum(self.trained[g, -1] for g in alive)
        return rung, cost


def spearman_table(c: Curves) -> pd.DataFrame:
    from scipy.stats import kendalltau, spearmanr

    rows = []
    full = c.full
    ok = np.isfinite(full)
    quarter = set(np.argsort(full)[: max(1, len(full) // 4)])
    for e in range(c.E):
        f = c.fit[:, e]
        good = ok & np.isfinite(f)
        third = set(np.argsort(np.where(np.isfinite(f), f, np.inf))[: max(1, len(f) // 3)])
        rows.append({"epoch": e + 1, "genomes": int(good.sum()),
                     "spearman": float(spearmanr(f[good], full[good])[0]),
                     "kendall": float(kendalltau(f[good], full[good])[0]),
                     "best_quarter_in_best_third": len(quarter & third) / len(quarter),
                     "member_epochs_share": float(c.trained[:, e].sum() / c.trained[:, -1].sum())})
    return pd.DataFrame(rows)


def halving_table(c: Curves, batch: int, draws: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    batches = [list(rng.choice(c.G, size=min(batch, c.G), replace=False)) for _ in range(draws)]
    # quality levels: the full-budget fitness of the best 5% and 10% of the genomes
    levels = {q: float(np.quantile(c.full[np.isfinite(c.full)], q)) for q in (0.05, 0.1)}
    rows, base = [], {}
    for rungs, keep in [((), 1.0)] + SCHEDULES:
        if rungs and rungs[-1] >= c.E:
            continue
        cost, survives, regret, finish = [], [], [], []
        found = {q: [] for q in levels}
        for b in batches:
            rung, spent = c.halve(b, rungs, keep)
            cost.append(spent / sum(c.trained[g, -1] for g in b))
            truth = {g: c.full[g] for g in b}
            best = min(truth, key=truth.get)
            finishers = [g for g in b if rung[g] == 0]
            survives.append(rung[best] == 0)
            regret.append(min(truth[g] for g in finishers) - truth[best])
            finish.append(len(finishers))
            for q, level in levels.items():
                found[q].append(min(truth[g] for g in finishers) <= level)
        row = {"rungs": "|".join(map(str, rungs)) or "none",
               "keep": round(keep, 3), "compute_share": float(np.mean(cost)),
               "speedup": float(1 / np.mean(cost)),
               "best_survives": float(np.mean(survives)),
               "regret_mean": float(np.mean(regret)),
               "regret_p90": float(np.quantile(regret, 0.9)),
               "finishers_per_batch": float(np.mean(finish))}
        for q in levels:
            # compute until a batch's finisher reaches the level (batches drawn anew), against
            # training every genome whole: what time to quality is made of
            per_hit = np.mean(cost) / max(np.mean(found[q]), 1e-9)
            base.setdefault(q, per_hit)
            row[f"compute_to_top{round(q * 100)}pct"] = float(per_hit / base[q])
        rows.append(row)
    return pd.DataFrame(rows)


def told_table(c: Curves, genomes: pd.DataFrame, space_file: str, rungs, keep, batch: int,
               draws: int, seed: int = 0) -> pd.DataFrame:
    """The default strategy's predictor fitted on one simulated generation (two halved batches)
    under each scheme for stopped genomes, scored on the other genomes against the truth."""
    from scipy.stats import spearmanr

    from evo_msa.nas.strategies.predictor import Forest, Slots, gaussian_ranks
    from evo_msa.space import load_space

    space = load_space(space_file)
    slots = Slots(space)
    X = slots.features(slots.snap(np.array([json.loads(v) for v in genomes["vector"]])))
    rng = np.random.default_rng(seed)
    schemes = ("full budget for all (no halving)", "raw rung value", "rung first",
               "finishers only", "mapped through finishers")
    scores: dict[str, list[float]] = {s: [] for s in schemes}
    for d in range(draws):
        chosen = list(rng.choice(c.G, size=min(2 * batch, c.G - 8), replace=False))
        rest = [g for g in range(c.G) if g not in set(chosen)]
        rung = {}
        for half in (chosen[:batch], chosen[batch:]):
            rung.update(c.halve(half, rungs, keep)[0])
        raw = {g: c.fit[g, (rungs[rung[g] - 1] if rung[g] else c.E) - 1] for g in chosen}
        told = {"full budget for all (no halving)": {g: c.full[g] for g in chosen},
                "raw rung value": raw,
                "rung first": {g: (-(rung[g] or len(rungs) + 1), raw[g]) for g in chosen},
                "finishers only": {g: raw[g] for g in chosen if rung[g] == 0},
                "mapped through finishers": mapped(c, chosen, rung, rungs)}
        for name, values in told.items():
            ids = list(values)
            order = sorted(range(len(ids)), key=lambda i: values[ids[i]])  # best first
            ranks = np.empty(len(ids))
            ranks[order] = np.arange(len(ids))
            y = gaussian_ranks(-ranks)  # higher is better, as strategies see scores
            forest = Forest(32, 1, seed + d).fit(X[ids], y)
            mu, _ = forest.predict(X[rest])
            scores[name].append(float(spearmanr(-mu, c.full[rest])[0]))
    return pd.DataFrame([{"scheme": s, "spearman_mean": float(np.mean(v)),
                          "spearman_std": float(np.std(v)), "draws": len(v)}
                         for s, v in scores.items()])


def mapped(c: Curves, chosen, rung, rungs) -> dict:
    """A stopped genome's value at its rung mapped onto the full-budget scale by a line fitted
    on the finishers' (value at that rung, full value)."""
    out = {g: c.full[g] for g in chosen if rung[g] == 0}
    fin = [g for g in chosen if rung[g] == 0]
    for g in chosen:
        if rung[g]:
            e = rungs[rung[g] - 1] - 1
            x = np.array([c.fit[f, e] for f in fin])
            y = np.array([c.full[f] for f in fin])
            if len(fin) >= 2 and np.ptp(x) > 0:
                a, b = np.polyfit(x, y, 1)
                out[g] = a * c.fit[g, e] + b if a > 0 else c.fit[g, e] - np.mean(x) + np.mean(y)
            else:
                out[g] = c.fit[g, e] - np.mean(x) + np.mean(y)
    return out


def analyse(args) -> None:
    out = Path(args.out)
    run = json.loads((out / "run.json").read_text())
    curves = pd.read_csv(out / "curves.csv")
    genomes = pd.read_csv(out / "genomes.csv")
    c = Curves(curves, -1.0 if run["direction"] == "max" else 1.0)
    sp = spearman_table(c)
    sp.to_csv(out / "spearman.csv", index=False)
    hv = halving_table(c, args.batch, args.draws)
    hv.to_csv(out / "halving.csv", index=False)
    rungs = tuple(int(x) for x in args.told_rungs.split(","))
    tt = told_table(c, genomes, run["space"], rungs, float(Fraction(args.told_keep)), args.batch,
                    args.draws // 10)
    tt.to_csv(out / "told.csv", index=False)
    lines = [f"# Rank fidelity: {run['data']}, {Path(run['space']).name}", "",
             f"`{run['command']}` ({run['genomes']} genomes x seeds {run['seeds']}, "
             f"fitness valid {run['metric']}, {run['seconds']:.0f} s to record)", "",
             "## Fitness at epoch e against the full budget", "", _md(sp), "",
             f"## Successive halving on batches of {args.batch} (simulated on the curves, "
             f"{args.draws} batches)", "", _md(hv), "",
             f"## What a stopped genome is told (rungs {args.told_rungs}, keep "
             f"{args.told_keep}; the default strategy's predictor, held-out Spearman)", "",
             _md(tt), ""]
    (out / "README.md").write_text("\n".join(lines))
    print("\n".join(lines))


def _md(frame: pd.DataFrame) -> str:
    cols = list(frame.columns)
    rows = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in frame.itertuples(index=False):
        rows.append("| " + " | ".join(f"{v:.3f}" if isinstance(v, float) else str(v)
                                      for v in r) + " |")
    return "\n".join(rows)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default="synthetic:mosi")
    p.add_argument("--space", default=str(ROOT / "search_spaces" / "haemsa_small_data.yaml"))
    p.add_argument("--genomes", type=int, default=96)
    p.add_argument("--batch", type=int, default=16, help="genomes trained (and halved) together")
    p.add_argument("--draws", type=int, default=2000, help="simulated batches per schedule")
    p.add_argument("--told-rungs", default="2,5", help="the schedule told.csv simulates")
    p.add_argument("--told-keep", default="1/3")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--analyse-only", action="store_true")
    p.add_argument("--out", required=True)
    args = p.parse_args()
    if not args.analyse_only:
        record(args)
    analyse(args)


if __name__ == "__main__":
    main()
