"""`--track mlflow`: a search as MLflow runs in a local store beside it.

    <run>/mlflow.db        the tracking store (SQLite): one MLflow run per evaluation (its
                           decoded genes as params; fitness, validation metrics, parameter count
                           and seconds as metrics; status, generation, id as tags; its run
                           config as an artifact), one per retrained genome (its test and
                           valid metrics, its saved models), and one for the final model
                           (`final_model`: its test figures, final.json, its saved models)
    <run>/mlartifacts/     the artifacts

    mlflow ui --backend-store-uri sqlite:///<run>/mlflow.db

    import mlflow
    mlflow.set_tracking_uri("sqlite:///<run>/mlflow.db")
    mlflow.search_runs(experiment_names=["evo-msa"])

Written from the driver as evaluations settle (nas.callbacks), with an MlflowClient of its own:
no process-wide MLflow state is set. A resumed search adds the evaluations it settles.
"""
from __future__ import annotations

import json
import math
import numbers
import time
from pathlib import Path

from evo_msa.errors import UserError
from evo_msa.record import rundir

EXPERIMENT = "evo-msa"
STORE = "mlflow.db"
ARTIFACTS = "mlartifacts"


def store_uri(run_path: str | Path) -> str:
    """The tracking URI of a run's store."""
    return f"sqlite:///{(Path(run_path) / STORE).resolve()}"


class MLflowTracker:
    """Logs every settled evaluation and the final training of one search run."""

    def __init__(self, run_path: str | Path, fitness, log=print):
        try:
            from mlflow import MlflowClient
        except ImportError:
            raise UserError("--track mlflow needs mlflow (in the checkout: pip install -e "
                            "'.[track]')") \
                from None
        self.run_path = Path(run_path)
        self.fitness = fitness
        self.client = MlflowClient(tracking_uri=store_uri(self.run_path))
        found = self.client.get_experiment_by_name(EXPERIMENT)
        self.experiment = found.experiment_id if found is not None else \
            self.client.create_experiment(EXPERIMENT, artifact_location=(
                self.run_path / ARTIFACTS).resolve().as_uri())
        log(f"track  MLflow: {self.run_path / STORE} (browse: mlflow ui --backend-store-uri "
            f"{store_uri(self.run_path)})")

    def evaluation(self, ev) -> None:
        """One MLflow run for a settled evaluation."""
        values = ev.fitness or ()
        names = ["fitness"] if len(values) <= 1 else [f"fitness_{n}" for n in self.fitness.names]
        metrics = dict(zip(names, values))
        metrics.update({f"valid_{k}": v for k, v in ev.metrics.items()})
        metrics.update(params=ev.params, seconds=ev.seconds)
        tags = {"evo_msa.kind": "evaluation", "evo_msa.id": ev.id,
                "evo_msa.generation": ev.generation, "evo_msa.status": ev.status.value,
                "evo_msa.rung": ev.rung or "", "evo_msa.seeds": "|".join(map(str, ev.seeds)),
                "evo_msa.note": ev.note}
        self._run(f"eval_{ev.id}", tags, _params(ev.genes), metrics,
                  {"run_config.json": ev.config})

    def final(self, record: dict) -> None:
        """One MLflow run per retrained genome (final.json's `genomes`), and one for the final
        model (final.json's `final_model`: the pick or an ensemble; its test figures, final.json
        and its saved models as artifacts)."""
        files = [self.run_path / name for name in (rundir.FINAL_JSON, rundir.FINAL_CSV)]
        for entry in record.get("genomes", []):
            tags = {"evo_msa.kind": "final_genome", "evo_msa.id": entry.get("id"),
                    "evo_msa.rank": entry.get("rank"),
                    "evo_msa.seeds": "|".join(map(str, entry.get("seeds", [])))}
            metrics = _numbers({k: v for k, v in entry.items()
                                if k not in ("genome", "run_config", "rank", "id")})
            folder = entry.get("folder") or rundir.final_folder(entry.get("rank", 1),
                                                                entry.get("id", 0))
            self._run(f"final_rank{entry.get('rank')}_id{entry.get('id')}", tags,
                      _params(entry.get("run_config", {})), metrics, {},
                      folder=self.run_path / folder)
        model = record.get("final_model")
        if isinstance(model, dict):
            members = model.get("members") or []
            tags = {"evo_msa.kind": "final_model", "evo_msa.model": model.get("kind", ""),
                    "evo_msa.members": "|".join(str(m.get("id")) for m in members
                                                if isinstance(m, dict))}
            metrics = _numbers({k: v for k, v in model.items() if k in ("test", "valid")})
            folder = model.get("folder")
            self._run("final_model", tags, {"kind": model.get("kind", "")}, metrics, {},
                      files=files, folder=self.run_path / folder if folder else None)

    def _run(self, name: str, tags: dict, params: dict, metrics: dict, dicts: dict,
             files=(), folder: Path | None = None) -> None:
        from mlflow.entities import Metric, Param, RunTag

        run = self.client.create_run(self.experiment, run_name=name,
                                     tags={k: str(v) for k, v in tags.items()})
        rid = run.info.run_id
        now = int(time.time() * 1000)
        self.client.log_batch(
            rid, params=[Param(k, v) for k, v in params.items()],
            metrics=[Metric(k, float(v), now, 0) for k, v in metrics.items()
                     if isinstance(v, numbers.Real) and math.isfinite(v)],
            tags=[RunTag("mlflow.runName", name)])
        for file_name, content in dicts.items():
            self.client.log_dict(rid, content, file_name)
        for path in files:
            if path.is_file():
                self.client.log_artifact(rid, str(path))
        if folder is not None and folder.is_dir():
            self.client.log_artifacts(rid, str(folder), "model")
        self.client.set_terminated(rid)


def _leaves(nested: dict, sep: str, prefix: str = "") -> dict[str, object]:
    """The leaves of nested dicts, named by their path joined with `sep`."""
    out = {}
    for key, value in nested.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(_leaves(value, sep, f"{name}{sep}"))
        else:
            out[name] = value
    return out


def _params(nested: dict) -> dict[str, str]:
    """Flat `section.field` params (MLflow keeps values as strings, 6000 characters)."""
    return {name: (json.dumps(v) if isinstance(v, (list, tuple)) else str(v))[:6000]
            for name, v in _leaves(nested, ".").items()}


def _numbers(nested: dict) -> dict[str, float]:
    """The numeric leaves of nested dicts, named by their path: test_mae_mean, ..."""
    return {name: float(v) for name, v in _leaves(nested, "_").items()
            if isinstance(v, numbers.Real) and not isinstance(v, bool)}
