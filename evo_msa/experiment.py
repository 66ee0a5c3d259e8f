"""Studies: `evo-msa experiment experiments/<study>.yaml [--quick] [--data-dir DIR]`.

A study YAML names its datasets and its variants; the runner trains, searches and scores them
through evo_msa.api and writes only small files (CSV, JSON, PNG, the exact command, the git
commit) into ``experiments/results/<study>/<dataset>/<variant>/``. Heavy outputs (saved
weights, Ray's folders) go to a scratch folder. ``--quick`` runs the same study at toy size on
the synthetic data into a temporary folder (CI runs every study that way).

    name: main_table
    description: evolved HAEMSA against the baselines
    seeds: [0, 1, 2, 3, 4]                 # training seeds of every train/baseline variant
    datasets:
      - {name: mosi_acl17_minilm, path: mosi-acl17/mosi_acl17_minilm.pkl, quick: synthetic:mosi}
    variants:
      - {name: baselines, kind: baselines, models: auto, subsets: all}   # every modality subset
      - {name: default, kind: train}                                     # hand-set HAEMSA
      - {name: evolved, kind: train, genome: experiments/results/x/{dataset}/best_genome.json,
         space: experiments/results/x/{dataset}/haemsa_small_data.yaml}
      - {name: evo, kind: search, space: search_spaces/haemsa.yaml, search_seeds: [0, 1, 2],
         options: {pop: 16, generations: 6}}
      - {name: no_depth, kind: train, genome_from: evo, overrides: {model.depth: 0}}
      - {name: missing, kind: missing, of: evolved}      # zero each modality at test time
      - {name: tsne, kind: tsne, of: [evolved, no_depth]}
    quick: {seeds: [0, 1], epochs: 2, pop: 4, generations: 2}   # --quick sizes

Kinds: baseline (one model, one modality subset), baselines (every model x subset), train (the
default config, an `arch`, a `genome`+`space`, or `genome_from` a search variant of the same
study; `overrides` of run-config fields on top), search (one search per search seed, the
best genome retrained by `evo-msa train` with the study's seeds), missing, tsne (need a
trained variant's saved models, which stay in the scratch folder of the same invocation, or are
retrained there when absent).
"""
from __future__ import annotations

import contextlib
import itertools
import json
import math
import shlex
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd

from evo_msa.config import RunConfig, read_yaml
from evo_msa.errors import UserError
from evo_msa.io import write_json

KINDS = ("baseline", "baselines", "train", "search", "missing", "tsne")
RESULTS = Path("experiments/results")
SUMMARY = "summary.csv"
RESULTS_MD = Path("experiments/RESULTS.md")
NOTES_DIR = Path("experiments/notes")  # hand-written commentary, one <study>.md per study
DEFAULT_DATA_DIR = "../shared/data"
SMALL = (".csv", ".json", ".png", ".yaml", ".txt", ".md")
QUICK_DEFAULTS = {"seeds": [0, 1], "epochs": 2, "pop": 3, "generations": 2, "search_seeds": [0],
                  "n": 160}


class Skip(Exception):
    """A variant that cannot run here (its genome is not made yet): one line, and on."""


# ---- the study file -----------------------------------------------------------------------

@dataclass
class Dataset:
    name: str
    path: str  # relative to the data dir (or a synthetic spec)
    quick: str  # the synthetic stand-in of --quick


@dataclass
class Study:
    name: str
    description: str
    datasets: list[Dataset]
    variants: list[dict]
    seeds: list[int]
    quick: dict = field(default_factory=dict)
    source: str = ""


