"""Variants that train: baselines, HAEMSA configs (default, arch, genome), searches."""
from __future__ import annotations

import itertools
import json
import math
import shutil
import time
from pathlib import Path

import numpy as np
import pandas as pd

from evo_msa.config import RunConfig, read_yaml
from evo_msa.errors import UserError, brief
from evo_msa.io import write_json
from evo_msa.record import rundir
from evo_msa.record import studyfiles as sf
from evo_msa.record.best import loss_of, objectives, read_best, read_genome
from evo_msa.record.leaderboard import read_leaderboard
from evo_msa.record.rundir import RunDir, load_csv, load_json
from evo_msa.status import Status
from evo_msa.studies.spec import (
    DEFAULT_DATA_DIR,
    Context,
    Pretrained,
    Skip,
    clear,
    copy_small,
    log_result,
    study_path,
    to_yaml,
    variant_dir,
    write_metrics,
    write_provenance,
)

# ---- baseline --------------------------------------------------------------------------

def _baseline_models(ctx: Context, models) -> list[str]:
    if models in (None, "auto"):
        task = ctx.describe_data().task
        return ["ridge", "mlp"] if task == "regression" else ["softmax", "mlp"]
    return list(models) if isinstance(models, list) else [models]


def baseline_variant(ctx: Context, v: dict, name: str | None = None,
                     model: str | None = None, mods: list[str] | None = None) -> dict:
    """One baseline model on one modality subset, like `evo-msa baseline`, with the study's
    seeds (`name`, `model` and `mods` as baselines_variant gives them, else the variant's)."""
    from evo_msa import api

    name = name or v["name"]
    model = model or v["model"]
    mods = mods if mods is not None else v.get("modalities")
    folder = variant_dir(ctx, name)
    heavy = clear(ctx.scratch / name)
    summary = api.baseline(ctx.data, model=model, modalities=mods, seeds=ctx.seeds,
                           out=heavy, log=lambda s: None)
    table = load_csv(heavy / rundir.METRICS_CSV, "per-seed metrics")
    write_metrics(folder, summary, table, variant=name, kind="baseline")
    cmd = (f"evo-msa baseline --data {ctx.data} --model {model}"
           + (f" --modalities {','.join(mods)}" if mods else "")
           + f" --seeds {' '.join(map(str, ctx.seeds))} --out DIR")
    write_provenance(ctx, folder, {**v, "name": name, "model": model, "modalities": mods},
                     {"equivalent": cmd})
    log_result(ctx, name, summary)
    return {"kind": "baseline", "folder": folder, "summary": summary}


def baselines_variant(ctx: Context, v: dict) -> dict:
    """Every baseline model (`models`, auto: by task) on every modality subset (`subsets`,
    all: every combination the data has), each its own <model>_<subset> folder."""
    models = _baseline_models(ctx, v.get("models"))
    mods = ctx.describe_data().modalities
    if v.get("subsets", "all") == "all":
        subsets = [list(c) for k in range(1, len(mods) + 1)
                   for c in itertools.combinations(mods, k)]
    else:
        subsets = [s if isinstance(s, list) else s.split(",") for s in v["subsets"]]
    records = {}
    for model in models:
        for subset in subsets:
            name = f"{model}_{''.join(m[0] for m in subset)}"
            records[name] = baseline_variant(ctx, v, name, model, subset)
    return {"kind": "baselines", "records": records}


# ---- train -----------------------------------------------------------------------------

