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
from evo_msa.studies.spec import (DEFAULT_DATA_DIR, Context, Skip, copy_small, expand,
                                      log_result, write_provenance, variant_dir, write_metrics,
                                      to_yaml)
from evo_msa.io import write_json
from evo_msa.metrics import Objective
from evo_msa.nas.evaluation import Status

# ---- baseline --------------------------------------------------------------------------

def _baseline_models(ctx: Context, models) -> list[str]:
    if models in (None, "auto"):
        task = _task(ctx)
        return ["ridge", "mlp"] if task == "regression" else ["softmax", "mlp"]
    return list(models) if isinstance(models, list) else [models]


def _task(ctx: Context) -> str:
    if "task" not in ctx.done.get("__data__", {}):
        from evo_msa.data import load_data

        d = load_data(ctx.data)
        ctx.done["__data__"] = {"task": d.task, "modalities": list(d.modalities)}
    return ctx.done["__data__"]["task"]


def _modalities(ctx: Context) -> list[str]:
    _task(ctx)
    return ctx.done["__data__"]["modalities"]


def run_baseline(ctx: Context, v: dict, name: str | None = None,
                 model: str | None = None, mods: list[str] | None = None) -> dict:
    from evo_msa import api

    name = name or v["name"]
    model = model or v["model"]
    mods = mods if mods is not None else v.get("modalities")
    folder = variant_dir(ctx, name)
    heavy = ctx.scratch / name
    if heavy.exists():
        shutil.rmtree(heavy)
    summary = api.baseline(ctx.data, model=model, modalities=mods, seeds=ctx.seeds,
                           out=heavy, log=lambda s: None)
    table = pd.read_csv(heavy / "metrics.csv")
    write_metrics(folder, summary, table, variant=name, kind="baseline")
    cmd = (f"evo-msa baseline --data {ctx.data} --model {model}"
           + (f" --modalities {','.join(mods)}" if mods else "")
           + f" --seeds {' '.join(map(str, ctx.seeds))} --out DIR")
    write_provenance(ctx, folder, {**v, "name": name, "model": model, "modalities": mods},
                {"equivalent": cmd})
    log_result(ctx, name, summary)
    return {"kind": "baseline", "folder": folder, "summary": summary}


def run_baselines(ctx: Context, v: dict) -> dict:
    models = _baseline_models(ctx, v.get("models"))
    mods = _modalities(ctx)
    if v.get("subsets", "all") == "all":
        subsets = [list(c) for k in range(1, len(mods) + 1) for c in itertools.combinations(mods, k)]
    else:
        subsets = [s if isinstance(s, list) else s.split(",") for s in v["subsets"]]
    records = {}
    for model in models:
        for subset in subsets:
            name = f"{model}_{''.join(m[0] for m in subset)}"
            records[name] = run_baseline(ctx, v, name, model, subset)
    return {"kind": "baselines", "records": records}


