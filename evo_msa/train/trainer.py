"""Train one HAEMSA model: train split in, early stopping on valid, best state scored on test.

Fast by construction: every split is moved to the device once, mini-batches are index slices
(no DataLoader, no per-batch host-to-device copy), per-term losses are summed on the device and
read back once per epoch, bf16 autocast on CUDA.
"""
from __future__ import annotations

import math
import random
import time
from dataclasses import asdict, dataclass, field
from typing import Callable

import numpy as np
import torch

from evo_msa.config import RunConfig
from evo_msa.data.dataset import MSAData, Split
from evo_msa.metrics import compute_metrics, metric_direction
from evo_msa.models import DataInfo, build_model, count_parameters
from evo_msa.objectives import coarse_labels, make_weighting, task_losses
from evo_msa.objectives.losses import regression_loss

EVAL_CHUNK = 4096


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite."""


@dataclass
class TrainResult:
    metrics: dict[str, dict[str, float]]  # split -> metric -> value ("loss" included)
    best_epoch: int
    epochs: int
    params: int
    seconds: float
    history: list[dict[str, float]] = field(default_factory=list)  # one row per epoch
    task_weights: dict[str, float] = field(default_factory=dict)  # final task weights

    def to_dict(self) -> dict:
        return asdict(self)


def resolve_device(device: str = "auto") -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError("--device cuda was asked for but no CUDA device is available")
    return torch.device(device)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


class DeviceSplit:
    """A split's tensors, placed on the device once."""

    def __init__(self, split: Split, data: MSAData, coarse_classes: int, device: torch.device):
        def put(x, dtype):
            return torch.as_tensor(np.ascontiguousarray(x)).to(device=device, dtype=dtype)

        self.n = len(split)
        self.inputs = {m: put(x, torch.float32) for m, x in split.features.items()}
        self.lengths = {m: put(x, torch.long) for m, x in split.lengths.items()}
        self.labels: dict[str, torch.Tensor] = {}
        if data.task == "regression":
            y = put(split.regression, torch.float32)
            self.labels["main"] = y
            self.labels["coarse"] = coarse_labels(y, coarse_classes, data.scale)
            self.labels["kt"] = self.labels["coarse"]
            for m, u in split.unimodal.items():
                self.labels[f"uni_{m}"] = put(u, torch.float32)
        else:
            self.labels["main"] = put(split.classification, torch.long)
            self.labels["kt"] = self.labels["main"]

    def batch(self, idx: torch.Tensor):
        return ({m: x[idx] for m, x in self.inputs.items()},
                {m: x[idx] for m, x in self.lengths.items()},
                {k: y[idx] for k, y in self.labels.items()})