def load_study(path: str | Path) -> Study:
    raw = read_yaml(path, "study")
    where = str(path)
    if not isinstance(raw, dict):
        raise UserError(f"{where}: expected a mapping with name, datasets, variants")
    unknown = set(raw) - {"name", "description", "datasets", "variants", "seeds", "quick"}
    if unknown:
        raise UserError(f"{where}: unknown key {sorted(unknown)[0]!r}")
    name = raw.get("name") or Path(path).stem
    datasets = []
    for i, d in enumerate(raw.get("datasets") or []):
        if not isinstance(d, dict) or "path" not in d:
            raise UserError(f"{where}: datasets[{i}] needs a path")
        path_ = str(d["path"])
        datasets.append(Dataset(d.get("name") or Path(path_).stem, path_,
                                d.get("quick") or _guess_quick(path_)))
    if not datasets:
        raise UserError(f"{where}: no datasets")
    variants = raw.get("variants") or []
    seen: dict[str, set] = {}
    for i, v in enumerate(variants):
        if not isinstance(v, dict) or "name" not in v or v.get("kind") not in KINDS:
            raise UserError(f"{where}: variants[{i}] needs a name and a kind in {list(KINDS)}")
        # one name may appear once per dataset (e.g. a search with a space per dataset)
        on = set(v.get("datasets") or ["*"])
        had = seen.setdefault(v["name"], set())
        if "*" in had or "*" in on and had or had & on:
            raise UserError(f"{where}: variant {v['name']!r} is listed twice for a dataset")
        had |= on
    seeds = raw.get("seeds", [0, 1, 2, 3, 4])
    if not isinstance(seeds, list) or not all(isinstance(s, int) for s in seeds):
        raise UserError(f"{where}: seeds must be a list of integers")
    return Study(name, str(raw.get("description", "")).strip(), datasets, variants, seeds,
                 raw.get("quick") or {}, where)


def _guess_quick(path: str) -> str:
    return "synthetic:iemocap" if "iemocap" in path.lower() else "synthetic:mosi"


# ---- running -----------------------------------------------------------------------------

@dataclass
class Context:
    study: Study
    dataset: Dataset
    data: str  # the data spec handed to the API
    out: Path  # results/<study>/<dataset>
    scratch: Path  # heavy outputs of this invocation
    quick: bool
    command: str
    log: Callable[[str], None]
    done: dict = field(default_factory=dict)  # variant name -> its record

    @property
    def seeds(self) -> list[int]:
        return list(self.quick_value("seeds", self.study.seeds))

    def quick_value(self, key: str, full: Any) -> Any:
        if not self.quick:
            return full
        q = {**QUICK_DEFAULTS, **self.study.quick}
        return q.get(key, full) if q.get(key) is not None else full


def run_study(path: str | Path, *, quick: bool = False, data_dir: str | None = None,
              out: str | Path | None = None, only: list[str] | None = None,
              datasets: list[str] | None = None, scratch: str | Path | None = None,
              summarize: bool = True, log: Callable[[str], None] = print) -> Path:
    """Run every variant of a study on every dataset found; returns the study's result folder."""
    study = load_study(path)
    import os

    # Ray starts its workers at niceness 15: on a machine shared with other work they then
    # get almost no CPU; a study's trials run at the driver's priority instead
    os.environ.setdefault("RAY_worker_niceness", "0")
    if only:
        missing = [n for n in only if n not in {v["name"] for v in study.variants}]
        if missing:
            raise UserError(f"{path}: no variant {missing[0]!r}")
    root = Path(out) if out else (Path(tempfile.mkdtemp(prefix="evo-msa-quick-")) if quick
                                  else RESULTS)
    scratch_root = Path(scratch) if scratch else Path(tempfile.mkdtemp(prefix="evo-msa-scratch-"))
    data_dir = Path(data_dir or DEFAULT_DATA_DIR)
    command = "evo-msa " + " ".join(shlex.quote(a) for a in _argv())
    log(f"study {study.name} ({'quick, ' if quick else ''}results -> {root / study.name})")
    with _shared_ray(quick):
        _run_datasets(study, quick, data_dir, root, scratch_root, command, only, datasets, log)
    if summarize:
        write_summary(root, quick=quick)
    return root / study.name


@contextlib.contextmanager
def _shared_ray(enabled: bool):
    """--quick: the study's searches share one local Ray (started by the first search, shut
    down at the end of the study) instead of starting one each: most of a toy search's time."""
    from evo_msa.search import runner

    original = getattr(runner, "_connect_ray", None)
    if not enabled or original is None:
        yield
        return
    stack = contextlib.ExitStack()

    @contextlib.contextmanager
    def shared(opts):
        if not stack._exit_callbacks:  # the first search starts Ray, as it always does
            stack.enter_context(original(opts))
        yield

    runner._connect_ray = shared
    try:
        yield
    finally:
        runner._connect_ray = original
        stack.close()


