"""The Python API; the `evo-msa` command is a thin layer over it.

    from evo_msa import train, search, baseline

Every function validates its input before it creates any output directory, and raises
`evo_msa.UserError` (one line naming the file or field) for bad input.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Callable, Sequence

from evo_msa import rundir
from evo_msa.config import RunConfig, load_run_config
from evo_msa.errors import UserError


def run_config(*, arch: str | None = None, genome: str | None = None, space: str | None = None,
               available: Sequence[str] | None = None) -> RunConfig:
    """The run config to train: an --arch YAML, a searched genome (with its space), or the
    hand-set default HAEMSA."""
    if space and not genome:
        raise UserError("--space is only used with --genome")
    if arch and genome:
        raise UserError("give --arch or --genome, not both")
    if arch:
        return load_run_config(arch)
    if genome:
        if not space:
            raise UserError("--genome needs --space (the run directory's copy of the space YAML)")
        from evo_msa.space import load_space

        loaded = load_space(space)
        return loaded.to_config(read_genome(genome, loaded.size), available=available)
    return RunConfig()


def read_genome(path: str | Path, size: int) -> list[float]:
    try:
        raw = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise UserError(f"{path}: no such genome file") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: not valid JSON ({getattr(exc, 'msg', exc)})") from None
    genome = raw.get("genome") if isinstance(raw, dict) else raw
    if (not isinstance(genome, list) or len(genome) != size
            or not all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in genome)):
        raise UserError(f"{path}: 'genome' must be a list of {size} numbers for this space")
    return [float(x) for x in genome]


def train(data: str = "synthetic:mosi", *, arch: str | None = None, genome: str | None = None,
          space: str | None = None, config: RunConfig | dict | None = None,
          seeds: Sequence[int] = (0, 1, 2, 3, 4), epochs: int | None = None,
          device: str = "auto", out: str | Path | None = None,
          log: Callable[[str], None] = print) -> dict:
    """Train one configuration with several seeds (as one population); return the summary
    (metrics per split, mean and std over seeds) and, with `out`, write metrics.json/.csv."""
    from evo_msa.data import load_data
    from evo_msa.train import format_summary, train_seeds

    seeds = _seeds(seeds)
    dataset = load_data(data)
    if config is not None:
        cfg = config if isinstance(config, RunConfig) else RunConfig.from_dict(config, "config")
    else:
        cfg = run_config(arch=arch, genome=genome, space=space, available=dataset.modalities)
    if epochs:
        cfg.train.epochs = epochs
    run = rundir.RunDir.create(out, resume_hint=False) if out else None
    log(dataset.describe())
    m = cfg.model
    log(f"training {len(seeds)} seed(s), modalities {m.modalities}, depth {m.depth}, "
        f"weighting {cfg.objective.weighting}")
    summary, table = train_seeds(dataset, cfg, seeds, device=device, log=log)
    summary["run_config"] = cfg.to_dict()
    summary["data"] = data
    if run is not None:
        run.write_json(rundir.METRICS_JSON, summary)
        run.write_csv(rundir.METRICS_CSV, table)
    log(format_summary(summary))
    if run is not None:
        log(f"wrote {run.file(rundir.METRICS_JSON)} and {rundir.METRICS_CSV}")
    return summary


def baseline(data: str = "synthetic:mosi", *, model: str, modalities: Sequence[str] | None = None,
             seeds: Sequence[int] = (0, 1, 2, 3, 4), device: str = "cpu",
             out: str | Path | None = None, log: Callable[[str], None] = print) -> dict:
    """A simple model on the same data (ridge, softmax or MLP); the same files as `train`."""
    from evo_msa.baselines import run_baseline
    from evo_msa.data import load_data
    from evo_msa.train import format_summary

    seeds = _seeds(seeds)
    dataset = load_data(data)
    run = rundir.RunDir.create(out, resume_hint=False) if out else None
    log(dataset.describe())
    summary, table = run_baseline(dataset, model, list(modalities) if modalities else None,
                                  seeds, device=device, log=log)
    summary["data"] = data
    if run is not None:
        run.write_json(rundir.METRICS_JSON, summary)
        run.write_csv(rundir.METRICS_CSV, table)
    log(format_summary(summary))
    return summary


def search(space: str, data: str = "synthetic:mosi", *, out: str | Path | None = None,
           log: Callable[[str], None] = print, **options) -> Path:
    """Run a search (options as `evo-msa search`, e.g. pop=16, generations=4); returns the run
    directory."""
    from evo_msa.search.options import SearchOptions
    from evo_msa.search.runner import search as run_search

    try:
        opts = SearchOptions(space=str(space), data=data, out=str(out) if out else None, **options)
    except TypeError as exc:
        raise UserError(f"search: {exc}") from None
    return run_search(opts, log=log)


def resume(run_dir: str | Path, log: Callable[[str], None] = print) -> Path:
    from evo_msa.search.options import SearchOptions
    from evo_msa.search.runner import search as run_search

    return run_search(SearchOptions(), resume=str(run_dir), log=log)


def _seeds(seeds: Sequence[int]) -> list[int]:
    seeds = list(seeds)
    if not seeds or not all(isinstance(s, int) and not isinstance(s, bool) for s in seeds):
        raise UserError("--seeds must be one or more integers")
    if len(set(seeds)) < len(seeds):
        raise UserError(f"--seeds must be distinct, got {seeds}")
    return seeds
