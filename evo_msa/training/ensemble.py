"""Several saved models as one predictor: the seeds of one architecture (its seed ensemble) and
a weighted ensemble of architectures (the final trainer's greedy ensemble), written, read back
and predicted with.

    <run>/final/ensemble/ensemble.json
        {"format": "evo-msa ensemble 1", "task": "regression", "metric": "mae", "rounds": 25,
         "members": [{"folder": "../rank1-id5", "weight": 0.6, "count": 15, "rank": 1,
                      "id": 5}, ...]}

Members are referred to (their folders relative to ensemble.json, inside the same run), not
copied: a member with a fine-tuned encoder weighs tens of MB per seed.

How outputs combine, everywhere (`predict`, the final trainer, the ONNX wrapper): regression
scores are averaged; classification logits become softmax probabilities and those are averaged
(metrics read the log of the average). A member's output is the plain mean over its seeds; the
ensemble's is the weighted mean of its members'.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from evo_msa.data.dataset import Split
from evo_msa.errors import UserError, brief
from evo_msa.io import read_json
from evo_msa.record.rundir import ENSEMBLE_JSON, FINAL_JSON, RunDir
from evo_msa.training.saved import SavedModel, load_model, model_folders

FORMAT = "evo-msa ensemble 1"
MAX_MEMBERS = 100
MAX_ENSEMBLE_JSON_BYTES = 1 << 20
MAX_FINAL_JSON_BYTES = 64 << 20


# ---- combining outputs ------------------------------------------------------------------------

def averageable(output: np.ndarray, task: str) -> np.ndarray:
    """A model's raw output in the space where outputs are averaged: regression scores as they
    are, classification logits as softmax probabilities."""
    out = np.asarray(output, dtype=np.float64)
    if task == "regression":
        return out
    z = np.exp(out - out.max(axis=1, keepdims=True))
    return z / z.sum(axis=1, keepdims=True)


def combine(outputs: Sequence[np.ndarray], weights: Sequence[float] | None = None) -> np.ndarray:
    """The weighted mean of averageable outputs (equal weights when none are given)."""
    w = np.full(len(outputs), 1.0 / len(outputs)) if weights is None else np.asarray(weights)
    return np.tensordot(w / w.sum(), np.stack(outputs), axes=1)


def metric_input(combined: np.ndarray, task: str) -> np.ndarray:
    """What `compute_metrics` reads of a combined output: the scores, or log-probabilities."""
    return combined if task == "regression" else np.log(np.maximum(combined, 1e-12))


# ---- the predictor ----------------------------------------------------------------------------

@dataclass
class Member:
    """One architecture of a predictor: its seeds' saved models and its weight."""

    folder: Path
    weight: float
    models: list[SavedModel]
    label: str = ""


@dataclass
class Predictor:
    """What `predict` and `export` work with: one architecture's seeds (kind "single") or a
    weighted ensemble of architectures (kind "ensemble"), each with its seeds."""

    source: Path
    kind: str
    members: list[Member]

    @property
    def models(self) -> list[SavedModel]:
        """Every saved model of every member."""
        return [m for member in self.members for m in member.models]

    @property
    def first(self) -> SavedModel:
        """The first member's first seed (its signature stands for all)."""
        return self.members[0].models[0]

    @property
    def task(self) -> str:
        """regression or classification."""
        return self.first.task

    def describe(self) -> str:
        """`3 seed(s)` or `an ensemble of 2 architectures (0.60, 0.40) x 3 seed(s)`."""
        seeds = f"{len(self.members[0].models)} seed(s)"
        if self.kind == "single":
            return seeds
        weights = ", ".join(f"{m.label or m.folder.name} x{m.weight:.2f}" for m in self.members)
        return f"an ensemble of {len(self.members)} architectures ({weights}), {seeds} each"

    def check(self, split: Split, source: str) -> None:
        """Every model must find what it reads in `split` (see SavedModel.check)."""
        for m in self.models:
            m.check(split, source)

    def member_outputs(self, split: Split) -> list[list[np.ndarray]]:
        """Per member, per seed: the averageable output on raw features."""
        return [[averageable(m.predict(split), self.task) for m in member.models]
                for member in self.members]

    def predict(self, split: Split) -> np.ndarray:
        """The combined output: scores (N,) or class probabilities (N, C)."""
        outs = self.member_outputs(split)
        return combine([combine(seeds) for seeds in outs], [m.weight for m in self.members])


