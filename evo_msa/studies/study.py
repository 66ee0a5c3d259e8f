"""Running a study: every selected variant of every dataset found, in order."""
from __future__ import annotations

import contextlib
import shlex
import tempfile
import time
from pathlib import Path
from typing import Callable

from evo_msa.errors import UserError, brief
from evo_msa.nas.ray_session import SharedRay, environment
from evo_msa.studies.analysis import missing_variant, study_figures, tsne_variant
from evo_msa.studies.spec import (
    DEFAULT_DATA_DIR,
    QUICK_DEFAULTS,
    Context,
    Dataset,
    Layout,
    Skip,
    Study,
    argv,
    load_study,
)
from evo_msa.studies.summary import write_summary
from evo_msa.studies.variants import (
    baseline_variant,
    baselines_variant,
    search_variant,
    train_together,
    train_variant,
)

# what runs a variant of each kind
VARIANT_KINDS = {"baseline": baseline_variant, "baselines": baselines_variant,
                 "train": train_variant, "search": search_variant, "missing": missing_variant,
                 "tsne": tsne_variant}


def run_study(path: str | Path, *, quick: bool = False, data_dir: str | Path | None = None,
              out: str | Path | None = None, only: list[str] | None = None,
              datasets: list[str] | None = None, scratch: str | Path | None = None,
              summarize: bool = True, log: Callable[[str], None] = print) -> Path:
    """Run every variant of a study on every dataset found; returns the study's result folder.

    Results go to `out`, by default to results/ beside the study file (see spec.Layout; with
    `quick`, a temporary folder); heavy outputs to `scratch` (default a temporary folder);
    dataset paths are looked up in `data_dir` (default ../shared/data from the repository
    root, the study folder's parent)."""
    study = load_study(path)
    layout = Layout.of(path)
    if only:
        missing = [n for n in only if n not in {v["name"] for v in study.variants}]
        if missing:
            raise UserError(f"{path}: no variant {brief(missing[0])}")
    root = Path(out) if out else (Path(tempfile.mkdtemp(prefix="evo-msa-quick-")) if quick
                                  else layout.results)
    scratch_root = Path(scratch) if scratch else Path(tempfile.mkdtemp(prefix="evo-msa-scratch-"))
    data_dir = Path(data_dir) if data_dir else layout.data_dir
    command = "evo-msa " + " ".join(shlex.quote(a) for a in argv())
    log(f"study {study.name} ({'quick, ' if quick else ''}results -> {root / study.name})")
    # Ray starts its workers at niceness 15: on a machine shared with other work they then
    # get almost no CPU; a study's trials run at the driver's priority instead (for the study
    # only: the variable is put back). --quick: the toy searches share one local Ray.
    with environment({}, {"RAY_worker_niceness": "0"}), \
            SharedRay() if quick else contextlib.nullcontext():
        for ds in study.datasets:
            if datasets and ds.name not in datasets:
                continue
            spec = _data_spec(study, ds, quick, data_dir)
            if spec is None:
                log(f"skipped {ds.name}: {data_dir / ds.path} not found")
                continue
            _run_dataset(Context(study, ds, spec, root / study.name / ds.name,
                                 scratch_root / study.name / ds.name, quick, command, log,
                                 layout.root),
                         only)
    if summarize:
        _summarize(root, layout, quick)
    return root / study.name


def _data_spec(study: Study, ds: Dataset, quick: bool, data_dir: Path) -> str | None:
    """The data a dataset of the study trains on: with --quick its synthetic stand-in, else
    its file under data_dir (None when it is not there) or a synthetic spec as given."""
    if quick:
        q = {**QUICK_DEFAULTS, **study.quick}
        return ds.quick + ("" if "n=" in ds.quick else
                           ("&" if "?" in ds.quick else "?") + f"n={q['n']}")
    if ds.path.startswith("synthetic:"):
        return ds.path
    full = data_dir / ds.path
    return str(full) if full.is_file() else None


def _run_dataset(ctx: Context, only: list[str] | None) -> None:
    """The study's variants on one dataset, in order (those --only, the dataset's and, with
    --quick, not `full_only` ones), then the study figures."""
    selected = [v for v in ctx.study.variants if (not only or v["name"] in only)
                and (not v.get("datasets") or ctx.dataset.name in v["datasets"])
                and not (v.get("full_only") and ctx.quick)]
    train_together(ctx, selected)
    for v in selected:
        start = time.time()
        ctx.log(f"== {ctx.study.name} / {ctx.dataset.name} / {v['name']} ({v['kind']})")
        try:
            record = VARIANT_KINDS[v["kind"]](ctx, v)
        except Skip as why:
            ctx.log(f"skipped {v['name']}: {why}")
            continue
        ctx.done[v["name"]] = record
        ctx.log(f"   {v['name']} done in {time.time() - start:.0f}s")
    study_figures(ctx)


def _summarize(root: Path, layout: Layout, quick: bool = False) -> tuple[Path, Path]:
    """summary.csv and RESULTS.md of a results root: the studies folder's own RESULTS.md,
    with its notes, when root is the folder's results (and not --quick); else
    root/RESULTS.md."""
    if not quick and root.resolve() == layout.results.resolve():
        return write_summary(root, markdown=layout.results_md, notes=layout.notes)
    return write_summary(root)


# ---- CLI ---------------------------------------------------------------------------------

def add_arguments(parser) -> None:
    """The arguments of `evo-msa study` (`evo-msa experiment`, its old name)."""
    parser.add_argument("studies", nargs="*", help="study YAML files (experiments/*.yaml)")
    parser.add_argument("--quick", action="store_true",
                        help="toy size on synthetic data, into a temporary folder (CI)")
    parser.add_argument("--data-dir", default=None,
                        help="where the study's dataset paths are looked up (default "
                             f"{DEFAULT_DATA_DIR} from the repository root, the study "
                             "folder's parent)")
    parser.add_argument("--out", default=None,
                        help="results root (default results/ beside the study file, "
                             "experiments/results; --quick: a temp dir; --summarize without "
                             "a study: experiments/results of the working directory)")
    parser.add_argument("--only", nargs="+", default=None, metavar="VARIANT",
                        help="run only these variants (those they depend on must be listed "
                             "too); the study figures keep the others' results on disk")
    parser.add_argument("--datasets", nargs="+", default=None, metavar="NAME",
                        help="run only these datasets of the study")
    parser.add_argument("--scratch", default=None,
                        help="folder for heavy outputs (weights, Ray); default a temp dir")
    parser.add_argument("--summarize", action="store_true",
                        help="only regenerate summary.csv and RESULTS.md from the results "
                             "(of the studies' folder, or experiments/ without a study)")


def main(args) -> int:
    """`evo-msa study`: run the study files given, or (--summarize) only summarise."""
    if args.summarize:
        # without a study: the repository's experiments/ folder, run from the repository root
        layouts = [Layout.of(s) for s in args.studies] or [Layout(Path("experiments"))]
        for layout in dict.fromkeys(layouts):
            summary, md = _summarize(Path(args.out) if args.out else layout.results, layout)
            print(f"wrote {summary} and {md}")
        return 0
    if not args.studies:
        raise UserError("give one or more study YAML files, or --summarize")
    for study in args.studies:
        run_study(study, quick=args.quick, data_dir=args.data_dir, out=args.out,
                  only=args.only, datasets=args.datasets, scratch=args.scratch)
    return 0