def _run_datasets(study, quick, data_dir, root, scratch_root, command, only, datasets, log):
    for ds in study.datasets:
        if datasets and ds.name not in datasets:
            continue
        if quick:
            q = {**QUICK_DEFAULTS, **study.quick}
            spec = ds.quick + ("" if "n=" in ds.quick else
                               ("&" if "?" in ds.quick else "?") + f"n={q['n']}")
        else:
            full = data_dir / ds.path
            if ds.path.startswith("synthetic:"):
                spec = ds.path
            elif not full.is_file():
                log(f"skipped {ds.name}: {full} not found")
                continue
            else:
                spec = str(full)
        ctx = Context(study, ds, spec, root / study.name / ds.name,
                      scratch_root / study.name / ds.name, quick, command, log)
        selected = [v for v in study.variants if (not only or v["name"] in only)
                    and (not v.get("datasets") or ds.name in v["datasets"])
                    and not (v.get("full_only") and quick)]
        _train_together(ctx, selected)
        for v in study.variants:
            if only and v["name"] not in only:
                continue
            if v.get("datasets") and ds.name not in v["datasets"]:
                continue
            if v.get("full_only") and quick:
                continue
            start = time.time()
            log(f"== {study.name} / {ds.name} / {v['name']} ({v['kind']})")
            try:
                record = RUNNERS[v["kind"]](ctx, v)
            except Skip as why:
                log(f"skipped {v['name']}: {why}")
                continue
            ctx.done[v["name"]] = record
            log(f"   {v['name']} done in {time.time() - start:.0f}s")
        _study_figures(ctx)


def _argv() -> list[str]:
    argv = list(sys.argv[1:])
    if argv and argv[0] != "experiment":
        return ["experiment", *argv]
    return argv


def _variant_dir(ctx: Context, name: str) -> Path:
    folder = ctx.out / name
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    return folder


def _provenance(ctx: Context, folder: Path, variant: dict, extra: dict | None = None) -> None:
    from evo_msa.provenance import provenance

    info = {"study": ctx.study.name, "dataset": ctx.dataset.name, "variant": variant,
            "command": ctx.command, "quick": ctx.quick, "study_file": ctx.study.source,
            **provenance(ctx.data), **(extra or {})}
    write_json(folder / "provenance.json", info)
    (folder / "command.txt").write_text(ctx.command + "\n" + "".join(
        f"# {k}: {v}\n" for k, v in (extra or {}).items() if isinstance(v, str)))