def load_predictor(path: str | Path, device: str = "cpu") -> Predictor:
    """What `path` holds, as a predictor: an ensemble folder (ensemble.json), a search run (the
    final model its final.json names), or any saved model's folders (training.saved.model_folders:
    a seed folder, a train output, an older search run's best genome)."""
    path = Path(path)
    if (path / ENSEMBLE_JSON).is_file():
        return load_ensemble(path, device)
    if (path / FINAL_JSON).is_file():  # a search run: the final model it chose
        final = read_json(path / FINAL_JSON, FINAL_JSON, MAX_FINAL_JSON_BYTES)
        chosen = final.get("final_model") if isinstance(final, dict) else None
        if isinstance(chosen, dict):  # runs before ensembles: the best genome (below)
            folder = chosen.get("folder")
            if not isinstance(folder, str) or not (path / folder).is_dir():
                raise UserError(f"{path / FINAL_JSON}: final_model.folder must name a folder "
                                f"of the run, got {brief(folder)}")
            return load_predictor(path / folder, device)
    folders = model_folders(path)
    return Predictor(path, "single", [Member(path, 1.0, [load_model(f, device) for f in folders])])


def load_ensemble(folder: str | Path, device: str = "cpu") -> Predictor:
    """Read an ensemble folder back; a one-line UserError names what is wrong with it."""
    folder = Path(folder)
    meta_path = folder / ENSEMBLE_JSON
    meta = read_json(meta_path, ENSEMBLE_JSON, MAX_ENSEMBLE_JSON_BYTES)
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise UserError(f"{meta_path}: not an {FORMAT!r} file (its 'format' says otherwise)")
    entries = meta.get("members")
    if not isinstance(entries, list) or not 1 <= len(entries) <= MAX_MEMBERS:
        raise UserError(f"{meta_path}: members must be a list of 1..{MAX_MEMBERS} entries, "
                        f"got {brief(entries)}")
    members = []
    for i, entry in enumerate(entries):
        where = f"{meta_path}: members[{i}]"
        if not isinstance(entry, dict) or not isinstance(entry.get("folder"), str):
            raise UserError(f"{where} must be a mapping with a folder, got {brief(entry)}")
        weight = entry.get("weight")
        if (isinstance(weight, bool) or not isinstance(weight, (int, float))
                or not math.isfinite(weight) or weight <= 0):
            raise UserError(f"{where}.weight must be a number > 0, got {brief(weight)}")
        member_dir = folder / entry["folder"]
        models = [load_model(f, device) for f in model_folders(member_dir)]
        members.append(Member(member_dir, float(weight), models, label=_label(entry)))
    first = members[0].models[0].signature
    for member in members[1:]:
        sig = member.models[0].signature
        if (sig["task"], sig.get("label_names")) != (first["task"], first.get("label_names")):
            raise UserError(f"{meta_path}: member {member.folder} predicts {sig['task']} "
                            f"{sig.get('label_names') or ''}, the first member "
                            f"{first['task']} {first.get('label_names') or ''}".rstrip())
    total = sum(m.weight for m in members)
    for m in members:
        m.weight /= total
    return Predictor(folder, "ensemble", members)


def _label(entry: dict) -> str:
    return f"#{entry['id']}" if isinstance(entry.get("id"), int) else ""


def write_ensemble(run: RunDir, folder: str, members: list[dict], **extra) -> None:
    """Write <folder>/ensemble.json of `run`: `members` with "folder" (relative to the run) and
    "weight", and anything else to keep beside them (rank, id, count; `extra` at the top)."""
    entries = [{**m, "folder": Path(os.path.relpath(m["folder"], folder)).as_posix()}
               for m in members]
    run.write_json(f"{folder}/{ENSEMBLE_JSON}", {"format": FORMAT, **extra, "members": entries})