def variant_config(ctx: Context, v: dict) -> tuple[RunConfig, dict]:
    """The run config a train variant trains, and where it came from."""
    from evo_msa import api
    from evo_msa.space import load_space

    origin: dict = {}
    if v.get("genome_from"):
        rec = ctx.done.get(v["genome_from"])
        if rec is None or "best_genome" not in rec:
            raise UserError(f"{ctx.study.source}: {v['name']}: genome_from {brief(v['genome_from'])} "
                            "is not a search variant run before it")
        genome, space = rec["best_genome"], rec["space"]
    else:
        genome, space = study_path(v.get("genome"), ctx), study_path(v.get("space"), ctx)
        if genome and not space:  # the space file published beside the genome
            beside = sorted(Path(genome).parent.glob("*.yaml"))
            if not beside:
                if not ctx.quick:
                    raise Skip(f"{genome}: no genome with a space beside it yet")
                beside = [ctx.root / "search_spaces/haemsa.yaml"]
            space = str(beside[0])
    if genome:
        loaded = load_space(space)
        if Path(genome).is_file():
            values = read_genome(genome, loaded.size)
            origin = {"genome": str(genome), "space": str(space)}
        elif ctx.quick:  # a study whose genome is not committed yet still runs in CI
            import random

            rng = random.Random(0)
            values = [rng.random() for _ in range(loaded.size)]
            origin = {"genome": f"(missing {genome}: a random genome, --quick only)",
                      "space": str(space)}
        else:
            raise Skip(f"{genome}: no such genome file (run the study that makes it first)")
        cfg = loaded.to_config(values, available=ctx.describe_data().modalities)
    elif v.get("arch"):
        cfg = api.run_config(arch=study_path(v["arch"], ctx))
        origin = {"arch": v["arch"]}
    else:
        cfg = RunConfig()
        origin = {"config": "default HAEMSA"}
    if v.get("overrides"):
        cfg = cfg.with_overrides(v["overrides"], f"{ctx.study.source}: {v['name']}.overrides")
        origin["overrides"] = v["overrides"]
    if ctx.quick:
        cfg.train.epochs = min(cfg.train.epochs, ctx.quick_value("epochs", cfg.train.epochs))
    return cfg, origin


def train_together(ctx: Context, variants: list[dict]) -> None:
    """Every train variant of a dataset whose config is known before the run (not
    `genome_from` a search) trains in one population: variants x seeds members, each with
    its own seed's data order, initialisation and dropout noise, as `evo-msa train` would
    train it alone, for the price of about one training."""
    from evo_msa.data import load_data
    from evo_msa.provenance import provenance
    from evo_msa.training.multiseed import train_configs, write_run_metrics

    jobs = []
    for v in variants:
        if v["kind"] != "train" or v.get("genome_from") or v.get("alone"):
            continue
        try:
            cfg, origin = variant_config(ctx, v)
        except Skip:
            continue
        jobs.append((v["name"], cfg, origin))
    by_batch: dict[int, list] = {}  # one population trains with one batch size
    for job in jobs:
        by_batch.setdefault(job[1].train.batch_size, []).append(job)
    groups = [group for group in by_batch.values() if len(group) > 1]
    if not groups:  # a variant alone trains in its turn
        return
    seeds = ctx.seeds
    data = load_data(ctx.data)
    origin_data = provenance(ctx.data)
    for group in groups:
        names = [n for n, _, _ in group]
        start = time.time()
        ctx.log(f"   training {len(group)} variants x {len(seeds)} seeds together: "
                + ", ".join(names))
        runs = [RunDir.create(clear(ctx.scratch / n), resume_hint=False) for n in names]
        trained = train_configs(data, [(cfg, seeds) for _, cfg, _ in group], device="cpu",
                                log=lambda s: None, saves=runs, provenance=origin_data,
                                names=names)
        for (name, cfg, origin), run, (summary, table) in zip(group, runs, trained):
            write_run_metrics(run, summary, table, config=cfg, data=ctx.data,
                              provenance=origin_data, trained_with=names)
            ctx.pretrained[name] = Pretrained(cfg, origin, summary, run.path)
        ctx.log(f"   trained together in {time.time() - start:.0f}s")