def _copy_small(src: Path, dst: Path, skip: tuple[str, ...] = ("ray",)) -> None:
    for p in src.rglob("*"):
        rel = p.relative_to(src)
        if p.is_dir() or rel.parts[0] in skip or p.suffix not in SMALL or p.name.startswith("."):
            continue
        if p.name in ("state.json", "state.prev.json"):
            continue
        (dst / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(p, dst / rel)


def _write_metrics(folder: Path, summary: dict, table: pd.DataFrame | None, **extra) -> None:
    write_json(folder / "metrics.json", {**summary, **extra})
    if table is not None:
        table.to_csv(folder / "metrics.csv", index=False)


# ---- baseline --------------------------------------------------------------------------

def _baseline_models(ctx: Context, models) -> list[str]:
    if models in (None, "auto"):
        from evo_msa.data import load_data

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
    folder = _variant_dir(ctx, name)
    heavy = ctx.scratch / name
    if heavy.exists():
        shutil.rmtree(heavy)
    summary = api.baseline(ctx.data, model=model, modalities=mods, seeds=ctx.seeds,
                           out=heavy, log=lambda s: None)
    table = pd.read_csv(heavy / "metrics.csv")
    _write_metrics(folder, summary, table, variant=name, kind="baseline")
    cmd = (f"evo-msa baseline --data {ctx.data} --model {model}"
           + (f" --modalities {','.join(mods)}" if mods else "")
           + f" --seeds {' '.join(map(str, ctx.seeds))} --out DIR")
    _provenance(ctx, folder, {**v, "name": name, "model": model, "modalities": mods},
                {"equivalent": cmd})
    _log_result(ctx, name, summary)
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

def _fmt(text: str | None, ctx: Context) -> str | None:
    return text.format(dataset=ctx.dataset.name, study=ctx.study.name) if text else text


def variant_config(ctx: Context, v: dict) -> tuple[RunConfig, dict]:
    """The run config a train variant trains, and where it came from."""
    from evo_msa import api
    from evo_msa.space import load_space

    origin: dict = {}
    if v.get("genome_from"):
        rec = ctx.done.get(v["genome_from"])
        if rec is None or "best_genome" not in rec:
            raise UserError(f"{ctx.study.source}: {v['name']}: genome_from {v['genome_from']!r} "
                            "is not a search variant run before it")
        genome, space = rec["best_genome"], rec["space"]
    else:
        genome, space = _fmt(v.get("genome"), ctx), _fmt(v.get("space"), ctx)
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
        cfg = api.run_config(arch=_fmt(v["arch"], ctx))
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


def _train_together(ctx: Context, variants: list[dict]) -> None:
    """Every train variant of a dataset whose config is known before the run (not
    `genome_from` a search) trains in one population: variants x seeds members, each with
    its own seed's data order, initialisation and dropout noise, as `evo-msa train` would
    train it alone, for the price of about one training."""
    from evo_msa.data import load_data
    from evo_msa.provenance import provenance
    from evo_msa.rundir import RunDir
    from evo_msa.train.multiseed import per_seed_table, summarise
    from evo_msa.train.saved import save_member
    from evo_msa.train.trainer import MemberStatus, PopulationTrainer, TrainingDiverged

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
    folder = _variant_dir(ctx, v["name"])
    _copy_small(heavy, folder)
    if "genome" in origin and not origin["genome"].startswith("(") and not v.get("overrides"):
        cmd = (f"evo-msa train --data {ctx.data} --genome {origin['genome']} --space "
               f"{origin['space']} --seeds {' '.join(map(str, ctx.seeds))} --out DIR")
    else:
        (folder / "run_config.yaml").write_text(_yaml(cfg.to_dict()))
        cmd = (f"evo-msa train --data {ctx.data} --arch run_config.yaml --seeds "
               f"{' '.join(map(str, ctx.seeds))} --out DIR")
    write_json(folder / "metrics.json", {**json.loads((folder / "metrics.json").read_text()),
                                         "variant": v["name"], "kind": "train",
                                         "origin": origin})
    _provenance(ctx, folder, v, {"equivalent": cmd, **{k: str(x) for k, x in origin.items()}})
    _log_result(ctx, v["name"], summary)
    return {"kind": "train", "folder": folder, "models": heavy, "summary": summary,
            "config": cfg}


def _yaml(d: dict) -> str:
    import yaml

    return yaml.safe_dump(d, sort_keys=False)


def _log_result(ctx: Context, name: str, summary: dict) -> None:
    test = summary.get("test", {})
    keys = [k for k in ("mae", "corr", "non0_acc2", "acc7", "weighted_f1", "acc") if k in test]
    ctx.log("   " + name + ": " + ", ".join(
        f"{k} {test[k]['mean']:.3f}+-{test[k]['std']:.3f}" for k in keys))


# ---- search ----------------------------------------------------------------------------

def run_search(ctx: Context, v: dict) -> dict:
    from evo_msa import api
    from evo_msa.space import load_space

    space = _fmt(v["space"], ctx)
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
    folder = _variant_dir(ctx, v["name"])
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
        _copy_small(Path(run), folder / f"search_seed{s}")
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
    best_run = min(runs, key=lambda r: _loss_of(r["best"]))
    for r in runs:
        if v.get("retrain", "all") == "best" and r is not best_run:
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
    from evo_msa.train.multiseed import summarise  # noqa: F401 (same structure, recomputed)

    pooled = _pool(table)
    pooled["seeds"] = ctx.seeds
    pooled["search_seeds"] = search_seeds
    _write_metrics(folder, pooled, table, variant=v["name"], kind="search")
    pd.DataFrame(finals).to_csv(folder / "fitness_vs_final.csv", index=False)
    curves = [_best_so_far(r["dir"]) for r in runs]
    pd.DataFrame({f"search_seed{r['seed']}": pd.Series(c) for r, c in zip(runs, curves)}
                 ).rename_axis("evaluations").to_csv(folder / "best_so_far.csv")
    # the best over search seeds (by search fitness, never by test)
    win = min(runs, key=lambda r: _loss_of(r["best"]))
    shutil.copy2(r_space := win["space"], folder / Path(r_space).name)
    best_path = folder / "best_genome.json"
    shutil.copy2(win["dir"] / "best_genome.json", best_path)
    _provenance(ctx, folder, v, {"space": space, "search_seeds": str(search_seeds)})
    if v.get("publish"):  # <study>/<dataset>/best_genome.json with its space beside it
        shutil.copy2(best_path, ctx.out / "best_genome.json")
        shutil.copy2(folder / Path(r_space).name, ctx.out / Path(r_space).name)
        (ctx.out / "README.md").write_text(
            f"Best genome of `{ctx.study.name}/{ctx.dataset.name}/{v['name']}` (selected on "
            f"valid only). Retrain it from scratch:\n\n    evo-msa train --data "
            f"{ctx.data if ctx.quick else Path(DEFAULT_DATA_DIR) / ctx.dataset.path} --genome "
            f"{ctx.out / 'best_genome.json'} --space {ctx.out / Path(r_space).name} "
            f"--seeds {' '.join(map(str, ctx.seeds))} --out DIR\n")
    _log_result(ctx, v["name"], pooled)
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


def _loss_of(best: dict) -> float:
    fit = best.get("fitness")
    value = fit[0] if isinstance(fit, list) else fit
    direction = best.get("direction") or "min"
    return value if direction == "min" else -value


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
    direction = "min"
    best_json = json.loads((run / "best_genome.json").read_text())
    direction = best_json.get("direction", direction)
    vals = pd.to_numeric(frame["fitness"], errors="coerce").to_numpy(dtype=float)
    ok = frame["status"].isin(["ok", "cached", "early-stopped"]).to_numpy() & np.isfinite(vals)
    vals = np.where(ok, vals, np.inf if direction == "min" else -np.inf)
    acc = np.minimum.accumulate(vals) if direction == "min" else np.maximum.accumulate(vals)
    return [float(x) for x in acc]


# ---- model internals: missing modalities, fused representation -------------------------

def _trained(ctx: Context, name: str, models: str | None = None) -> dict:
    """A variant's saved models: trained earlier in this invocation, or (`models:` in the
    variant) the seed_* folders another run left in a scratch folder."""
    if models:
        path = Path(models.format(dataset=ctx.dataset.name, study=ctx.study.name))
        if list(path.glob("seed_*/model.pt")):
            return {"models": path}
    rec = ctx.done.get(name)
    if (rec is None or "models" not in rec) and list((ctx.scratch / name).glob("seed_*/model.pt")):
        return {"models": ctx.scratch / name}  # an earlier invocation with the same --scratch
    if rec is None or "models" not in rec:
        raise Skip(f"{name!r} is not a train or search variant that ran before this one")
    return rec


def load_seed_models(folder: Path) -> list:
    from evo_msa.train.saved import load_model, model_folders

    return [load_model(f) for f in model_folders(folder)]


def forward_split(saved, split, zero: tuple[str, ...] = ()):
    """Main outputs and the fused representation (the main tower's gated mixture of experts)
    of a saved model on raw features, with the modalities in `zero` set to their train mean
    (zero after z-scoring): a modality missing at test time."""
    import torch

    from evo_msa.data.loader import apply_normalization

    split = apply_normalization(split, saved.normalization)
    model = saved.model
    with torch.no_grad():
        inputs = {m: torch.as_tensor(split.features[m])[None] for m in model.modalities}
        lengths = {m: torch.as_tensor(split.lengths[m])[None] for m in model.modalities}
        for m in zero:
            if m in inputs:
                inputs[m] = torch.zeros_like(inputs[m])
        out = model(inputs, lengths)
    return out.main[0].float().numpy(), out.embedding[0].float().numpy()


def run_missing(ctx: Context, v: dict) -> dict:
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
    folder = _variant_dir(ctx, v["name"])
    table = pd.DataFrame(rows)
    table.to_csv(folder / "per_seed.csv", index=False)
    agg = table.drop(columns="seed").groupby("zeroed", sort=False).agg(["mean", "std"])
    agg.columns = [f"{a}_{b}" for a, b in agg.columns]
    agg.reset_index().to_csv(folder / "missing.csv", index=False)
    _provenance(ctx, folder, v, {"of": v["of"], "modalities": ",".join(used)})
    _missing_figure(agg, folder / "missing.png", data.task, f"{ctx.dataset.name}: {v['of']}")
    ctx.log("   zeroed at test: " + "; ".join(
        f"{z}: " + ", ".join(f"{k} {agg.loc[z, 'test_' + k + '_mean']:.3f}"
                             for k in ("mae", "corr", "weighted_f1")
                             if f"test_{k}_mean" in agg.columns) for z in agg.index))
    return {"kind": "missing", "folder": folder}


def _missing_figure(agg: pd.DataFrame, path: Path, task: str, title: str) -> None:
    from evo_msa.report.plots import _pyplot

    plt = _pyplot()
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


def run_tsne(ctx: Context, v: dict) -> dict:
    from sklearn.manifold import TSNE

    from evo_msa.data import load_data
    from evo_msa.report.plots import _pyplot

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
    folder = _variant_dir(ctx, v["name"])
    plt = _pyplot()
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
        perplexity = min(30.0, max(2.0, (len(emb) - 1) / 3))
        xy = TSNE(n_components=2, init="pca", random_state=0, perplexity=perplexity
                  ).fit_transform(emb)
        from sklearn.metrics import silhouette_score

        sil = (float(silhouette_score(emb, classes)) if len(set(classes)) > 1 and
               len(emb) > len(set(classes)) else math.nan)
        rows.append({"variant": name, "seed": saved.seed, "silhouette_fused": sil})
        for k, lab in enumerate(labels):
            sel = classes == k
            ax.scatter(xy[sel, 0], xy[sel, 1], s=4, label=lab, alpha=0.7)
        ax.set_title(f"{name}\nsilhouette {sil:.3f}", fontsize=8)
        ax.set_xticks([])
        ax.set_yticks([])
    axes[0][0].legend(fontsize=6, markerscale=2)
    fig.tight_layout()
    fig.savefig(folder / "tsne.png")
    plt.close(fig)
    pd.DataFrame(rows).to_csv(folder / "silhouette.csv", index=False)
    _provenance(ctx, folder, v, {"of": ",".join(names)})
    ctx.log("   silhouette: " + ", ".join(f"{r['variant']} {r['silhouette_fused']:.3f}"
                                          for r in rows))
    return {"kind": "tsne", "folder": folder}


RUNNERS = {"baseline": run_baseline, "baselines": run_baselines, "train": run_train,
           "search": run_search, "missing": run_missing, "tsne": run_tsne}


# ---- study-level figures -----------------------------------------------------------------

def _study_figures(ctx: Context) -> None:
    """best_so_far.png: every search variant's best-so-far validation fitness against the
    number of evaluations, mean over search seeds with min-max spread."""
    searches = {n: r for n, r in ctx.done.items() if isinstance(r, dict) and
                r.get("kind") == "search"}
    if not searches:
        return
    from evo_msa.report.plots import _pyplot

    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 3.8), dpi=120)
    rows = []
    for name, rec in searches.items():
        n = min(len(c) for c in rec["curves"])
        arr = np.array([c[:n] for c in rec["curves"]])
        xs = np.arange(1, n + 1)
        mean = arr.mean(0)
        ax.plot(xs, mean, label=f"{name} (mean of {len(arr)})")
        ax.fill_between(xs, arr.min(0), arr.max(0), alpha=0.2)
        rows.append({"variant": name, "search_seeds": len(arr), "evaluations": n,
                     "final_best_mean": float(mean[-1]), "final_best_std":
                     float(arr[:, -1].std(ddof=1)) if len(arr) > 1 else 0.0,
                     "final_best_min": float(arr[:, -1].min()),
                     "final_best_max": float(arr[:, -1].max())})
    ax.set_xlabel("evaluations (trained genomes)")
    ax.set_ylabel("best-so-far validation fitness")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title(f"{ctx.study.name} / {ctx.dataset.name}", fontsize=9)
    fig.tight_layout()
    ctx.out.mkdir(parents=True, exist_ok=True)
    fig.savefig(ctx.out / "best_so_far.png")
    plt.close(fig)
    pd.DataFrame(rows).to_csv(ctx.out / "best_so_far.csv", index=False)
    # the winner's curse: a best genome's search fitness against the mean valid fitness of
    # its retraining with the study's seeds (points above the diagonal: selection was lucky)
    fig, ax = plt.subplots(figsize=(4.8, 4.2), dpi=120)
    lo, hi = math.inf, -math.inf
    for name, rec in searches.items():
        frame = pd.read_csv(rec["folder"] / "fitness_vs_final.csv")
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
    fig.savefig(ctx.out / "fitness_vs_final.png")
    plt.close(fig)


