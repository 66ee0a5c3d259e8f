"""The Python API; the `evo-msa` command is a thin layer over it.

    from evo_msa import train, search, baseline

Every function validates its input before it creates any output directory, and raises
`evo_msa.UserError` (one line naming the file or field) for bad input.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Sequence

from evo_msa.config import RunConfig, load_run_config
from evo_msa.errors import UserError, brief
from evo_msa.provenance import provenance
from evo_msa.record import rundir
from evo_msa.record.best import read_genome

MAX_ROWS = 100_000  # rows of a printed table (--top)


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


def train(data: str = "synthetic:mosi", *, arch: str | None = None, genome: str | None = None,
          space: str | None = None, config: RunConfig | dict | None = None,
          seeds: Sequence[int] = (0, 1, 2, 3, 4), epochs: int | None = None,
          device: str = "auto", out: str | Path | None = None,
          log: Callable[[str], None] = print) -> dict:
    """Train one configuration with several seeds (as one population); return the summary
    (metrics per split, mean and std over seeds) and, with `out`, write metrics.json/.csv."""
    from evo_msa.config import MAX_COUNT
    from evo_msa.data import load_data
    from evo_msa.training.multiseed import format_summary, train_seeds, write_run_metrics

    seeds = _seeds(seeds)
    if epochs is not None:
        count_option("--epochs", epochs, MAX_COUNT)
    dataset = load_data(data)
    if config is not None:
        cfg = config if isinstance(config, RunConfig) else RunConfig.from_dict(config, "config")
    else:
        cfg = run_config(arch=arch, genome=genome, space=space, available=dataset.modalities)
    if epochs is not None:
        cfg.train.epochs = epochs
    if cfg.pretrained.model and "text" in cfg.model.modalities:
        from evo_msa.models.pretrained import check_text  # fails before the run directory

        check_text(dataset, cfg.pretrained.model, cfg.pretrained.max_tokens)
    run = rundir.RunDir.create(out, resume_hint=False) if out else None
    log(dataset.describe())
    m = cfg.model
    log(f"training {len(seeds)} seed(s), modalities {m.modalities}, depth {m.depth}, "
        f"weighting {cfg.loss.weighting}")
    origin = provenance(data)
    summary, table = train_seeds(dataset, cfg, seeds, device=device, log=log, save=run,
                                 provenance=origin)
    write_run_metrics(run, summary, table, config=cfg, data=data, provenance=origin)
    log(format_summary(summary))
    if run is not None:
        log(f"wrote {run.path}: {rundir.METRICS_JSON}, {rundir.METRICS_CSV} and a saved model "
            f"per seed ({rundir.seed_folder('<s>')}/{rundir.MODEL_PT})")
    return summary


def baseline(data: str = "synthetic:mosi", *, model: str, modalities: Sequence[str] | None = None,
             seeds: Sequence[int] = (0, 1, 2, 3, 4), device: str = "cpu",
             out: str | Path | None = None, log: Callable[[str], None] = print,
             text_model: str | None = None) -> dict:
    """A simple model on the same data (ridge, softmax, MLP, or the plain fine-tuned text
    encoder `text_model`); the same files as `train`."""
    from evo_msa.baselines import FINETUNE, run_baseline
    from evo_msa.data import load_data
    from evo_msa.training.multiseed import format_summary, write_run_metrics

    seeds = _seeds(seeds)
    dataset = load_data(data)
    if model == "finetune":  # a bad encoder or text fails before the run directory exists
        from evo_msa.models.pretrained import check_text

        check_text(dataset, text_model or FINETUNE["model"])
    run = rundir.RunDir.create(out, resume_hint=False) if out else None
    log(dataset.describe())
    summary, table = run_baseline(dataset, model, list(modalities) if modalities else None,
                                  seeds, device=device, log=log, text_model=text_model)
    write_run_metrics(run, summary, table, data=data, provenance=provenance(data))
    log(format_summary(summary))
    return summary


class SearchResult(os.PathLike):
    """What a search leaves, read from its run directory: the picked genome, the leaderboard,
    the final training's metrics and the paths of its files. It stands for the run directory
    wherever a path does (`os.fspath(result)`, `str(result)`, `result / "leaderboard.csv"`,
    `predict(result, ...)`)."""

    def __init__(self, path: str | Path):
        from evo_msa.record.best import read_best
        from evo_msa.record.leaderboard import read_leaderboards

        self.path = Path(path)
        run = rundir.RunDir(self.path)
        #: best_genome.json: id, fitness (the mean of its evaluations), decoded genes, run config
        self.best: dict = read_best(self.path, required=True)
        #: leaderboard.csv: one row per evaluation
        self.leaderboard = read_leaderboards([str(self.path)]).drop(columns="run")
        #: final.json (None without a final training, e.g. final_seeds=[])
        self.final: dict | None = rundir.load_json(run.file(rundir.FINAL_JSON),
                                                   "the final training", required=False)
        #: the run's files that exist, by name: leaderboard, best, final, models, ...
        self.files: dict[str, Path] = {name: run.file(file) for name, file in (
            ("leaderboard", rundir.LEADERBOARD), ("best", rundir.BEST),
            ("final", rundir.FINAL_JSON), ("final_csv", rundir.FINAL_CSV),
            ("models", rundir.FINAL), ("progress", rundir.PROGRESS),
            ("baselines", rundir.BASELINES), ("search", rundir.SEARCH)) if run.has(file)}

    @property
    def best_genes(self) -> dict:
        """The picked genome, decoded: {gene path: value}."""
        return dict(self.best["decoded"])

    @property
    def best_fitness(self) -> float:
        """The pick's validation fitness (first objective; the mean of its evaluations)."""
        return float(self.best["fitness"])

    @property
    def final_metrics(self) -> dict[str, dict[str, float]]:
        """The final model's test metrics: {metric: {"mean": m, "std": s}} over its final
        seeds' models (final.json's final_model, the pick or an ensemble; {} without a final
        training)."""
        if not self.final:
            return {}
        model = self.final.get("final_model") or {}
        per_seed = (model.get("test") or {}).get("per_seed")
        if isinstance(per_seed, dict):
            return dict(per_seed)
        genomes = self.final.get("genomes") or [{}]
        return dict(genomes[0].get("test", {}))

    def __fspath__(self) -> str:
        return str(self.path)

    def __str__(self) -> str:
        return str(self.path)

    def __repr__(self) -> str:
        return (f"SearchResult({str(self.path)!r}, best #{self.best['id']} "
                f"{self.best['metric']} {self.best_fitness:.4f}, "
                f"{len(self.leaderboard)} evaluations)")

    def __truediv__(self, name: str) -> Path:
        return self.path / name