def train_variant(ctx: Context, v: dict) -> dict:
    """A HAEMSA config trained with the study's seeds like `evo-msa train` (or taken from
    train_together): its small files, metrics and the equivalent command."""
    from evo_msa import api

    pre = ctx.pretrained.get(v["name"])
    if pre is not None:
        cfg, origin, summary, heavy = pre.config, pre.origin, pre.summary, pre.models
    else:
        cfg, origin = variant_config(ctx, v)
        heavy = clear(ctx.scratch / v["name"])
        summary = api.train(ctx.data, config=cfg, seeds=ctx.seeds, out=heavy,
                            log=lambda s: None)
    folder = variant_dir(ctx, v["name"])
    copy_small(heavy, folder)
    if "genome" in origin and not origin["genome"].startswith("(") and not v.get("overrides"):
        cmd = (f"evo-msa train --data {ctx.data} --genome {origin['genome']} --space "
               f"{origin['space']} --seeds {' '.join(map(str, ctx.seeds))} --out DIR")
    else:
        (folder / sf.RUN_CONFIG).write_text(to_yaml(cfg.to_dict()))
        cmd = (f"evo-msa train --data {ctx.data} --arch run_config.yaml --seeds "
               f"{' '.join(map(str, ctx.seeds))} --out DIR")
    write_json(folder / rundir.METRICS_JSON, {**load_json(folder / rundir.METRICS_JSON, "metrics"),
                                         "variant": v["name"], "kind": "train",
                                         "origin": origin})
    write_provenance(ctx, folder, v, {"equivalent": cmd, **{k: str(x) for k, x in origin.items()}})
    log_result(ctx, v["name"], summary)
    return {"kind": "train", "folder": folder, "models": heavy, "summary": summary,
            "config": cfg}


# ---- search ----------------------------------------------------------------------------

def search_variant(ctx: Context, v: dict) -> dict:
    """One search per search seed; the winner by search fitness; the best genomes retrained
    with the study's seeds and pooled; the curves; the winner's files (published with
    `publish`)."""
    space = _search_space(ctx, v)
    opts, search_seeds = _search_options(ctx, v)
    folder = variant_dir(ctx, v["name"])
    runs = [_search(ctx, v["name"], folder, space, opts, s) for s in search_seeds]
    win = _winner(runs)
    tables, finals = [], []
    for r in runs:  # retrain: all (every search's best genome) or best (the winner's only)
        if v.get("retrain", "all") == "best" and r is not win:
            r["models"], r["summary"] = None, None
            continue
        table, final = _retrain(ctx, v["name"], folder, r)
        tables.append(table)
        finals.append(final)
    pooled = _write_pooled(ctx, v["name"], folder, tables, search_seeds)
    pd.DataFrame(finals).to_csv(folder / sf.FITNESS_VS_FINAL_CSV, index=False)
    curves = _write_curves(folder, runs)
    best, space_copy = _copy_winner(folder, win)
    write_provenance(ctx, folder, v, {"space": space, "search_seeds": str(search_seeds)})
    if v.get("publish"):
        _publish(ctx, v["name"], best, space_copy)
    log_result(ctx, v["name"], pooled)
    return {"kind": "search", "folder": folder, "best_genome": str(best),
            "space": str(space_copy), "models": win["models"], "summary": win["summary"],
            "curves": curves, "runs": runs}


def _search_space(ctx: Context, v: dict) -> str:
    """The space file a search variant searches: the study's, or a copy with the variant's
    `space_overrides` (and with --quick, the fitness trainings cut to the quick epochs)."""
    from evo_msa.space import load_space

    space = study_path(v["space"], ctx)
    load_space(space)  # a bad space fails here, before anything runs
    overrides = dict(v.get("space_overrides") or {})
    if ctx.quick:  # toy size: the fitness budget too
        overrides["fixed"] = {**(overrides.get("fixed") or {}),
                              "train.epochs": ctx.quick_value("epochs", 2)}
    if overrides:  # e.g. {fitness: {seeds: 1}}: a variant of a shipped space
        space = _override_space(ctx, v["name"], space, overrides)
    return space


