"""The study file and the context a variant runs in (see evo_msa.studies for the format)."""
from __future__ import annotations

import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import pandas as pd

from evo_msa.config import _first, read_yaml
from evo_msa.errors import UserError, brief
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
        raise UserError(f"{where}: unknown key {brief(_first(list(unknown)))}")
    name = raw.get("name") or Path(path).stem
    if not isinstance(name, str) or not isinstance(raw.get("description", ""), (str, type(None))):
        raise UserError(f"{where}: name and description must be strings")
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
        if (not isinstance(v, dict) or not isinstance(v.get("name"), str)
                or v.get("kind") not in KINDS):
            raise UserError(f"{where}: variants[{i}] needs a name (a string) and a kind in "
                            f"{list(KINDS)}")
        # one name may appear once per dataset (e.g. a search with a space per dataset)
        on = set(v.get("datasets") or ["*"])
        had = seen.setdefault(v["name"], set())
        if "*" in had or "*" in on and had or had & on:
            raise UserError(f"{where}: variant {brief(v['name'])} is listed twice for a dataset")
        had |= on
    seeds = raw.get("seeds", [0, 1, 2, 3, 4])
    if not isinstance(seeds, list) or not all(isinstance(s, int) for s in seeds):
        raise UserError(f"{where}: seeds must be a list of integers")
    return Study(name, str(raw.get("description") or "").strip(), datasets, variants, seeds,
                 raw.get("quick") or {}, where)


def _guess_quick(path: str) -> str:
    return "synthetic:iemocap" if "iemocap" in path.lower() else "synthetic:mosi"


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


# ---- what every variant writes ----------------------------------------------------------

def argv() -> list[str]:
    """This invocation's arguments as an `evo-msa experiment` command line."""
    args = list(sys.argv[1:])
    return args if args and args[0] == "experiment" else ["experiment", *args]


def variant_dir(ctx: Context, name: str) -> Path:
    folder = ctx.out / name
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    return folder


def write_provenance(ctx: Context, folder: Path, variant: dict, extra: dict | None = None) -> None:
    from evo_msa.provenance import provenance

    info = {"study": ctx.study.name, "dataset": ctx.dataset.name, "variant": variant,
            "command": ctx.command, "quick": ctx.quick, "study_file": ctx.study.source,
            **provenance(ctx.data), **(extra or {})}
    write_json(folder / "provenance.json", info)
    (folder / "command.txt").write_text(ctx.command + "\n" + "".join(
        f"# {k}: {v}\n" for k, v in (extra or {}).items() if isinstance(v, str)))


def copy_small(src: Path, dst: Path, skip: tuple[str, ...] = ("ray",)) -> None:
    for p in src.rglob("*"):
        rel = p.relative_to(src)
        if p.is_dir() or rel.parts[0] in skip or p.suffix not in SMALL or p.name.startswith("."):
            continue
        if p.name in ("state.json", "state.prev.json"):
            continue
        (dst / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(p, dst / rel)


def write_metrics(folder: Path, summary: dict, table: pd.DataFrame | None, **extra) -> None:
    write_json(folder / "metrics.json", {**summary, **extra})
    if table is not None:
        table.to_csv(folder / "metrics.csv", index=False)


def expand(text: str | None, ctx: Context) -> str | None:
    return text.format(dataset=ctx.dataset.name, study=ctx.study.name) if text else text


def to_yaml(d: dict) -> str:
    import yaml

    return yaml.safe_dump(d, sort_keys=False)


def log_result(ctx: Context, name: str, summary: dict) -> None:
    test = summary.get("test", {})
    keys = [k for k in ("mae", "corr", "non0_acc2", "acc7", "weighted_f1", "acc") if k in test]
    ctx.log("   " + name + ": " + ", ".join(
        f"{k} {test[k]['mean']:.3f}+-{test[k]['std']:.3f}" for k in keys))
