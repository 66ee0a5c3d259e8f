"""Variants that look inside trained models: missing modalities at test time, t-SNE of the
fused representation; and the study-level figures (best-so-far curves, winner's curse)."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from evo_msa.record import studyfiles as sf
from evo_msa.record.rundir import ANY, MODEL_PT, load_csv, seed_folder
from evo_msa.studies.spec import (
    Context,
    Skip,
    study_path,
    variant_dir,
    write_provenance,
)

# ---- model internals: missing modalities, fused representation -------------------------

def _trained(ctx: Context, name: str, models: str | None = None) -> dict:
    """A variant's saved models: trained earlier in this invocation, or (`models:` in the
    variant) the seed_* folders another run left in a scratch folder."""
    if models:
        path = Path(study_path(models, ctx))
        if list(path.glob(f"{seed_folder(ANY)}/{MODEL_PT}")):
            return {"models": path}
    rec = ctx.done.get(name)
    earlier = list((ctx.scratch / name).glob(f"{seed_folder(ANY)}/{MODEL_PT}"))
    if (rec is None or "models" not in rec) and earlier:
        return {"models": ctx.scratch / name}  # an earlier invocation with the same --scratch
    if rec is None or "models" not in rec:
        raise Skip(f"{name!r} is not a train or search variant that ran before this one")
    return rec


def load_seed_models(folder: Path) -> list:
    """The saved model of every seed_<s>/ under `folder`."""
    from evo_msa.training.saved import load_model, model_folders

    return [load_model(f) for f in model_folders(folder)]


def forward_split(saved, split, zero: tuple[str, ...] = ()):
    """Main outputs and the fused representation (the main tower's gated mixture of experts)
    of a saved model on raw features, with the modalities in `zero` set to their train mean
    (zero after z-scoring): a modality missing at test time."""
    import torch

    split = saved.model_split(split, "data")
    model = saved.model
    with torch.no_grad():
        inputs = {m: torch.as_tensor(split.features[m])[None] for m in model.modalities}
        lengths = {m: torch.as_tensor(split.lengths[m])[None] for m in model.modalities}
        for m in zero:
            if m in inputs:
                inputs[m] = torch.zeros_like(inputs[m])
        out = model(inputs, lengths)
    return out.main[0].float().numpy(), out.embedding[0].float().numpy()


def missing_variant(ctx: Context, v: dict) -> dict:
    """Test metrics of a trained variant's models with each modality (and with three or
    more, all but each) zeroed at test time: missing.csv, per_seed.csv, missing.png."""
    from evo_msa.data import load_data
    from evo_msa.metrics import compute_metrics

    rec = _trained(ctx, v["of"], v.get("models"))
    models = load_seed_models(rec["models"])
    data = load_data(ctx.data, normalize=False)
    test = data.splits["test"]
    used = list(models[0].model.modalities)
    cases = [("none", ())] + [(m, (m,)) for m in used] if len(used) > 1 else [("none", ())]
    if len(used) > 2:
        cases += [(f"all but {m}", tuple(x for x in used if x != m)) for m in used]
    rows = []
    truth = test.regression if data.task == "regression" else test.classification
    for label, zero in cases:
        for sm in models:
            pred, _ = forward_split(sm, test, zero)
            met = compute_metrics(pred, truth, task=data.task, scale=data.scale,
                                  label_names=data.label_names)
            rows.append({"zeroed": label, "seed": sm.seed, **{f"test_{k}": x
                                                              for k, x in met.items()}})
    folder = variant_dir(ctx, v["name"])
    table = pd.DataFrame(rows)
    table.to_csv(folder / sf.PER_SEED, index=False)
    agg = table.drop(columns="seed").groupby("zeroed", sort=False).agg(["mean", "std"])
    agg.columns = [f"{a}_{b}" for a, b in agg.columns]
    agg.reset_index().to_csv(folder / sf.MISSING_CSV, index=False)
    write_provenance(ctx, folder, v, {"of": v["of"], "modalities": ",".join(used)})
    _missing_figure(agg, folder / sf.MISSING_PNG, data.task, f"{ctx.dataset.name}: {v['of']}")
    ctx.log("   zeroed at test: " + "; ".join(
        f"{z}: " + ", ".join(f"{k} {agg.loc[z, 'test_' + k + '_mean']:.3f}"
                             for k in ("mae", "corr", "weighted_f1")
                             if f"test_{k}_mean" in agg.columns) for z in agg.index))
    return {"kind": "missing", "folder": folder}


def _missing_figure(agg: pd.DataFrame, path: Path, task: str, title: str) -> None:
    from evo_msa.report.plots import pyplot

    plt = pyplot()
    metric = "test_mae" if task == "regression" else "test_weighted_f1"
    fig, ax = plt.subplots(figsize=(6, 3.4), dpi=110)
    ax.bar(range(len(agg)), agg[f"{metric}_mean"], yerr=agg[f"{metric}_std"].fillna(0),
           capsize=3)
    ax.set_xticks(range(len(agg)), [f"zero {z}" if z != "none" else "all present"
                                    for z in agg.index], rotation=20, fontsize=8)
    ax.set_ylabel(metric.replace("_", " "))
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def tsne_variant(ctx: Context, v: dict) -> dict:
    """A t-SNE panel of the fused test representation per trained variant (its first seed),
    coloured by class, and its silhouette: tsne.png, silhouette.csv."""
    from evo_msa.data import load_data
    from evo_msa.report.plots import pyplot

    data = load_data(ctx.data, normalize=False)
    test = data.splits["test"]
    names = v["of"] if isinstance(v["of"], list) else [v["of"]]
    if data.task == "regression":
        y = test.regression
        classes = np.where(y < 0, 0, np.where(y > 0, 2, 1))
        labels = ["negative", "neutral", "positive"]
    else:
        classes = test.classification
        labels = data.label_names
    folder = variant_dir(ctx, v["name"])
    plt = pyplot()
    fig, axes = plt.subplots(1, len(names), figsize=(3.4 * len(names), 3.4), dpi=110,
                             squeeze=False)
    rows = []
    for ax, name in zip(axes[0], names):
        try:
            rec = _trained(ctx, name)
        except Skip as why:  # a variant that did not run: its panel says so
            ctx.log(f"   t-SNE without {name}: {why}")
            ax.set_title(f"{name}\n(not run)", fontsize=8)
            ax.axis("off")
            continue
        saved = load_seed_models(rec["models"])[0]
        _, emb = forward_split(saved, test)
        sil = _tsne_panel(ax, emb, classes, labels, name)
        rows.append({"variant": name, "seed": saved.seed, "silhouette_fused": sil})
    axes[0][0].legend(fontsize=6, markerscale=2)
    fig.tight_layout()
    fig.savefig(folder / sf.TSNE)
    plt.close(fig)
    pd.DataFrame(rows).to_csv(folder / sf.SILHOUETTE, index=False)
    write_provenance(ctx, folder, v, {"of": ",".join(names)})
    ctx.log("   silhouette: " + ", ".join(f"{r['variant']} {r['silhouette_fused']:.3f}"
                                          for r in rows))
    return {"kind": "tsne", "folder": folder}


def _tsne_panel(ax, emb: np.ndarray, classes: np.ndarray, labels: list[str], name: str) -> float:
    """One variant's panel: its representation `emb` in two t-SNE dimensions, a colour per
    class; returns its silhouette (NaN with a single class)."""
    from sklearn.manifold import TSNE
    from sklearn.metrics import silhouette_score

    perplexity = min(30.0, max(2.0, (len(emb) - 1) / 3))
    xy = TSNE(n_components=2, init="pca", random_state=0, perplexity=perplexity
              ).fit_transform(emb)
    sil = (float(silhouette_score(emb, classes)) if len(set(classes)) > 1 and
           len(emb) > len(set(classes)) else math.nan)
    for k, lab in enumerate(labels):
        sel = classes == k
        ax.scatter(xy[sel, 0], xy[sel, 1], s=4, label=lab, alpha=0.7)
    ax.set_title(f"{name}\nsilhouette {sil:.3f}", fontsize=8)
    ax.set_xticks([])
    ax.set_yticks([])
    return sil


# ---- study-level figures -----------------------------------------------------------------

def _search_on_disk(folder: Path) -> dict:
    """A search variant's record as study_figures needs it, from its best_so_far.csv."""
    frame = load_csv(folder / sf.BEST_SO_FAR_CSV, "best so far", index_col="evaluations")
    return {"kind": "search", "folder": folder,
            "curves": [frame[c].dropna().tolist() for c in frame.columns]}


