"""Running a study: every selected variant of every dataset found, in order."""
from __future__ import annotations

import contextlib
import shlex
import tempfile
import time
from pathlib import Path
from typing import Callable

from evo_msa.errors import UserError, brief
from evo_msa.studies.analysis import run_missing, run_tsne, study_figures
from evo_msa.studies.spec import (DEFAULT_DATA_DIR, QUICK_DEFAULTS, RESULTS, Context, Skip,
                                      argv, load_study)
from evo_msa.studies.summary import write_summary
from evo_msa.studies.variants import (run_baseline, run_baselines, run_search, run_train,
                                          train_together)
from evo_msa.nas.runner import SharedRay

RUNNERS = {"baseline": run_baseline, "baselines": run_baselines, "train": run_train,
           "search": run_search, "missing": run_missing, "tsne": run_tsne}


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
            raise UserError(f"{path}: no variant {brief(missing[0])}")
    root = Path(out) if out else (Path(tempfile.mkdtemp(prefix="evo-msa-quick-")) if quick
                                  else RESULTS)
    scratch_root = Path(scratch) if scratch else Path(tempfile.mkdtemp(prefix="evo-msa-scratch-"))
    data_dir = Path(data_dir or DEFAULT_DATA_DIR)
    command = "evo-msa " + " ".join(shlex.quote(a) for a in argv())
    log(f"study {study.name} ({'quick, ' if quick else ''}results -> {root / study.name})")
    # --quick: the study's toy searches share one local Ray instead of starting one each
    with SharedRay() if quick else contextlib.nullcontext():
        _run_datasets(study, quick, data_dir, root, scratch_root, command, only, datasets, log)
    if summarize:
        write_summary(root, quick=quick)
    return root / study.name


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
        train_together(ctx, selected)
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
        study_figures(ctx)


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