# ---- summary.csv and RESULTS.md ----------------------------------------------------------

def collect(root: Path) -> pd.DataFrame:
    """One row per variant with metrics.json under root/<study>/<dataset>/<variant>/."""
    rows = []
    for path in sorted(root.glob("*/*/*/metrics.json")):
        variant_dir = path.parent
        study, dataset, variant = variant_dir.parts[-3:]
        meta = json.loads(path.read_text())
        prov = {}
        if (variant_dir / "provenance.json").is_file():
            prov = json.loads((variant_dir / "provenance.json").read_text())
        row = {"study": study, "dataset": dataset, "variant": variant,
               "kind": meta.get("kind", ""), "seeds": len(meta.get("seeds", [])) or None,
               "search_seeds": len(meta.get("search_seeds", [])) or None,
               "quick": prov.get("quick", False), "git_commit": prov.get("git_commit")}
        for metric, val in (meta.get("test") or {}).items():
            row[f"test_{metric}_mean"] = val.get("mean")
            row[f"test_{metric}_std"] = val.get("std")
        valid = (meta.get("valid") or {}).get("loss")
        if valid:
            row["valid_loss_mean"], row["valid_loss_std"] = valid.get("mean"), valid.get("std")
        rows.append(row)
    return pd.DataFrame(rows)


