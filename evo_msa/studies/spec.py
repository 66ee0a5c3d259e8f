"""The study file, where its results go, and the context a variant runs in (see
evo_msa.studies for the format)."""
from __future__ import annotations

import os
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import pandas as pd

from evo_msa.config import RunConfig, first_key, read_yaml
from evo_msa.data.dataset import DataInfo
from evo_msa.errors import UserError, brief
from evo_msa.io import write_json
from evo_msa.record import rundir
from evo_msa.record import studyfiles as sf
from evo_msa.record.studyfiles import RESULTS_MD

KINDS = ("baseline", "baselines", "train", "search", "missing", "tsne")
DEFAULT_DATA_DIR = "../shared/data"  # relative to the repository root (see Layout)
SMALL = (".csv", ".json", ".png", ".yaml", ".txt", ".md")
QUICK_DEFAULTS = {"seeds": [0, 1], "epochs": 2, "pop": 3, "generations": 2, "search_seeds": [0],
                  "n": 160}


class Skip(Exception):
    """A variant that cannot run here (its genome is not made yet): one line, and on."""


@dataclass(frozen=True)
class Layout:
    """A studies folder (experiments/) and what studies write there, beside their files:
    results/<study>/<dataset>/<variant>/, results/summary.csv, RESULTS.md with the commentary
    of notes/. Its parent is the repository root: study files name spaces and genomes
    relative to it, and the default data dir is ../shared/data from it. Paths stay as
    relative as the folder is given."""

    folder: Path

    @classmethod
    def of(cls, study_file: str | Path) -> Layout:
        """The layout of the folder holding `study_file`; of the folder above it when only
        that one has a RESULTS.md (a study in experiments/extra/ adds to experiments/)."""
        folder = Path(study_file).parent
        if not (folder / RESULTS_MD).is_file() and (_up(folder) / RESULTS_MD).is_file():
            folder = _up(folder)
        return cls(folder)

    @property
    def results(self) -> Path:
        """results/<study>/<dataset>/<variant>/ and summary.csv."""
        return self.folder / sf.RESULTS_FOLDER

    @property
    def results_md(self) -> Path:
        """The Markdown page of every result."""
        return self.folder / RESULTS_MD

    @property
    def notes(self) -> Path:
        """Hand-written commentary: _header.md, and one <study>.md per study."""
        return self.folder / sf.NOTES_FOLDER

    @property
    def root(self) -> Path:
        """The repository root: study files name spaces and genomes relative to it."""
        return _up(self.folder)

    @property
    def data_dir(self) -> Path:
        """The default data dir: ../shared/data from the repository root."""
        return Path(os.path.normpath(self.root / DEFAULT_DATA_DIR))


def _up(folder: Path) -> Path:
    """The folder above `folder`, also when it is given as "." or ".."."""
    return Path(os.path.normpath(folder / ".."))


# ---- the study file -----------------------------------------------------------------------

@dataclass
class Dataset:
    """A dataset of a study: its name, path under the data dir, and --quick stand-in."""

    name: str
    path: str  # relative to the data dir (or a synthetic spec)
    quick: str  # the synthetic stand-in of --quick


@dataclass
class Study:
    """A study file, checked: its datasets, variants (as written), seeds and quick sizes."""

    name: str
    description: str
    datasets: list[Dataset]
    variants: list[dict]
    seeds: list[int]
    quick: dict = field(default_factory=dict)
    source: str = ""


def load_study(path: str | Path) -> Study:
    """The study file at `path`; a UserError names what is wrong with it."""
    raw = read_yaml(path, "study")
    where = str(path)
    if not isinstance(raw, dict):
        raise UserError(f"{where}: expected a mapping with name, datasets, variants")
    unknown = set(raw) - {"name", "description", "datasets", "variants", "seeds", "quick"}
    if unknown:
        raise UserError(f"{where}: unknown key {brief(first_key(list(unknown)))}")
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
class Pretrained:
    """A train variant trained before its turn, together with others (variants.train_together)."""

    config: RunConfig
    origin: dict
    summary: dict
    models: Path  # its metrics and seed_<s>/ models, in the scratch folder