def search(space: str, data: str = "synthetic:mosi", *, out: str | Path | None = None,
           log: Callable[[str], None] = print, on_evaluation: Callable | None = None,
           on_generation: Callable | None = None, on_final: Callable | None = None,
           **options) -> SearchResult:
    """Run a search (options as `evo-msa search`, e.g. pop=16, generations=4); returns its
    SearchResult (the run directory wherever a path is expected). Callbacks, called in this
    process as the search goes (see nas.callbacks): on_evaluation(evaluation) for every
    settled evaluation, on_generation(summary dict) for every finished generation,
    on_final(final.json's dict) after the final training."""
    from evo_msa.nas.callbacks import Callbacks
    from evo_msa.nas.options import SearchOptions
    from evo_msa.nas.runner import search as run_search

    SearchOptions.check_names(options, "search")
    hooks = Callbacks(on_evaluation, on_generation, on_final)
    opts = SearchOptions(space=str(space), data=data, out=str(out) if out else None, **options)
    return SearchResult(run_search(opts, log=log, callbacks=hooks))


def resume(run_dir: str | Path, force: bool = False, log: Callable[[str], None] = print,
           on_evaluation: Callable | None = None, on_generation: Callable | None = None,
           on_final: Callable | None = None) -> SearchResult:
    """Continue an interrupted search (`force`: although its space, data or options changed);
    the callbacks as for `search`."""
    from evo_msa.nas.callbacks import Callbacks
    from evo_msa.nas.options import SearchOptions
    from evo_msa.nas.runner import search as run_search

    hooks = Callbacks(on_evaluation, on_generation, on_final)
    return SearchResult(run_search(SearchOptions(), resume=str(run_dir), force=force, log=log,
                                   callbacks=hooks))


def load_model(path: str | Path, device: str = "cpu"):
    """The saved models under `path` (a seed folder, an `evo-msa train` output, or a search run:
    its best genome's final models), one per seed."""
    from evo_msa.training.saved import load_model as load_one
    from evo_msa.training.saved import model_folders

    return [load_one(folder, device) for folder in model_folders(path)]