def _search_options(ctx: Context, v: dict) -> tuple[dict, list[int]]:
    """A search variant's options (as `evo-msa search` takes them) and search seeds; --quick
    sizes them down."""
    opts = dict(v.get("options") or {})
    search_seeds = list(v.get("search_seeds", [opts.pop("seed", 0)]))
    if ctx.quick:
        opts["pop"] = ctx.quick_value("pop", opts.get("pop", 4))
        opts["generations"] = ctx.quick_value("generations", opts.get("generations", 2))
        if "budget" in opts:  # toy size: the budget too
            opts["budget"] = opts["pop"] * opts["generations"]
        q = ctx.quick_value("search_seeds", None)
        search_seeds = list(q) if q else search_seeds[:2]
        opts["evolution"] = {**opts.get("evolution", {}), "elites": min(
            opts.get("evolution", {}).get("elites", 2), opts["pop"] - 1)}
    opts.setdefault("cpus_per_trial", 1.0)
    return opts, search_seeds


def _search(ctx: Context, name: str, folder: Path, space: str, opts: dict, seed: int) -> dict:
    """One search, without final training (the study retrains), its small files copied to
    folder/search_seed<s>/: its seed, run directory, best genome and space file."""
    from evo_msa import api

    heavy = clear(ctx.scratch / name / sf.search_seed_folder(seed))
    heavy.parent.mkdir(parents=True, exist_ok=True)
    run_opts = {**opts, "seed": seed, "final_seeds": []}
    ctx.log(f"   search seed {seed}: {space}, {json.dumps(run_opts)}")
    run = Path(api.search(space, ctx.data, out=heavy, log=_quiet(ctx), **run_opts))
    copy_small(run, folder / sf.search_seed_folder(seed))
    flags = " ".join(f"--{k.replace('_', '-')} {val}" for k, val in run_opts.items()
                     if k not in ("evolution", "final_seeds"))
    (folder / sf.search_seed_folder(seed) / sf.COMMAND).write_text(
        f"{ctx.command}\n# equivalent: evo-msa search --space {space} --data {ctx.data} "
        f"{flags} --final-seeds --out DIR\n")
    beside = run / Path(space).name
    return {"seed": seed, "dir": run, "best": read_best(run, required=True),
            "space": str(beside) if beside.is_file() else str(RunDir(run).space_copies()[0])}


def _winner(runs: list[dict]) -> dict:
    """The search whose best genome has the best search fitness (on valid; never test)."""
    return min(runs, key=lambda r: loss_of(r["best"]))


def _retrain(ctx: Context, name: str, folder: Path, r: dict) -> tuple[pd.DataFrame, dict]:
    """A search's best genome retrained like `evo-msa train --genome --space` with the study's
    seeds: its per-seed table and its row of fitness_vs_final.csv (search fitness against the
    retraining's); the models and summary go into the search's record `r`."""
    from evo_msa import api

    heavy = clear(ctx.scratch / name / sf.final_seed_folder(r['seed']))
    cfg = RunConfig.from_dict(r["best"]["run_config"], rundir.BEST)
    if ctx.quick:
        cfg.train.epochs = min(cfg.train.epochs, ctx.quick_value("epochs", 2))
    summary = api.train(ctx.data, config=cfg, seeds=ctx.seeds, out=heavy, log=lambda s: None)
    table = load_csv(heavy / rundir.METRICS_CSV, "per-seed metrics")
    table.insert(0, "search_seed", r["seed"])
    metric = r["best"].get("metric", "loss")
    final_fit = summary["valid"].get(metric, {"mean": math.nan, "std": math.nan})
    final = {"search_seed": r["seed"], "fitness_metric": metric,
             "search_fitness": r["best"].get("fitness"),
             "final_valid_fitness_mean": final_fit["mean"],
             "final_valid_fitness_std": final_fit["std"],
             "final_valid_loss_mean": summary["valid"]["loss"]["mean"],
             "final_valid_loss_std": summary["valid"]["loss"]["std"],
             **{f"test_{k}": x["mean"] for k, x in summary["test"].items()}}
    write_json(folder / sf.search_seed_folder(r['seed']) / sf.RETRAINED, summary)
    r["models"], r["summary"] = heavy, summary
    return table, final