def curve_scale(arrays: list[np.ndarray], start: float = 0.1) -> tuple[float, float] | None:
    """The y-range of best-so-far curves (searches x trainings) past their first `start` share
    of trainings, padded: the first trainings' values lie far from the rest and would flatten
    the part where strategies differ (they run off the edge, whichever way the fitness goes)."""
    tails = [a[:, int(start * a.shape[1]):] for a in arrays]
    values = np.concatenate([t[np.isfinite(t)] for t in tails]) if tails else np.array([])
    if values.size == 0:
        return None
    lo, hi = float(values.min()), float(values.max())
    pad = 0.05 * (hi - lo) or 0.01 * abs(hi) or 0.01
    return lo - pad, hi + pad


def study_figures(ctx: Context) -> None:
    """best_so_far.png: every search variant's best-so-far validation fitness against the
    number of trainings, mean over search seeds with min-max spread. Search variants not run
    this time (--only) are drawn from their results on disk, so that one variant re-run does
    not drop the others."""
    searches = {}
    for v in ctx.study.variants:
        if v["kind"] != "search":
            continue
        if v["name"] in ctx.done:
            searches[v["name"]] = ctx.done[v["name"]]
        elif (ctx.out / v["name"] / sf.BEST_SO_FAR_CSV).is_file():
            searches[v["name"]] = _search_on_disk(ctx.out / v["name"])
    if not searches:
        return
    ctx.out.mkdir(parents=True, exist_ok=True)
    _best_so_far_figure(ctx, searches)
    _fitness_vs_final_figure(ctx, searches)


