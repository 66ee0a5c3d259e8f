"""Export a saved model to ONNX.

Why ONNX (not TorchScript): an ONNX file runs in onnxruntime from C++, C#, Java, JavaScript or
Python without PyTorch, and PyTorch has moved TorchScript to maintenance in favour of
torch.export, which is also what its ONNX exporter is built on.

The graph takes raw features (the normalisation the model was trained with is inside it):
    inputs   <modality>          float32 (batch, T, D) for each modality the model reads
             <modality>_lengths  int64 (batch,) valid time steps
    output   prediction          float32 (batch,) sentiment scores, or (batch, C) emotion logits
An ensemble (a search's final/ensemble, or a run whose final model is one) is one graph of all
its members' seeds with the same inputs (every modality a member reads); its output is the
weighted mean score, or the log of the weighted mean class probabilities.
A JSON file beside it (<out>.json) holds the signature, the label names and the metrics.
"""
from __future__ import annotations

import contextlib
import logging
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from evo_msa.data.dataset import MODALITIES
from evo_msa.errors import UserError
from evo_msa.io import atomic_write, write_json
from evo_msa.record.rundir import sidecar_path
from evo_msa.training.ensemble import Predictor
from evo_msa.training.saved import SavedModel


class _Standalone(nn.Module):
    """One saved model as a plain module: raw features in, predictions out."""

    def __init__(self, saved: SavedModel):
        super().__init__()
        self.model = saved.model.eval()
        self.mods = list(saved.model.modalities)
        for m in self.mods:
            mean, std = saved.normalization[m]
            self.register_buffer(f"mean_{m}", torch.as_tensor(mean, dtype=torch.float32))
            self.register_buffer(f"std_{m}", torch.as_tensor(std, dtype=torch.float32))

    def forward(self, *args):
        k = len(self.mods)
        inputs, lengths = {}, {}
        for i, m in enumerate(self.mods):
            x, n = args[i], args[k + i]
            valid = (torch.arange(x.shape[1], device=x.device)[None, :] < n[:, None])[..., None]
            z = (x - getattr(self, f"mean_{m}")) / getattr(self, f"std_{m}")
            inputs[m] = torch.where(valid, z, torch.zeros_like(z))[None]
            lengths[m] = n[None]
        return self.model(inputs, lengths).main[0]


class _Ensemble(nn.Module):
    """A predictor (training.ensemble) as one module: every member's seeds, combined as
    `evo-msa predict` combines them: the weighted mean of the scores (regression), or the log of
    the weighted mean of the softmax probabilities (classification). Inputs: every modality any
    member reads, in canonical order."""

    def __init__(self, predictor: Predictor):
        super().__init__()
        self.parts = nn.ModuleList(_Standalone(m) for member in predictor.members
                                   for m in member.models)
        self.weights = [member.weight / len(member.models) for member in predictor.members
                        for _ in member.models]
        used = {m for part in self.parts for m in part.mods}
        self.mods = [m for m in MODALITIES if m in used]
        self.regression = predictor.task == "regression"

    def forward(self, *args):
        k = len(self.mods)
        x = {m: args[i] for i, m in enumerate(self.mods)}
        n = {m: args[k + i] for i, m in enumerate(self.mods)}
        total = None
        for part, w in zip(self.parts, self.weights):
            out = part(*[x[m] for m in part.mods], *[n[m] for m in part.mods])
            out = out if self.regression else torch.softmax(out, dim=-1)
            total = w * out if total is None else total + w * out
        return total if self.regression else torch.log(total.clamp_min(1e-12))


def export_onnx(model: SavedModel | Predictor, out: str | Path, *, check: bool = True) -> dict:
    """Write `out` (.onnx) and `out`.json for one saved model, or for a predictor (all its
    members and seeds, as one graph); with `check`, run it in onnxruntime on random inputs and
    compare with PyTorch. Returns the sidecar's content."""
    for saved in ([model] if isinstance(model, SavedModel) else model.models):
        if saved.config.pretrained.model and "text" in saved.model.modalities:
            raise UserError(f"{saved.folder}: reads raw text through a pretrained encoder "
                            f"({saved.config.pretrained.model}); ONNX export takes feature "
                            "arrays, so such a model is used with `evo-msa predict`")
    try:
        import onnxscript  # noqa: F401 - the exporter needs it
    except ImportError:
        raise UserError("export needs the ONNX exporter (in the checkout: pip install -e "
                        "'.[export]')") from None
    out = Path(out)
    saved = model if isinstance(model, SavedModel) else model.first
    module = (_Standalone(model) if isinstance(model, SavedModel) else _Ensemble(model)).eval()
    sig = saved.signature
    batch = 4
    example = tuple(torch.randn(batch, sig["seq_lens"][m], sig["dims"][m]) for m in module.mods)
    example += tuple(torch.full((batch,), sig["seq_lens"][m], dtype=torch.long)
                     for m in module.mods)
    names = list(module.mods) + [f"{m}_lengths" for m in module.mods]
    dynamic = {"args": tuple({0: torch.export.Dim("batch")} for _ in example)}
    with torch.no_grad(), _quiet_exporter():
        program = torch.onnx.export(module, example, input_names=names,
                                    output_names=["prediction"], dynamic_shapes=dynamic,
                                    dynamo=True, verbose=False)
    atomic_write(out, lambda tmp: program.save(str(tmp)))
    side = {"format": "evo-msa onnx 1", "inputs": names, "output": "prediction",
            "signature": sig}
    if isinstance(model, SavedModel):
        side.update({"run_config": saved.config.to_dict(), "seed": saved.seed,
                     "metrics": saved.metrics, "source": str(saved.folder)})
    else:
        side.update({"kind": model.kind, "source": str(model.source),
                     "output_kind": "score" if module.regression else "log-probabilities",
                     "members": [{"folder": str(m.folder), "weight": m.weight,
                                  "seeds": [x.seed for x in m.models]} for m in model.members]})
    if check:
        side["max_abs_difference_vs_pytorch"] = compare(module, out, sig, example_batch=7)
    write_json(sidecar_path(out), side)
    return side


@contextlib.contextmanager
def _quiet_exporter():
    """The exporter logs notes about optional packages (torchvision) and its internals; the user
    gets our one line and the measured difference instead."""
    logger = logging.getLogger("torch.onnx")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.setLevel(level)


def compare(module: nn.Module, path: Path, sig: dict, example_batch: int = 7) -> float:
    """Largest |onnxruntime - PyTorch| on random inputs of another batch size (shapes from the
    data signature `sig`)."""
    import onnxruntime as ort

    sig_inputs = []
    gen = torch.Generator().manual_seed(0)
    for m in module.mods:
        T = sig["seq_lens"][m]
        sig_inputs.append(torch.randn(example_batch, T, sig["dims"][m], generator=gen))
    for m in module.mods:
        T = sig["seq_lens"][m]
        sig_inputs.append(torch.randint(1, T + 1, (example_batch,), generator=gen))
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    feed = {i.name: a.numpy() for i, a in zip(session.get_inputs(), sig_inputs)}
    ours = session.run(None, feed)[0]
    with torch.no_grad():
        theirs = module(*sig_inputs).numpy()
    return float(np.abs(ours - theirs).max())

