"""Saved models: what `evo-msa train` and the final trainer keep of every seed, and reading it
back for prediction and export.

    <folder>/model.pt      the best state's weights, a dict of tensors (torch.load with
                           weights_only=True), in the layout of a population of one
    <folder>/model.json    run config, seed, the data signature (modalities, dims, sequence
                           lengths, task, label names or scale), the normalisation statistics
                           new data is read with, the metrics recorded, provenance
    <folder>/history.csv   one row per epoch: every train loss term, validation metrics
    <folder>/curves.png    learning curves
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from evo_msa.config import RunConfig
from evo_msa.data.dataset import Split
from evo_msa.data.loader import apply_normalization
from evo_msa.errors import UserError
from evo_msa.models import HAEMSA, DataInfo, build_model
from evo_msa.rundir import (
    ANY,
    CURVES,
    HISTORY,
    MODEL_JSON,
    MODEL_PT,
    RunDir,
    final_folder,
    seed_folder,
)

FORMAT = "evo-msa model 1"


def member_state(model: HAEMSA, member: int) -> dict[str, torch.Tensor]:
    """Member `member`'s weights in the layout its own population of one has (padding of the
    population it trained in removed, order of its real entries kept)."""
    solo = HAEMSA([model.configs[member]], model.info)
    population = {e.name: e for e in model.store.entries}
    state = {}
    for e in solo.store.entries:
        values = model.params[e.name][member][population[e.name].mask[member]]
        tensor = torch.zeros(e.shape)
        tensor[e.mask[0]] = values.detach().float().cpu()
        state[e.name] = tensor
    return state


def save_member(run: RunDir, folder: str, model: HAEMSA, member: int, seed: int, result,
                signature: dict, normalization: dict | None, provenance: dict) -> None:
    """Write one member's model folder (after fit: the model holds its best state)."""
    from evo_msa.report.plots import curves_figure

    run.write_tensors(f"{folder}/{MODEL_PT}", member_state(model, member))
    stats = {m: {"mean": np.asarray(mean).tolist(), "std": np.asarray(std).tolist()}
             for m, (mean, std) in (normalization or {}).items()}
    run.write_json(f"{folder}/{MODEL_JSON}", {
        "format": FORMAT, "run_config": model.configs[member].to_dict(), "seed": seed,
        "signature": signature, "normalization": stats, "metrics": result.metrics,
        "best_epoch": result.best_epoch, "epochs": result.epochs, "params": result.params,
        "provenance": provenance})
    history = pd.DataFrame(result.history)
    run.write_csv(f"{folder}/{HISTORY}", history)
    if len(history):
        run.write_figure(f"{folder}/{CURVES}", curves_figure(history, result.best_epoch,
                                                             f"seed {seed}"))


@dataclass
class SavedModel:
    """A trained HAEMSA network read back from its folder, ready to predict."""

    folder: Path
    config: RunConfig
    seed: int
    signature: dict
    normalization: dict[str, tuple[np.ndarray, np.ndarray]]
    metrics: dict
    model: HAEMSA

    @property
    def task(self) -> str:
        return self.signature["task"]

    def check(self, split: Split, source: str) -> None:
        """New data must give the model what it was trained on: its modalities, same widths."""
        dims = self.signature["dims"]
        for m in self.model.modalities:
            if m not in split.features:
                raise UserError(f"{source}: has no {m} features, which the model "
                                f"({self.folder}) reads")
            if split.features[m].shape[2] != dims[m]:
                raise UserError(f"{source}: {m} features are {split.features[m].shape[2]}-d, "
                                f"the model ({self.folder}) was trained on {dims[m]}-d")

    @torch.no_grad()
    def predict(self, split: Split, chunk: int = 1024) -> np.ndarray:
        """Main-task outputs for raw (not normalised) features: scores (N,) or logits (N, C)."""
        split = apply_normalization(split, self.normalization)
        dev = self.model.device
        n = len(split)
        out = []
        for start in range(0, n, chunk):
            rows = slice(start, min(start + chunk, n))
            inputs = {m: torch.as_tensor(split.features[m][rows], device=dev)[None]
                      for m in self.model.modalities}
            lengths = {m: torch.as_tensor(split.lengths[m][rows], device=dev)[None]
                       for m in self.model.modalities}
            out.append(self.model(inputs, lengths).main[0].float().cpu())
        return torch.cat(out).numpy()


def load_model(folder: str | Path, device: str = "cpu") -> SavedModel:
    """Read a saved model folder (one seed) back."""
    folder = Path(folder)
    meta_path, weights = folder / MODEL_JSON, folder / MODEL_PT
    if not meta_path.is_file() or not weights.is_file():
        raise UserError(f"{folder}: not a saved model (needs {MODEL_JSON} and {MODEL_PT})")
    try:
        meta = json.loads(meta_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise UserError(f"{meta_path}: damaged, not valid JSON ({exc})") from None
    if meta.get("format") != FORMAT:
        raise UserError(f"{meta_path}: not an {FORMAT!r} file")
    cfg = RunConfig.from_dict(meta["run_config"], str(meta_path))
    sig = meta["signature"]
    info = DataInfo(dims=sig["dims"], seq_lens=sig["seq_lens"], task=sig["task"],
                    num_classes=len(sig["label_names"] or []), modalities=tuple(sig["modalities"]))
    model = build_model(cfg, info, seed=meta["seed"], device=device).eval()
    try:
        state = torch.load(weights, map_location=device, weights_only=True)
        with torch.no_grad():
            for name, param in model.params.items():
                param[0].copy_(state[name])
    except (KeyError, RuntimeError, OSError) as exc:
        raise UserError(f"{weights}: does not fit the model its {MODEL_JSON} describes "
                        f"({type(exc).__name__}: {str(exc).splitlines()[0][:120]})") from None
    stats = {m: (np.asarray(v["mean"]), np.asarray(v["std"]))
             for m, v in meta["normalization"].items()}
    return SavedModel(folder, cfg, meta["seed"], sig, stats, meta.get("metrics", {}), model)


def model_folders(path: str | Path) -> list[Path]:
    """The seeds' model folders under `path`: a model folder itself, an `evo-msa train` output
    (its seed_* folders), a final-trainer genome folder, or a search run (its best genome)."""
    path = Path(path)
    if (path / MODEL_JSON).is_file():
        return [path]
    seeds = sorted(p.parent for p in path.glob(f"{seed_folder(ANY)}/{MODEL_JSON}"))
    if seeds:
        return seeds
    best = f"{final_folder(1, ANY)}/{seed_folder(ANY)}"
    ranked = sorted(path.glob(f"{best}/{MODEL_JSON}"))
    if ranked:
        return [p.parent for p in ranked]
    raise UserError(f"{path}: no saved model there (expected {MODEL_JSON} in it, in its "
                    f"{seed_folder(ANY)} folders, or a search run's {best})")
