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

import dataclasses
import pickle
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from evo_msa.config import RunConfig
from evo_msa.data import DataInfo
from evo_msa.data.dataset import MODALITIES, Split
from evo_msa.data.loader import apply_normalization
from evo_msa.errors import UserError, brief
from evo_msa.io import file_kind, input_file, read_json
from evo_msa.models import HAEMSA, build_model
from evo_msa.models.haemsa import active_modalities
from evo_msa.record.rundir import (
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
        """The model's task: regression or classification."""
        return self.signature["task"]

    def model_split(self, split: Split, source: str) -> Split:
        """Raw features as the model reads them: text through the pretrained encoder where the
        model has one (models.pretrained), then z-scored as in training."""
        pc = self.config.pretrained
        if pc.model and "text" in self.model.modalities:
            from evo_msa.models.pretrained import text_split

            split = text_split(split, pc.model, pc.finetune_layers, pc.max_tokens, source,
                               self.signature["seq_lens"]["text"])
        return apply_normalization(split, self.normalization)

    def check(self, split: Split, source: str) -> None:
        """New data must give the model what it was trained on: its modalities, same widths."""
        if self.config.pretrained.model and "text" in self.model.modalities:
            split = self.model_split(split, source)
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
        mods = self.model.modalities  # the data may hold others: the model reads these
        split = self.model_split(dataclasses.replace(
            split, features={m: x for m, x in split.features.items() if m in mods},
            lengths={m: x for m, x in split.lengths.items() if m in mods}), "data")
        dev = self.model.device
        n = len(split)
        out = []
        for start in range(0, n, chunk):
            rows = slice(start, min(start + chunk, n))
            # each chunk cut to its longest sequence, as in training
            steps = {m: max(1, int(split.lengths[m][rows].max())) for m in self.model.modalities}
            inputs = {m: torch.as_tensor(split.features[m][rows, :steps[m]], device=dev)[None]
                      for m in self.model.modalities}
            lengths = {m: torch.as_tensor(split.lengths[m][rows], device=dev)[None]
                       for m in self.model.modalities}
            out.append(self.model(inputs, lengths).main[0].float().cpu())
        return torch.cat(out).numpy()


# Bounds of what a model.json may describe (real data: widths in the hundreds or thousands).
MAX_MODEL_JSON_BYTES = 64 << 20
MAX_DIM = 1 << 20  # a modality's feature width
MAX_SEQ_LEN = 1 << 20  # a modality's time steps
MAX_CLASSES = 1000  # as the loader's classes without label names
MAX_SEED = 2 ** 63 - 1


def load_model(folder: str | Path, device: str = "cpu") -> SavedModel:
    """Read a saved model folder (one seed) back. Whatever is wrong with the folder (code in
    the weights, garbage, wrong types, missing keys, shapes that disagree with model.json,
    absurd sizes) is a one-line UserError naming the file, raised before the model is built."""
    folder = Path(folder)
    meta_path, weights = folder / MODEL_JSON, folder / MODEL_PT
    if not meta_path.exists() or not weights.exists():
        raise UserError(f"{folder}: not a saved model (needs {MODEL_JSON} and {MODEL_PT})")
    meta = read_json(meta_path, MODEL_JSON, MAX_MODEL_JSON_BYTES)
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise UserError(f"{meta_path}: not an {FORMAT!r} file (its 'format' says otherwise)")
    missing = [k for k in ("run_config", "seed", "signature", "normalization") if k not in meta]
    if missing:
        raise UserError(f"{meta_path}: has no {missing[0]!r} (a saved model records run_config, "
                        "seed, signature and normalization)")
    cfg = RunConfig.from_dict(meta["run_config"], str(meta_path))
    seed = meta["seed"]
    if isinstance(seed, bool) or not isinstance(seed, int) or abs(seed) > MAX_SEED:
        raise UserError(f"{meta_path}: seed must be an integer, got {brief(seed)}")
    sig, info = _signature(meta_path, meta["signature"])
    modalities = active_modalities(cfg.model, info.modalities)
    if not modalities:
        raise UserError(f"{meta_path}: run_config's modality mask {cfg.model.modalities} keeps "
                        f"none of the signature's modalities {list(info.modalities)}")
    stats = _normalization(meta_path, meta["normalization"], info, modalities)
    state = _read_weights(weights)
    _check_shapes(weights, state, cfg, info)
    model = build_model(cfg, info, seed=seed, device=device).eval()
    with torch.no_grad():
        for name, param in model.params.items():
            param[0].copy_(state[name])
    metrics = meta.get("metrics")
    return SavedModel(folder, cfg, seed, sig, stats, metrics if isinstance(metrics, dict) else {},
                      model)


def _signature(path: Path, sig) -> tuple[dict, DataInfo]:
    """The data signature of model.json, checked field by field, and the DataInfo it gives."""
    def fail(field: str, expected: str, value):
        return UserError(f"{path}: signature.{field} must be {expected}, got {brief(value)}")

    if not isinstance(sig, dict):
        raise UserError(f"{path}: signature must be a mapping, got {brief(sig)}")
    task = sig.get("task")
    if task not in ("regression", "classification"):
        raise fail("task", "'regression' or 'classification'", task)
    mods = sig.get("modalities")
    if (not isinstance(mods, list) or not mods or not all(m in MODALITIES for m in mods)
            or len(set(mods)) < len(mods)):
        raise fail("modalities", f"a list of distinct names from {list(MODALITIES)}", mods)
    sizes = {}
    for field, top in (("dims", MAX_DIM), ("seq_lens", MAX_SEQ_LEN)):
        value = sig.get(field)
        if not isinstance(value, dict) or not all(
                isinstance(value.get(m), int) and not isinstance(value.get(m), bool)
                and 1 <= value[m] <= top for m in mods):
            raise fail(field, f"a width in 1..{top:,} for each of {mods}", value)
        sizes[field] = {m: value[m] for m in mods}
    names = sig.get("label_names")
    if task == "classification":
        if (not isinstance(names, list) or not 2 <= len(names) <= MAX_CLASSES
                or not all(isinstance(n, str) for n in names) or len(set(names)) < len(names)):
            raise fail("label_names", f"2..{MAX_CLASSES} distinct class names", names)
    else:
        scale = sig.get("scale")
        if names is not None or isinstance(scale, bool) or scale not in (1, 1.0, 3, 3.0):
            raise fail("scale" if names is None else "label_names",
                       "1 or 3 (regression)" if names is None else "null (regression)",
                       scale if names is None else names)
    info = DataInfo(dims=sizes["dims"], seq_lens=sizes["seq_lens"], task=task,
                    num_classes=len(names) if task == "classification" else 0,
                    modalities=tuple(mods))
    return sig, info


def _normalization(path: Path, raw, info: DataInfo, modalities: list[str]):
    """Mean and std per modality the model reads (and any other of the signature's that is
    there): finite, as wide as the signature says."""
    if not isinstance(raw, dict):
        raise UserError(f"{path}: normalization must be a mapping, got {brief(raw)}")
    stats = {}
    for m in [x for x in info.modalities if x in modalities or x in raw]:
        entry = raw.get(m)
        where = f"{path}: normalization.{m}"
        if not isinstance(entry, dict) or not {"mean", "std"} <= set(entry):
            raise UserError(f"{where} must be a mapping with mean and std, got {brief(entry)}")
        pair = []
        for key in ("mean", "std"):
            value = entry[key]
            if not isinstance(value, list) or len(value) != info.dims[m] or not all(
                    isinstance(v, (int, float)) and not isinstance(v, bool) for v in value):
                raise UserError(f"{where}.{key} must be a list of {info.dims[m]} numbers (the "
                                f"signature's {m} width), got {brief(value)}")
            arr = np.asarray(value, dtype=np.float64)
            if not np.isfinite(arr).all() or (key == "std" and (arr <= 0).any()):
                raise UserError(f"{where}.{key} must hold finite numbers"
                                + (" > 0" if key == "std" else ""))
            pair.append(arr)
        stats[m] = tuple(pair)
    return stats


def _read_weights(path: Path) -> dict[str, torch.Tensor]:
    """model.pt as a dict of float tensors. torch's zip format only: its records must fit the
    file (nothing bigger than the file is allocated), and weights_only refuses any code."""
    size = input_file(path, "weights").stat().st_size
    try:
        with zipfile.ZipFile(path) as archive:
            records = archive.infolist()
    except (zipfile.BadZipFile, OSError, ValueError, EOFError):
        raise UserError(f"{path}: not a PyTorch weights file (torch.save's zip format)") from None
    if sum(r.file_size for r in records) > size:
        raise UserError(f"{path}: its records declare {sum(r.file_size for r in records):,} "
                        f"bytes, more than the file's {size:,}: refused")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:  # weights_only refused a global: code, not tensors
        found = re.search(r"GLOBAL ([\w.]+)", str(exc))
        what = f" ({found.group(1)[:80]})" if found else ""
        raise UserError(f"{path}: refused: it holds Python objects{what}, not only tensors; "
                        "a saved model's weights are a dict of tensors") from None
    except Exception as exc:  # noqa: BLE001 - any other failure means a damaged or foreign file
        detail = str(exc).strip().splitlines()[0][:120] if str(exc).strip() else ""
        if "weights_only" in detail:
            detail = ""
        raise UserError(f"{path}: not a readable PyTorch weights file ({type(exc).__name__}"
                        f"{': ' + detail if detail else ''})") from None
    if not isinstance(state, dict) or not all(
            isinstance(k, str) and isinstance(v, torch.Tensor) and v.is_floating_point()
            for k, v in state.items()):
        raise UserError(f"{path}: must hold a dict of float tensors, got {brief(state)}")
    return state


def _check_shapes(path: Path, state: dict[str, torch.Tensor], cfg: RunConfig,
                  info: DataInfo) -> None:
    """The weights must be exactly the parameters model.json describes. A cheap lower bound
    on their count comes first: declaring the model costs memory in proportion to its size,
    so a model.json claiming huge widths is refused by the file's own size."""
    have = sum(t.numel() for t in state.values())
    m = cfg.model
    pad = max(m.expert_dim, m.unified_dim, *m.level_widths[:m.depth])
    tasks = 1 if info.task == "classification" else 2
    # every specific expert maps its input to `pad` units; every task tower has a pad x pad key
    least = pad * sum(info.dims[x] for x in active_modalities(m, info.modalities))
    least += tasks * pad * pad
    if least > have:
        raise UserError(f"{path}: holds {have:,} weights; the model {MODEL_JSON} describes "
                        f"(input widths {info.dims}, widths up to {pad}) needs at least "
                        f"{least:,}")
    try:
        expected = {e.name: e.shape for e in HAEMSA([cfg], info).store.entries}
    except (ValueError, RuntimeError) as exc:
        raise UserError(f"{path.parent / MODEL_JSON}: describes no buildable model "
                        f"({' '.join(str(exc).split())[:120]})") from None
    for name, shape in expected.items():
        if name not in state:
            raise UserError(f"{path}: has no {brief(name)}, which the model {MODEL_JSON} "
                            "describes needs")
        if tuple(state[name].shape) != tuple(shape):
            raise UserError(f"{path}: {brief(name)} has shape {tuple(state[name].shape)}, the "
                            f"model {MODEL_JSON} describes needs {tuple(shape)}")
    extra = [k for k in state if k not in expected]
    if extra:
        raise UserError(f"{path}: holds {brief(extra[0])}, which the model {MODEL_JSON} "
                        "describes does not have")


def model_folders(path: str | Path) -> list[Path]:
    """The seeds' model folders under `path`: a model folder itself, an `evo-msa train` output
    (its seed_* folders), a final-trainer genome folder, or a search run (its best genome)."""
    path = Path(path)
    if not path.is_dir():
        if path.exists():
            kind = "a file" if path.is_file() else file_kind(path.stat().st_mode)
            raise UserError(f"{path}: is {kind}, not a model folder (give the seed_<s> folder or "
                            "the run directory)")
        raise UserError(f"{path}: no such model folder")
    if (path / MODEL_JSON).exists():
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
