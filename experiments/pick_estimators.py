"""Would another estimate identify better? The final selection's estimate against others, offline,
on the configurations the default strategy trained (issue 33: its pick loses most of its search's
lead on noisy tables).

    python experiments/pick_estimators.py --tables hpobench:kc1,hpobench:segment --budget 100 \
        --reps 30 --out experiments/results/pick_estimators

Each repetition runs the default search as strategy_bench.py does (same seeds), then scores
every estimate on what that run trained (its re-trainings were planned with the engine's own
estimate; their results are the same for every estimate):

  mean          a configuration's mean over its trainings
  forest_leafK  the engine's estimate (predictor.smoothed_estimates, leaves of K; the engine
                uses 3): the mean shrunk towards a smooth forest's prediction
  gp            a Gaussian process (Matern 5/2, one length scale per feature) with each
                configuration's noise (the pooled variance of one training / its trainings)

and per estimate the true regret of its best configuration (top1), the mean true regret of its
five best (finalists: what the re-trainings would go to) and of its best re-trained
configuration (pick: the engine's rule; engine_pick: the run's own pick, which forest_leaf3's
pick reproduces). Writes DIR/estimates.csv (one row per table, rep,
estimate) and DIR/summary.md (means over the repetitions, beside the run's best trained).
"""
from __future__ import annotations

import argparse
import sys
import warnings
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
from strategy_bench import search  # also puts the checkout on sys.path

LEAVES = (3, 6, 10)


def gp_estimates(X: np.ndarray, means: np.ndarray, counts: np.ndarray,
                 noise: float | None) -> np.ndarray:
    """A Gaussian process's posterior mean at the trained configurations."""
    from sklearn.gaussian_process import GaussianProcessRegressor
    from sklearn.gaussian_process.kernels import ConstantKernel, Matern

    scale = means.std() or 1.0
    y = (means - means.mean()) / scale
    var = noise / scale**2 if noise else 0.5  # no re-training yet: half the spread
    gp = GaussianProcessRegressor(ConstantKernel() * Matern(np.ones(X.shape[1]), nu=2.5),
                                  alpha=var / counts, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # length scales at their bounds on small runs
        return gp.fit(X, y).predict(X) * scale + means.mean()


def score_run(table: str, budget: int, rep: int) -> list[dict]:
    """Every estimate's top1 / finalists / pick regrets on one default run."""
    from evo_msa.nas.selection import best_retrained
    from evo_msa.nas.strategies.predictor import pooled_noise

    engine, evaluator, _ = search(table, "default", budget, rep)
    space, t, selection = evaluator.space, evaluator.table, engine.selection
    metric = space.fitness.metric
    best = t.best(metric, space.fitness.direction)
    trained = selection.trained(engine.evaluations)
    counts = trained.counts
    truth = np.array([abs(t.truth(f.config, metric) - best) for f in trained.firsts])
    engine_pick = abs(t.truth(engine.pick().config, metric) - best)  # = forest_leaf3's pick
    estimates = {"mean": trained.means}
    for leaf in LEAVES:
        estimates[f"forest_leaf{leaf}"] = selection.estimates(trained, leaf=leaf)
    estimates["gp"] = gp_estimates(selection.slots.features(trained.G), trained.means, counts,
                                   pooled_noise(trained.scores))
    rows = []
    for name, est in estimates.items():
        order = np.argsort(-est, kind="stable")
        pick = best_retrained(est, counts)
        rows.append({"table": table, "budget": budget, "rep": rep, "estimate": name,
                     "top1": truth[order[0]], "finalists": truth[order[:5]].mean(),
                     "pick": truth[pick], "best_trained": truth.min(),
                     "engine_pick": engine_pick})
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tables", required=True, help="comma-separated BENCH:DATASET[@METRIC]")
    ap.add_argument("--budget", type=int, default=100)
    ap.add_argument("--reps", type=int, default=30)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--out", default="experiments/results/pick_estimators")
    args = ap.parse_args(argv)
    jobs = [(t, args.budget, r) for t in args.tables.split(",") for r in range(args.reps)]
    with ProcessPoolExecutor(max_workers=max(1, args.workers)) as pool:
        rows = [row for run in pool.map(score_run, *zip(*jobs)) for row in run]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    frame = pd.DataFrame(rows)
    frame.to_csv(out / "estimates.csv", index=False, float_format="%.6g")
    cols = ["top1", "finalists", "pick", "best_trained", "engine_pick"]
    summary = frame.groupby(["table", "estimate"], sort=False)[cols].mean().reset_index()
    lines = [f"Mean true regret over {args.reps} default runs at {args.budget} trainings "
             "(top1: the estimate's best; finalists: its five best; pick: its best "
             "re-trained; best_trained: the run's truly best)", "",
             "| table | estimate | " + " | ".join(cols) + " |", "|---|---|" + "---|" * len(cols)]
    lines += [f"| {r.table} | {r.estimate} | " + " | ".join(f"{getattr(r, c):.4g}" for c in cols)
              + " |" for r in summary.itertuples()]
    text = "\n".join(lines) + "\n"
    (out / "summary.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