class Trainer:
    def __init__(self, data: MSAData, cfg: RunConfig, *, seed: int = 0, device: str = "auto"):
        self.data, self.cfg, self.seed = data, cfg, seed
        self.device = resolve_device(device)
        seed_everything(seed)
        self.info = DataInfo.from_data(data, cfg.objective.coarse_classes)
        self.model = build_model(cfg.model, self.info).to(self.device)
        self.weighting = make_weighting(cfg.objective).to(self.device)
        self.splits = {name: DeviceSplit(split, data, cfg.objective.coarse_classes, self.device)
                       for name, split in data.splits.items()}
        params = list(self.model.parameters()) + list(self.weighting.parameters())
        self.optimizer = torch.optim.AdamW(params, lr=cfg.train.lr,
                                           weight_decay=cfg.train.weight_decay)
        self.autocast = self.device.type == "cuda"
        self.generator = torch.Generator(device="cpu").manual_seed(seed)

    # ---- one epoch -------------------------------------------------------------------------
    def train_epoch(self) -> dict[str, float]:
        self.model.train()
        train = self.splits["train"]
        bs = self.cfg.train.batch_size
        order = torch.randperm(train.n, generator=self.generator).to(self.device)
        sums: dict[str, torch.Tensor] = {}
        steps = 0
        for start in range(0, train.n, bs):
            idx = order[start:start + bs]
            if len(idx) < 2 and train.n > 1:  # a trailing batch of one sample is a very noisy
                continue  # gradient step: skip it (as drop_last would)
            inputs, lengths, labels = train.batch(idx)
            with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.autocast):
                out = self.model(inputs, lengths)
            losses = task_losses(out, labels, self.cfg.objective)
            total = self.weighting.combine(losses)
            self.optimizer.zero_grad(set_to_none=True)
            total.backward()
            if self.cfg.train.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.train.grad_clip)
            self.optimizer.step()
            for k, v in losses.items():
                sums[k] = sums.get(k, 0.0) + v.detach()
            sums["total"] = sums.get("total", 0.0) + total.detach()
            steps += 1
        means = {k: float(v) / max(steps, 1) for k, v in sums.items()}  # one sync per epoch
        if not all(math.isfinite(v) for v in means.values()):
            raise TrainingDiverged(f"non-finite training loss: {means}")
        self.weighting.end_epoch(means)
        return means

    # ---- evaluation ------------------------------------------------------------------------
    @torch.no_grad()
    def predict(self, split: str) -> tuple[np.ndarray, np.ndarray]:
        """Main-task predictions (scores or logits) and labels of a split, as numpy."""
        self.model.eval()
        data = self.splits[split]
        preds = []
        for start in range(0, data.n, EVAL_CHUNK):
            idx = torch.arange(start, min(start + EVAL_CHUNK, data.n), device=self.device)
            inputs, lengths, _ = data.batch(idx)
            with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.autocast):
                preds.append(self.model(inputs, lengths).main.float())
        return torch.cat(preds).cpu().numpy(), data.labels["main"].cpu().numpy()

    def evaluate(self, split: str) -> dict[str, float]:
        pred, truth = self.predict(split)
        if self.data.task == "regression":
            # the fitness of HAEMSA eq. 8: the main task's loss on the split (L1 = MAE)
            loss = float(regression_loss(torch.from_numpy(pred), torch.from_numpy(truth)))
        else:
            loss = float(torch.nn.functional.cross_entropy(torch.from_numpy(pred),
                                                           torch.from_numpy(truth)))
        metrics = compute_metrics(pred, truth, task=self.data.task, scale=self.data.scale,
                                  label_names=self.data.label_names)
        metrics["loss"] = loss if math.isfinite(loss) else float("inf")
        return metrics

    # ---- the whole run ---------------------------------------------------------------------
    def fit(self, *, eval_splits=("valid", "test"),
            on_epoch: Callable[[int, dict[str, float]], None] | None = None) -> TrainResult:
        """Train with early stopping on the validation metric; return the best state's metrics.

        `on_epoch(epoch, valid_metrics)` is called after every epoch (Ray Tune reports there).
        `eval_splits` names the splits scored at the end: a search leaves "test" out.
        """
        t0 = time.perf_counter()
        tc = self.cfg.train
        select = tc.select_metric
        sign = 1.0 if metric_direction(select) == "min" else -1.0
        best, best_epoch, best_state, history = math.inf, 0, None, []
        epoch = 0
        for epoch in range(1, tc.epochs + 1):
            train_losses = self.train_epoch()
            valid = self.evaluate("valid")
            score = sign * valid.get(select, math.nan)
            history.append({"epoch": epoch, **{f"train_{k}": v for k, v in train_losses.items()},
                            **{f"valid_{k}": v for k, v in valid.items()}})
            if on_epoch is not None:
                on_epoch(epoch, valid)
            if math.isfinite(score) and score < best:
                best, best_epoch = score, epoch
                best_state = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
            elif epoch - best_epoch >= tc.patience:
                break
        if best_state is None:
            raise TrainingDiverged(f"validation {select} was never finite")
        self.model.load_state_dict(best_state)
        metrics = {s: self.evaluate(s) for s in eval_splits if s in self.splits}
        return TrainResult(metrics=metrics, best_epoch=best_epoch, epochs=epoch,
                           params=count_parameters(self.model),
                           seconds=time.perf_counter() - t0, history=history,
                           task_weights=self.weighting.weights())


def train_model(data: MSAData, cfg: RunConfig, *, seed: int = 0, device: str = "auto",
                eval_splits=("valid", "test"), on_epoch=None) -> TrainResult:
    return Trainer(data, cfg, seed=seed, device=device).fit(eval_splits=eval_splits,
                                                           on_epoch=on_epoch)