@dataclass
class Context:
    """One dataset of a study: where its variants read data and write results, what ran."""

    study: Study
    dataset: Dataset
    data: str  # the data spec handed to the API
    out: Path  # results/<study>/<dataset>
    scratch: Path  # heavy outputs of this invocation
    quick: bool
    command: str
    log: Callable[[str], None]
    root: Path  # the repository root, which the study file's paths are relative to
    done: dict = field(default_factory=dict)  # variant name -> its record
    pretrained: dict[str, Pretrained] = field(default_factory=dict)  # variant name -> it
    data_info: DataInfo | None = None  # see describe_data (the task and modalities are used)

    @property
    def seeds(self) -> list[int]:
        """The training seeds of every train, baseline and retraining (--quick: fewer)."""
        return list(self.quick_value("seeds", self.study.seeds))

    def quick_value(self, key: str, full: Any) -> Any:
        """`full`, or with --quick the study's (or the default) quick size for `key`."""
        if not self.quick:
            return full
        q = {**QUICK_DEFAULTS, **self.study.quick}
        return q.get(key, full) if q.get(key) is not None else full

    def describe_data(self) -> DataInfo:
        """The dataset's task and modalities, loaded once."""
        if self.data_info is None:
            from evo_msa.data import load_data

            self.data_info = DataInfo.from_data(load_data(self.data))
        return self.data_info


# ---- what every variant writes ----------------------------------------------------------

def argv() -> list[str]:
    """This invocation's arguments as an `evo-msa study` command line."""
    args = list(sys.argv[1:])
    if args and args[0] == "experiment":  # the command's deprecated name
        args[0] = "study"
    return args if args and args[0] == "study" else ["study", *args]


def variant_dir(ctx: Context, name: str) -> Path:
    """A variant's result folder, empty (its previous results removed)."""
    folder = ctx.out / name
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    return folder


def write_provenance(ctx: Context, folder: Path, variant: dict, extra: dict | None = None) -> None:
    """provenance.json (the variant, the command, git commit, data and versions) and
    command.txt (the command, and `extra`'s text such as the equivalent evo-msa call)."""
    from evo_msa.provenance import provenance

    info = {"study": ctx.study.name, "dataset": ctx.dataset.name, "variant": variant,
            "command": ctx.command, "quick": ctx.quick, "study_file": ctx.study.source,
            **provenance(ctx.data), **(extra or {})}
    write_json(folder / sf.PROVENANCE, info)
    (folder / sf.COMMAND).write_text(ctx.command + "\n" + "".join(
        f"# {k}: {v}\n" for k, v in (extra or {}).items() if isinstance(v, str)))


def clear(path: Path) -> Path:
    """`path` gone (an earlier invocation's scratch outputs), for a run to create it anew."""
    if path.exists():
        shutil.rmtree(path)
    return path


def copy_small(src: Path, dst: Path, skip: tuple[str, ...] = (rundir.RAY,)) -> None:
    """The small files of a run (CSV, JSON, PNG, YAML, text; no weights, checkpoints or Ray
    folders) copied into a result folder."""
    for p in src.rglob("*"):
        rel = p.relative_to(src)
        if p.is_dir() or rel.parts[0] in skip or p.suffix not in SMALL or p.name.startswith("."):
            continue
        if p.name in (rundir.STATE, rundir.STATE_PREV):
            continue
        (dst / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(p, dst / rel)


def write_metrics(folder: Path, summary: dict, table: pd.DataFrame | None, **extra) -> None:
    """A variant's metrics.json (the summary and `extra`) and metrics.csv (the table)."""
    write_json(folder / rundir.METRICS_JSON, {**summary, **extra})
    if table is not None:
        table.to_csv(folder / rundir.METRICS_CSV, index=False)


def study_path(text: str | None, ctx: Context) -> str | None:
    """A path the study file names ({dataset} and {study} filled in), relative to the
    repository root unless absolute."""
    if not text:
        return text
    return str(ctx.root / text.format(dataset=ctx.dataset.name, study=ctx.study.name))


def to_yaml(d: dict) -> str:
    """`d` as YAML, keys in their order."""
    import yaml

    return yaml.safe_dump(d, sort_keys=False)


def log_result(ctx: Context, name: str, summary: dict) -> None:
    """One line of a variant's main test metrics, mean +- std over seeds."""
    test = summary.get("test", {})
    keys = [k for k in ("mae", "corr", "non0_acc2", "acc7", "weighted_f1", "acc") if k in test]
    ctx.log("   " + name + ": " + ", ".join(
        f"{k} {test[k]['mean']:.3f}+-{test[k]['std']:.3f}" for k in keys))