# ---- train -----------------------------------------------------------------------------


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
        genome, space = expand(v.get("genome"), ctx), expand(v.get("space"), ctx)
        if genome and not space:  # the space file published beside the genome
            beside = sorted(Path(genome).parent.glob("*.yaml"))
            if not beside:
                if not ctx.quick:
                    raise Skip(f"{genome}: no genome with a space beside it yet")
                beside = [Path("search_spaces/haemsa.yaml")]
            space = str(beside[0])
    if genome:
        loaded = load_space(space)
        if Path(genome).is_file():
            values = api.read_genome(genome, loaded.size)
            origin = {"genome": str(genome), "space": str(space)}
        elif ctx.quick:  # a study whose genome is not committed yet still runs in CI
            import random

            rng = random.Random(0)
            values = [rng.random() for _ in range(loaded.size)]
            origin = {"genome": f"(missing {genome}: a random genome, --quick only)",
                      "space": str(space)}
        else:
            raise Skip(f"{genome}: no such genome file (run the study that makes it first)")
        cfg = loaded.to_config(values, available=_modalities(ctx))
    elif v.get("arch"):
        cfg = api.run_config(arch=expand(v["arch"], ctx))
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
    from evo_msa.rundir import RunDir
    from evo_msa.training.multiseed import per_seed_table, summarise
    from evo_msa.training.saved import save_member
    from evo_msa.training.trainer import MemberStatus, PopulationTrainer, TrainingDiverged

    jobs = []
    for v in variants:
        if v["kind"] != "train" or v.get("genome_from") or v.get("alone"):
            continue
        try:
            cfg, origin = variant_config(ctx, v)
        except Skip:
            continue
        jobs.append((v["name"], cfg, origin))
    by_batch: dict[int, list] = {}
    for job in jobs:
        by_batch.setdefault(job[1].train.batch_size, []).append(job)
    seeds = ctx.seeds
    data = load_data(ctx.data)
    origin_data = provenance(ctx.data)
    for group in by_batch.values():
        if len(group) < 2:
            continue
        configs = [cfg for _, cfg, _ in group for _ in seeds]
        start = time.time()
        ctx.log(f"   training {len(group)} variants x {len(seeds)} seeds together: "
                + ", ".join(n for n, _, _ in group))
        trainer = PopulationTrainer(data, configs, seeds * len(group), device="cpu")
        results = trainer.fit()
        for k, (name, cfg, origin) in enumerate(group):
            members = list(range(k * len(seeds), (k + 1) * len(seeds)))
            rs = [results[i] for i in members]
            for seed, r in zip(seeds, rs):
                if r.status is not MemberStatus.OK:
                    raise TrainingDiverged(f"{name} seed {seed}: {r.error}")
            heavy = ctx.scratch / name
            if heavy.exists():
                shutil.rmtree(heavy)
            run = RunDir.create(heavy, resume_hint=False)
            for i, seed, r in zip(members, seeds, rs):
                save_member(run, f"seed_{seed}", trainer.model, i, seed, r, data.signature(),
                            data.normalization, origin_data)
            summary = summarise(rs, seeds)
            summary.update({"run_config": cfg.to_dict(), "data": ctx.data,
                            "provenance": origin_data,
                            "trained_with": [n for n, _, _ in group]})
            write_json(heavy / "metrics.json", summary)
            per_seed_table(rs, seeds).to_csv(heavy / "metrics.csv", index=False)
            ctx.done.setdefault("__pretrained__", {})[name] = (cfg, origin, summary, heavy)
        ctx.log(f"   trained together in {time.time() - start:.0f}s")


def run_train(ctx: Context, v: dict) -> dict:
    from evo_msa import api

    pre = ctx.done.get("__pretrained__", {}).get(v["name"])
    if pre is not None:
        cfg, origin, summary, heavy = pre
    else:
        cfg, origin = variant_config(ctx, v)
        heavy = ctx.scratch / v["name"]
        if heavy.exists():
            shutil.rmtree(heavy)
        summary = api.train(ctx.data, config=cfg, seeds=ctx.seeds, out=heavy,
                            log=lambda s: None)
    folder = variant_dir(ctx, v["name"])
    copy_small(heavy, folder)
    if "genome" in origin and not origin["genome"].startswith("(") and not v.get("overrides"):
        cmd = (f"evo-msa train --data {ctx.data} --genome {origin['genome']} --space "
               f"{origin['space']} --seeds {' '.join(map(str, ctx.seeds))} --out DIR")
    else:
        (folder / "run_config.yaml").write_text(to_yaml(cfg.to_dict()))
        cmd = (f"evo-msa train --data {ctx.data} --arch run_config.yaml --seeds "
               f"{' '.join(map(str, ctx.seeds))} --out DIR")
    write_json(folder / "metrics.json", {**json.loads((folder / "metrics.json").read_text()),
                                         "variant": v["name"], "kind": "train",
                                         "origin": origin})
    write_provenance(ctx, folder, v, {"equivalent": cmd, **{k: str(x) for k, x in origin.items()}})
    log_result(ctx, v["name"], summary)
    return {"kind": "train", "folder": folder, "models": heavy, "summary": summary,
            "config": cfg}


# ---- search ----------------------------------------------------------------------------