def write_summary(root: Path | str = RESULTS, *, quick: bool = False,
                  markdown: Path | str | None = None) -> tuple[Path, Path]:
    root = Path(root)
    frame = collect(root)
    root.mkdir(parents=True, exist_ok=True)
    summary = root / SUMMARY
    frame.to_csv(summary, index=False)
    md = Path(markdown) if markdown else (root / "RESULTS.md" if quick or root != RESULTS
                                          else RESULTS_MD)
    md.write_text(render_markdown(frame, root, md.parent))
    return summary, md


METRIC_COLUMNS = {
    "regression": ["has0_acc2", "non0_acc2", "non0_f1", "acc7", "mae", "corr"],
    "classification": ["acc", "unweighted_acc", "weighted_f1"],
}


def _cell(row, metric: str) -> str:
    mean, std = row.get(f"test_{metric}_mean"), row.get(f"test_{metric}_std")
    if mean is None or (isinstance(mean, float) and math.isnan(mean)):
        return ""
    return f"{mean:.3f}" if std is None or math.isnan(std) else f"{mean:.3f} ± {std:.3f}"


def render_markdown(frame: pd.DataFrame, root: Path, md_dir: Path) -> str:
    import os

    lines = ["# Measured results", "",
             "Generated by `evo-msa experiment --summarize` from `experiments/results/*/*/*/"
             "metrics.json` (do not edit by hand; commentary lives in `experiments/notes/`). "
             "Test metrics are mean ± std over the training seeds (MMSA definitions); every "
             "selection used the valid split only.", ""]
    header = NOTES_DIR / "_header.md"
    if header.is_file() and root.resolve() == RESULTS.resolve():
        lines += [header.read_text().strip(), ""]
    if frame.empty:
        return "\n".join(lines + ["No results yet.", ""])
    for study in sorted(frame["study"].unique()):
        lines += [f"## {study}", ""]
        note = NOTES_DIR / f"{study}.md"
        if note.is_file() and root.resolve() == RESULTS.resolve():
            lines += [note.read_text().strip(), ""]
        sub = frame[frame["study"] == study]
        for dataset in sorted(sub["dataset"].unique()):
            part = sub[sub["dataset"] == dataset]
            task = ("regression" if part.filter(like="test_mae_mean").notna().any().any()
                    else "classification")
            cols = [c for c in METRIC_COLUMNS[task] if f"test_{c}_mean" in part]
            lines += [f"### {dataset}", "",
                      "| variant | kind | seeds | " + " | ".join(cols) + " |",
                      "|---|---|---|" + "---|" * len(cols)]
            for _, row in part.iterrows():
                seeds = (f"{int(row['seeds'])}" if pd.notna(row.get("seeds")) else "")
                if pd.notna(row.get("search_seeds")):
                    seeds = f"{int(row['search_seeds'])} searches x {seeds}"
                lines.append(f"| {row['variant']} | {row['kind']} | {seeds} | "
                             + " | ".join(_cell(row, c) for c in cols) + " |")
            lines.append("")
            ds_dir = root / study / dataset
            lines += _extra_tables(ds_dir)
            for png in sorted(ds_dir.glob("*.png")) + sorted(ds_dir.glob("*/*.png")):
                if png.parent.name.startswith("seed_") or "search_seed" in str(png):
                    continue
                rel = os.path.relpath(png, md_dir)
                lines.append(f"![{study} {dataset} {png.stem}]({rel})")
            lines.append("")
    return "\n".join(lines)