def _best_so_far_figure(ctx: Context, searches: dict[str, dict]) -> None:
    """best_so_far.png and .csv: the search variants' curves side by side."""
    from evo_msa.report.plots import pyplot

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 3.8), dpi=120)
    rows, arrays = [], []
    for name, rec in searches.items():
        n = min(len(c) for c in rec["curves"])
        arr = np.array([c[:n] for c in rec["curves"]])
        arrays.append(arr)
        xs = np.arange(1, n + 1)
        mean = arr.mean(0)
        ax.plot(xs, mean, label=f"{name} (mean of {len(arr)})")
        ax.fill_between(xs, arr.min(0), arr.max(0), alpha=0.2)
        rows.append({"variant": name, "search_seeds": len(arr), "evaluations": n,
                     "final_best_mean": float(mean[-1]), "final_best_std":
                     float(arr[:, -1].std(ddof=1)) if len(arr) > 1 else 0.0,
                     "final_best_min": float(arr[:, -1].min()),
                     "final_best_max": float(arr[:, -1].max())})
    scale = curve_scale(arrays)
    if scale is not None:
        ax.set_ylim(*scale)
    ax.set_xlabel("trainings (evaluations that trained a genome)")
    ax.set_ylabel("best-so-far validation fitness")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title(f"{ctx.study.name} / {ctx.dataset.name}", fontsize=9)
    fig.tight_layout()
    fig.savefig(ctx.out / sf.BEST_SO_FAR_PNG)
    plt.close(fig)
    pd.DataFrame(rows).to_csv(ctx.out / sf.BEST_SO_FAR_CSV, index=False)


def _fitness_vs_final_figure(ctx: Context, searches: dict[str, dict]) -> None:
    """The winner's curse: a best genome's search fitness against the mean valid fitness of
    its retraining with the study's seeds (points above the diagonal: selection was lucky)."""
    from evo_msa.report.plots import pyplot

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(4.8, 4.2), dpi=120)
    lo, hi = math.inf, -math.inf
    for name, rec in searches.items():
        frame = load_csv(rec["folder"] / sf.FITNESS_VS_FINAL_CSV, "fitness against final")
        x, y = frame["search_fitness"], frame["final_valid_fitness_mean"]
        ax.errorbar(x, y, yerr=frame["final_valid_fitness_std"], fmt="o", capsize=3, label=name)
        lo, hi = min(lo, x.min(), y.min()), max(hi, x.max(), y.max())
    if math.isfinite(lo):
        pad = 0.02 * (hi - lo + 1e-9)
        ax.plot([lo - pad, hi + pad], [lo - pad, hi + pad], color="grey", lw=0.8, ls="--")
    ax.set_xlabel("best genome's fitness in the search (valid)")
    ax.set_ylabel("retrained with the study's seeds: mean valid")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(ctx.out / sf.FITNESS_VS_FINAL_PNG)
    plt.close(fig)