def run_search(ctx: Context, v: dict) -> dict:
    from evo_msa import api
    from evo_msa.space import load_space

    space = expand(v["space"], ctx)
    load_space(space)
    overrides = dict(v.get("space_overrides") or {})
    if ctx.quick:  # toy size: the fitness budget too
        overrides["fixed"] = {**(overrides.get("fixed") or {}),
                              "train.epochs": ctx.quick_value("epochs", 2)}
    if overrides:  # e.g. {fitness: {seeds: 1}}: a variant of a shipped space
        space = _override_space(ctx, {**v, "space_overrides": overrides}, space)
    opts = dict(v.get("options") or {})
    search_seeds = list(v.get("search_seeds", [opts.pop("seed", 0)]))
    if ctx.quick:
        opts["pop"] = ctx.quick_value("pop", opts.get("pop", 4))
        opts["generations"] = ctx.quick_value("generations", opts.get("generations", 2))
        q = ctx.quick_value("search_seeds", None)
        search_seeds = list(q) if q else search_seeds[:2]
        opts["evolution"] = {**opts.get("evolution", {}), "elites": min(
            opts.get("evolution", {}).get("elites", 2), opts["pop"] - 1)}
    opts.setdefault("cpus_per_trial", 1.0)
    folder = variant_dir(ctx, v["name"])
    runs = []
    for s in search_seeds:
        heavy = ctx.scratch / v["name"] / f"search_seed{s}"
        if heavy.exists():
            shutil.rmtree(heavy)
        heavy.parent.mkdir(parents=True, exist_ok=True)
        run_opts = {**opts, "seed": s, "final_seeds": []}
        if ctx.quick:
            run_opts["evolution"] = opts["evolution"]
        ctx.log(f"   search seed {s}: {space}, {json.dumps(run_opts)}")
        run = api.search(space, ctx.data, out=heavy, log=_quiet(ctx), **run_opts)
        copy_small(Path(run), folder / f"search_seed{s}")
        best = json.loads((Path(run) / "best_genome.json").read_text())
        runs.append({"seed": s, "dir": Path(run), "best": best,
                     "space": str(next(Path(run).glob("*.yaml"))) if not
                     (Path(run) / Path(space).name).is_file() else str(Path(run) / Path(space).name)})
        flags = " ".join(f"--{k.replace('_', '-')} {val}" for k, val in run_opts.items()
                         if k not in ("evolution", "final_seeds"))
        (folder / f"search_seed{s}" / "command.txt").write_text(
            f"{ctx.command}\n# equivalent: evo-msa search --space {space} --data {ctx.data} "
            f"{flags} --final-seeds --out DIR\n")
    # the best genome of each search, retrained like `evo-msa train --genome --space`
    tables, finals = [], []
    # retrain: all (every search's best genome) or best (only the best over search seeds)
    # the best over search seeds (by search fitness, never by test)
    win = min(runs, key=lambda r: _loss_of(r["best"]))
    for r in runs:
        if v.get("retrain", "all") == "best" and r is not win:
            r["models"], r["summary"] = None, None
            continue
        heavy = ctx.scratch / v["name"] / f"final_seed{r['seed']}"
        if heavy.exists():
            shutil.rmtree(heavy)
        cfg = RunConfig.from_dict(r["best"]["run_config"], "best_genome.json")
        if ctx.quick:
            cfg.train.epochs = min(cfg.train.epochs, ctx.quick_value("epochs", 2))
        summary = _train_quiet(ctx, cfg, heavy)
        table = pd.read_csv(heavy / "metrics.csv")
        table.insert(0, "search_seed", r["seed"])
        tables.append(table)
        fitness = r["best"].get("fitness")
        metric = r["best"].get("metric", "loss")
        final_fit = summary["valid"].get(metric, {"mean": math.nan, "std": math.nan})
        finals.append({"search_seed": r["seed"], "fitness_metric": metric,
                       "search_fitness": fitness, "final_valid_fitness_mean": final_fit["mean"],
                       "final_valid_fitness_std": final_fit["std"],
                       "final_valid_loss_mean": summary["valid"]["loss"]["mean"],
                       "final_valid_loss_std": summary["valid"]["loss"]["std"],
                       **{f"test_{k}": x["mean"] for k, x in summary["test"].items()}})
        write_json(folder / f"search_seed{r['seed']}" / "retrained.json", summary)
        r["models"] = heavy
        r["summary"] = summary
    table = pd.concat(tables, ignore_index=True)
    pooled = _pool(table)
    pooled["seeds"] = ctx.seeds
    pooled["search_seeds"] = search_seeds
    write_metrics(folder, pooled, table, variant=v["name"], kind="search")
    pd.DataFrame(finals).to_csv(folder / "fitness_vs_final.csv", index=False)
    curves = [_best_so_far(r["dir"]) for r in runs]
    pd.DataFrame({f"search_seed{r['seed']}": pd.Series(c) for r, c in zip(runs, curves)}
                 ).rename_axis("evaluations").to_csv(folder / "best_so_far.csv")
    shutil.copy2(r_space := win["space"], folder / Path(r_space).name)
    best_path = folder / "best_genome.json"
    shutil.copy2(win["dir"] / "best_genome.json", best_path)
    write_provenance(ctx, folder, v, {"space": space, "search_seeds": str(search_seeds)})
    if v.get("publish"):  # <study>/<dataset>/best_genome.json with its space beside it
        shutil.copy2(best_path, ctx.out / "best_genome.json")
        shutil.copy2(folder / Path(r_space).name, ctx.out / Path(r_space).name)
        (ctx.out / "README.md").write_text(
            f"Best genome of `{ctx.study.name}/{ctx.dataset.name}/{v['name']}` (selected on "
            f"valid only). Retrain it from scratch:\n\n    evo-msa train --data "
            f"{ctx.data if ctx.quick else Path(DEFAULT_DATA_DIR) / ctx.dataset.path} --genome "
            f"{ctx.out / 'best_genome.json'} --space {ctx.out / Path(r_space).name} "
            f"--seeds {' '.join(map(str, ctx.seeds))} --out DIR\n")
    log_result(ctx, v["name"], pooled)
    return {"kind": "search", "folder": folder, "best_genome": str(best_path),
            "space": str(folder / Path(r_space).name), "models": win["models"],
            "summary": win["summary"], "curves": curves, "runs": runs}