def _markdown_table(frame: pd.DataFrame) -> list[str]:
    def fmt(x):
        return f"{x:.3f}" if isinstance(x, float) else str(x)
    out = ["| " + " | ".join(map(str, frame.columns)) + " |",
           "|" + "---|" * len(frame.columns)]
    out += ["| " + " | ".join(fmt(x) for x in row) + " |" for row in frame.itertuples(index=False)]
    return out + [""]


def _extra_tables(ds_dir: Path) -> list[str]:
    """The small analysis tables of a dataset folder: search curves' end points, search
    fitness against retraining, missing modalities, silhouettes."""
    lines: list[str] = []
    if (ds_dir / "best_so_far.csv").is_file():
        lines += ["Best-so-far validation fitness at the end of each search (over search seeds):",
                  ""] + _markdown_table(pd.read_csv(ds_dir / "best_so_far.csv"))
    fits = []
    for f in sorted(ds_dir.glob("*/fitness_vs_final.csv")):
        frame = pd.read_csv(f)
        frame.insert(0, "variant", f.parent.name)
        fits.append(frame)
    if fits:
        frame = pd.concat(fits, ignore_index=True)
        cols = [c for c in ("variant", "search_seed", "fitness_metric", "search_fitness",
                            "final_valid_fitness_mean", "final_valid_fitness_std", "test_mae",
                            "test_corr", "test_weighted_f1") if c in frame]
        lines += ["Each search's best genome: its fitness in the search against its retraining "
                  "(mean valid over the study's seeds; test for reference):", ""]
        lines += _markdown_table(frame[cols])
    for f in sorted(ds_dir.glob("*/missing.csv")):
        frame = pd.read_csv(f)
        keep = ["zeroed"] + [c for c in frame.columns if any(
            c.startswith(f"test_{m}_") for m in ("mae", "corr", "non0_acc2", "acc7",
                                                  "weighted_f1"))]
        lines += [f"`{f.parent.name}`: test metrics with modalities zeroed at test time "
                  "(mean and std over seeds):", ""] + _markdown_table(frame[keep])
    for f in sorted(ds_dir.glob("*/silhouette.csv")):
        lines += [f"`{f.parent.name}`: silhouette of the fused representation by class "
                  "(test):", ""] + _markdown_table(pd.read_csv(f))
    return lines