def _write_pooled(ctx: Context, name: str, folder: Path, tables: list[pd.DataFrame],
                  search_seeds: list[int]) -> dict:
    """metrics.json/csv of a search variant: the seeds of every retraining pooled."""
    from evo_msa.training.multiseed import pool

    table = pd.concat(tables, ignore_index=True)
    pooled = pool(table)
    pooled["seeds"] = ctx.seeds
    pooled["search_seeds"] = search_seeds
    write_metrics(folder, pooled, table, variant=name, kind="search")
    return pooled


def _write_curves(folder: Path, runs: list[dict]) -> list[list[float]]:
    """best_so_far.csv: every search's best-so-far fitness against evaluations; the curves."""
    curves = [_best_so_far(r["dir"]) for r in runs]
    pd.DataFrame({f"search_seed{r['seed']}": pd.Series(c) for r, c in zip(runs, curves)}
                 ).rename_axis("evaluations").to_csv(folder / sf.BEST_SO_FAR_CSV)
    return curves


def _copy_winner(folder: Path, win: dict) -> tuple[Path, Path]:
    """The winning search's best_genome.json and space file, copied into the variant folder."""
    space = folder / Path(win["space"]).name
    shutil.copy2(win["space"], space)
    best = folder / rundir.BEST
    shutil.copy2(win["dir"] / rundir.BEST, best)
    return best, space


def _publish(ctx: Context, name: str, best: Path, space: Path) -> None:
    """<study>/<dataset>/best_genome.json with its space beside it (what other studies'
    `genome:` names) and a README saying how to retrain it."""
    shutil.copy2(best, ctx.out / rundir.BEST)
    shutil.copy2(space, ctx.out / space.name)
    (ctx.out / sf.README).write_text(
        f"Best genome of `{ctx.study.name}/{ctx.dataset.name}/{name}` (selected on "
        f"valid only). Retrain it from scratch:\n\n    evo-msa train --data "
        f"{ctx.data if ctx.quick else Path(DEFAULT_DATA_DIR) / ctx.dataset.path} --genome "
        f"{ctx.out / rundir.BEST} --space {ctx.out / space.name} "
        f"--seeds {' '.join(map(str, ctx.seeds))} --out DIR\n")


def _override_space(ctx: Context, name: str, space: str, overrides: dict) -> str:
    """A copy of `space` in the scratch folder with `overrides` on top (mappings merge, null
    removes a key), named after the variant."""
    import yaml

    from evo_msa.space import load_space

    raw = read_yaml(space, "search space")
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(raw.get(key), dict):
            merged = {**raw[key], **value}
            raw[key] = {k: x for k, x in merged.items() if x is not None}
        else:
            raw[key] = value
    raw["name"] = f"{raw.get('name', Path(space).stem)}_{name}"
    path = ctx.scratch / "spaces" / f"{raw['name']}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"# {space} with {overrides}\n" + yaml.safe_dump(raw, sort_keys=False))
    load_space(path)
    return str(path)


def _quiet(ctx: Context):
    def log(line: str) -> None:
        if line.startswith(("gen ", "generation", "search finished")):
            ctx.log("     " + line)
    return log


def _best_so_far(run: Path) -> list[float]:
    """The best validation fitness after each training of a search (rows answered without a
    training, cached or rejected, spend no budget and take no step)."""
    frame = read_leaderboard(run / rundir.LEADERBOARD)
    frame = frame[[Status(x).trained for x in frame["status"]]]
    sign = objectives(read_best(run, required=True))[0].sign
    vals = pd.to_numeric(frame["fitness"], errors="coerce").to_numpy(dtype=float)
    usable = [Status(x).usable for x in frame["status"]]
    losses = np.where(np.array(usable) & np.isfinite(vals), sign * vals, np.inf)
    return [float(sign * x) for x in np.minimum.accumulate(losses)]