def _override_space(ctx: Context, v: dict, space: str) -> str:
    import yaml

    from evo_msa.space import load_space

    raw = read_yaml(space, "search space")
    for key, value in v["space_overrides"].items():  # mappings merge; null removes a key
        if isinstance(value, dict) and isinstance(raw.get(key), dict):
            merged = {**raw[key], **value}
            raw[key] = {k: x for k, x in merged.items() if x is not None}
        else:
            raw[key] = value
    raw["name"] = f"{raw.get('name', Path(space).stem)}_{v['name']}"
    path = ctx.scratch / "spaces" / f"{raw['name']}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"# {space} with {v['space_overrides']}\n" + yaml.safe_dump(raw, sort_keys=False))
    load_space(path)
    return str(path)


def _objective(best: dict) -> Objective:
    """The primary objective a search's best_genome.json was selected on."""
    return Objective(best.get("metric", "loss"), best.get("direction", ""))


def _loss_of(best: dict) -> float:
    fit = best.get("fitness")
    return _objective(best).loss(fit[0] if isinstance(fit, list) else fit)


def _quiet(ctx: Context):
    def log(line: str) -> None:
        if line.startswith(("gen ", "generation", "search finished")):
            ctx.log("     " + line)
    return log


def _train_quiet(ctx: Context, cfg: RunConfig, heavy: Path) -> dict:
    from evo_msa import api

    return api.train(ctx.data, config=cfg, seeds=ctx.seeds, out=heavy, log=lambda s: None)


def _pool(table: pd.DataFrame) -> dict:
    out: dict = {}
    for col in table.columns:
        split, _, metric = col.partition("_")
        if split in ("train", "valid", "test") and metric:
            vals = pd.to_numeric(table[col], errors="coerce").to_numpy(dtype=float)
            vals = vals[np.isfinite(vals)]
            out.setdefault(split, {})[metric] = {
                "mean": float(vals.mean()) if len(vals) else math.nan,
                "std": float(vals.std(ddof=1)) if len(vals) > 1 else 0.0}
    return out


def _best_so_far(run: Path) -> list[float]:
    frame = pd.read_csv(run / "leaderboard.csv")
    sign = _objective(json.loads((run / "best_genome.json").read_text())).sign
    vals = pd.to_numeric(frame["fitness"], errors="coerce").to_numpy(dtype=float)
    usable = [Status(x).usable for x in frame["status"]]
    losses = np.where(np.array(usable) & np.isfinite(vals), sign * vals, np.inf)
    return [float(sign * x) for x in np.minimum.accumulate(losses)]