# ---- CLI ---------------------------------------------------------------------------------

def add_arguments(parser) -> None:
    parser.add_argument("studies", nargs="*", help="study YAML files (experiments/*.yaml)")
    parser.add_argument("--quick", action="store_true",
                        help="toy size on synthetic data, into a temporary folder (CI)")
    parser.add_argument("--data-dir", default=DEFAULT_DATA_DIR,
                        help="where the study's dataset paths are looked up")
    parser.add_argument("--out", default=None,
                        help="results root (default experiments/results; --quick: a temp dir)")
    parser.add_argument("--only", nargs="+", default=None, metavar="VARIANT",
                        help="run only these variants (those they depend on must be listed too)")
    parser.add_argument("--datasets", nargs="+", default=None, metavar="NAME",
                        help="run only these datasets of the study")
    parser.add_argument("--scratch", default=None,
                        help="folder for heavy outputs (weights, Ray); default a temp dir")
    parser.add_argument("--summarize", action="store_true",
                        help="only regenerate summary.csv and RESULTS.md from the results")


def main(args) -> int:
    if args.summarize and not args.studies:
        summary, md = write_summary(args.out or RESULTS)
        print(f"wrote {summary} and {md}")
        return 0
    if not args.studies:
        raise UserError("give one or more study YAML files, or --summarize")
    for study in args.studies:
        run_study(study, quick=args.quick, data_dir=args.data_dir, out=args.out,
                  only=args.only, datasets=args.datasets, scratch=args.scratch)
    return 0