def predict(model: str | Path, data: str, *, split: str = "test", out: str | Path | None = None,
            device: str = "cpu", log: Callable[[str], None] = print):
    """Predict a split of `data` with a saved model: the mean of its seeds' outputs when `model`
    holds several, a search run's final model (an ensemble when its final.json says so), or an
    ensemble folder (the weighted mean of its members'). Returns (predictions table, metrics or
    None without labels); with `out`, writes the table as CSV and the metrics beside it
    (<out stem>.metrics.json)."""
    import pandas as pd

    from evo_msa.data.loader import load_split
    from evo_msa.io import write_json
    from evo_msa.metrics import compute_metrics
    from evo_msa.training.ensemble import load_predictor, metric_input

    predictor = load_predictor(model, device)
    first = predictor.first
    part, task, names = load_split(data, split)
    predictor.check(part, f"{data} ({split})")
    if task is not None and task != first.task:
        raise UserError(f"{data}: {split} has {task} labels, the model predicts "
                        f"{first.task}")
    if task == "classification" and names and names != first.signature["label_names"]:
        raise UserError(f"{data}: label names {names} differ from the model's "
                        f"{first.signature['label_names']}")
    combined = predictor.predict(part)
    table = pd.DataFrame({"id": part.ids})
    if first.task == "regression":
        table["prediction"] = combined
        truth = part.regression
    else:
        label_names = first.signature["label_names"]
        table["prediction"] = [label_names[i] for i in combined.argmax(1)]
        for k, name in enumerate(label_names):
            table[f"p_{name}"] = combined[:, k]
        truth = part.classification
    metrics = None
    if truth is not None:
        table["label"] = (truth if first.task == "regression"
                          else [first.signature["label_names"][i] for i in truth])
        metrics = compute_metrics(metric_input(combined, first.task), truth, task=first.task,
                                  scale=first.signature["scale"],
                                  label_names=first.signature["label_names"])
    if out is not None:
        from evo_msa.io import atomic_write

        out = Path(out)
        atomic_write(out, lambda tmp: table.to_csv(tmp, index=False))
        if metrics is not None:
            write_json(rundir.predict_metrics_path(out), {
                "model": str(model), "kind": predictor.kind,
                "members": [{"folder": str(m.folder), "weight": m.weight} for m in
                            predictor.members],
                "seeds": [m.seed for m in predictor.members[0].models], "data": data,
                "split": split, "metrics": metrics})
    log(f"predicted {len(table)} rows of {data} ({split}) with {predictor.describe()}"
        + (f": {', '.join(f'{k} {v:.4f}' for k, v in list(metrics.items())[:8])}"
           if metrics else ""))
    return table, metrics


def export(model: str | Path, out: str | Path, *, device: str = "cpu",
           log: Callable[[str], None] = print) -> dict:
    """Export a saved model (a seed folder, or the first seed of a run's model) or an ensemble
    (an ensemble folder, or a run whose final model is one: all members and seeds as one graph)
    to ONNX; returns the sidecar JSON written beside it (signature, metrics, max difference
    against PyTorch)."""
    from evo_msa.onnx_export import export_onnx
    from evo_msa.training.ensemble import load_predictor

    out = Path(out)
    if out.is_dir():
        raise UserError(f"--out {out}: is a directory; give a file name such as model.onnx")
    predictor = load_predictor(model, device)
    if predictor.kind == "ensemble":
        side = export_onnx(predictor, out)
        what, rest = f"{model} ({predictor.describe()})", ""
    else:
        folders = [m.folder for m in predictor.models]
        side = export_onnx(predictor.first, out)
        what = folders[0]
        rest = (f"; {len(folders) - 1} other seed(s) not exported (give a seed folder to pick "
                "one)" if len(folders) > 1 else "")
    log(f"exported {what} to {out} (+ {rundir.sidecar_path(out).name}); onnxruntime vs "
        f"PyTorch: max difference {side['max_abs_difference_vs_pytorch']:.2e}{rest}")
    return side


def _seeds(seeds: Sequence[int]) -> list[int]:
    from evo_msa.nas.options import seeds_problem

    if isinstance(seeds, (str, bytes)) or not hasattr(seeds, "__len__"):
        raise UserError(f"--seeds must be a list of integers, got {brief(seeds)}")
    problem = seeds_problem(list(seeds)) if seeds else "one or more integers"
    if problem:
        raise UserError(f"--seeds must be {problem}")
    return list(seeds)


def count_option(flag: str, value, high: int, low: int = 1) -> int:
    """An integer option in low..high (a typo such as --epochs 1000000000 fails here)."""
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise UserError(f"{flag} must be an integer in {low}..{high}, got {brief(value)}")
    return value


def report(run_dir: str | Path, out: str | Path | None = None, *, top: int = 10,
           log: Callable[[str], None] = print) -> Path:
    """Write the run's self-contained HTML report (default RUN_DIR/report.html); its path."""
    from evo_msa.report.html import write_report

    path = write_report(run_dir, out, top=count_option("--top", top, MAX_ROWS))
    log(f"wrote {path}")
    return path


def describe_data(data: str, text_model: str | None = None, max_tokens: int = 50) -> dict:
    """What a dataset holds (splits, modalities and shapes, labels, missing values, where its
    utterances come from), as a JSON-ready dict; with `text_model`, their token counts and how
    many are cut at `max_tokens`. A UserError says in one line why it cannot be used."""
    from evo_msa.data.describe import summary

    return summary(data, text_model, max_tokens)
