"""Train a population of HAEMSA networks as one program: train split in, early stopping on valid
(per member), each member's best state scored on the requested splits.

A single model is a population of one (`train_model`); a search trial trains its batch of
genomes together (`train_population`); the final trainer trains its seeds together. Members keep
everything of their own: run config, seed (initial weights, order of the mini-batches), learning
rate, weight decay, dropout, loss weights, early stopping and best state. What they share is the
batch size (`train_population` groups members by it) and one program: every step is a handful of
batched tensor ops, whatever P is.

Fast by construction: every split is moved to the device once, mini-batches are index gathers
(no DataLoader), per-term losses are summed on the device and read back once per epoch, bf16
autocast of the training steps on CUDA. On a CPU, bf16 would be 10-20% faster where the CPU has
bf16 instructions, but its kernels depend on the population's padded shapes, so a member would no
longer train bit for bit as it does alone (what resuming a search relies on): float32 there.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np
import torch

from evo_msa.config import RunConfig
from evo_msa.data import DataInfo
from evo_msa.data.dataset import MSAData, Split
from evo_msa.losses import TaskLabels, coarse_labels
from evo_msa.losses.terms import TERMS
from evo_msa.metrics import Objective, compute_metrics
from evo_msa.models.pretrained import text_view
from evo_msa.models.sequence import StepLayout, Steps
from evo_msa.status import Status
from evo_msa.training.halving import Halving
from evo_msa.training.optim import PopulationAdamW
from evo_msa.training.population import build_population

EVAL_ELEMENTS = 1 << 26  # floats per evaluation chunk (inputs of all members together)


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite (a single model's training; a member of a population
    gets Status.NAN instead)."""


@dataclass
class TrainResult:
    """One member's training."""

    metrics: dict[str, dict[str, float]]  # split -> metric -> value ("loss" included)
    best_epoch: int
    epochs: int
    params: int
    seconds: float  # wall time of the whole population's training
    status: Status = Status.OK  # OK, or NAN: the loss or the validation metric was never finite
    population: int = 1  # how many members trained together
    history: list[dict[str, float]] = field(default_factory=list)  # one row per epoch
    task_weights: dict[str, float] = field(default_factory=dict)  # final task weights
    error: str = ""
    rung: int = 0  # > 0: stopped by successive halving at this rung (status EARLY_STOPPED)


def similar_length_order(order: torch.Tensor, lengths: torch.Tensor, batch_size: int,
                         gen: torch.Generator) -> torch.Tensor:
    """Shuffled samples `order` regrouped into batches of similar length (what bucketing
    samplers do): sorted by length within chunks of 50 batches, the full batches shuffled, a
    short last batch kept last."""
    chunk = 50 * batch_size
    ranked = lengths[order]
    order = torch.cat([order[a:a + chunk][ranked[a:a + chunk].argsort(stable=True)]
                       for a in range(0, len(order), chunk)])
    batches = list(order.split(batch_size))
    last = batches.pop() if len(batches) > 1 and len(batches[-1]) < batch_size else None
    batches = [batches[i] for i in torch.randperm(len(batches), generator=gen)]
    return torch.cat(batches + ([last] if last is not None else []))


def encoder_slices(model, configs: list[RunConfig]) -> list[tuple[int, int, list[float]]]:
    """Each fine-tuned encoder layer's slice of a member's row, with its learning rate per
    member: the top layer at pretrained.lr, each one below times pretrained.layer_decay."""
    layers = model.text_layers
    if layers is None:
        return []
    top = len(layers.slices) - 1
    return [(a, b, [c.pretrained.lr * c.pretrained.layer_decay ** (top - j) for c in configs])
            for j, (a, b) in enumerate(layers.slices)]


def batch_starts(n: int, batch_size: int) -> range:
    """Where an epoch's training batches start: every batch_size samples, but a trailing batch of
    one sample (a very noisy gradient step) is skipped, as drop_last would."""
    stop = n - 1 if n > 1 and n % batch_size == 1 else n
    return range(0, stop, batch_size)


@dataclass(frozen=True)
class EncoderSchedule:
    """A member's multiplier of its encoder layers' rates at a training step (from 1): a linear
    warm-up over pretrained.warmup epochs, then 1 (schedule "constant") or falling linearly to
    0 at the last step of train.epochs ("linear")."""

    warmup_steps: float
    total_steps: int
    decay: bool

    @classmethod
    def of(cls, cfg: RunConfig, steps_per_epoch: int) -> "EncoderSchedule":
        """The schedule of `cfg` (pretrained.warmup, .schedule; train.epochs)."""
        return cls(cfg.pretrained.warmup * steps_per_epoch, cfg.train.epochs * steps_per_epoch,
                   cfg.pretrained.schedule == "linear")

    def scale(self, step: int) -> float:
        """The multiplier at `step`."""
        up = min(1.0, step / self.warmup_steps) if self.warmup_steps > 0 else 1.0
        if not self.decay:
            return up
        left = (self.total_steps + 1 - step) / max(1.0, self.total_steps - self.warmup_steps)
        return up * min(1.0, max(0.0, left))


def resolve_device(device: str = "auto") -> torch.device:
    """The torch device `device` names (auto: cuda when there is one, else cpu)."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError("--device cuda was asked for but no CUDA device is available")
    return torch.device(device)


class DeviceSplit:
    """A split's tensors, placed on the device once; `batch` gathers each member's samples."""

    def __init__(self, split: Split, data: MSAData, modalities: list[str], coarse: list[int],
                 device: torch.device):
        def put(x, dtype):
            return torch.as_tensor(np.ascontiguousarray(x)).to(device=device, dtype=dtype)

        self.n = len(split)
        self.steps = {m: split.features[m].shape[1] for m in modalities}
        # sequences (T > 1) as their steps, flattened, and a row of zeros (see Steps.gather)
        self.inputs = {m: put(split.features[m], torch.float32) if self.steps[m] == 1 else
                       torch.cat([put(split.features[m].reshape(-1, split.features[m].shape[2]),
                                      torch.float32),
                                  torch.zeros(1, split.features[m].shape[2], device=device)])
                       for m in modalities}
        self.lengths = {m: put(split.lengths[m], torch.long) for m in modalities}
        # on the host too: each batch is laid out without a device sync
        self.host_lengths = {m: torch.as_tensor(split.lengths[m]).clamp(0, self.steps[m])
                             for m in modalities}
        self.coarse = None
        self.unimodal = None
        if data.task == "regression":
            self.y = put(split.regression, torch.float32)
            if any(coarse):  # each member's own coarse bins, (P, N)
                table = {k: coarse_labels(self.y, k, data.scale) for k in set(coarse)}
                self.coarse = torch.stack([table[k] for k in coarse])
            if split.unimodal:
                self.unimodal = torch.stack([
                    put(split.unimodal[m], torch.float32) if m in split.unimodal else self.y
                    for m in modalities])
        else:
            self.y = put(split.classification, torch.long)

    def batch(self, idx: torch.Tensor, host_idx: torch.Tensor | None = None):
        """Inputs, lengths and labels of the samples idx (P, B) of each member. A sequence
        modality comes as its valid steps, packed straight from the split (models.sequence:
        no padded batch is made), laid out from the lengths on the host (`host_idx`: idx
        there) to the batch's longest sequence."""
        labels = TaskLabels(main=self.y[idx])
        if self.coarse is not None:
            labels.coarse = torch.gather(self.coarse, 1, idx)
        if self.unimodal is not None:
            labels.unimodal = self.unimodal[:, idx].transpose(0, 1)
        host = (idx.cpu() if host_idx is None else host_idx).expand(idx.shape)
        inputs = {}
        for m, x in self.inputs.items():
            if self.steps[m] == 1:
                inputs[m] = x[idx]
                continue
            lengths = self.host_lengths[m][host]
            layout = StepLayout.of(lengths, max(1, int(lengths.max()))).to(x.device)
            inputs[m] = Steps.gather(x, self.steps[m], idx, layout)
        return inputs, {m: x[idx] for m, x in self.lengths.items()}, labels


class PopulationTrainer:
    """Trains members (a run config and a seed each, one shared batch size) together on one
    device: the data's splits go to the device once, `fit` trains with early stopping per
    member and returns a TrainResult per member; `model` then holds each member's best state.

        trainer = PopulationTrainer(data, configs, seeds, device="cpu")
        results = trainer.fit()    # train_population() also picks which members go together
    """

    def __init__(self, data: MSAData, configs: list[RunConfig], seeds: list[int], *,
                 device: str | torch.device = "auto", mixed_precision: bool | None = None):
        if len({c.train.batch_size for c in configs}) > 1:
            raise ValueError("members of one population share the batch size "
                             "(train_population groups them)")
        if len({c.pretrained.key for c in configs}) > 1:
            raise ValueError("members of one population share the pretrained encoder "
                             "(train_population groups them)")
        pc = configs[0].pretrained
        if pc.model:  # the text as this encoder gives it (models.pretrained)
            data = text_view(data, pc.model, pc.finetune_layers, pc.max_tokens)
        self.data, self.configs, self.seeds = data, list(configs), list(seeds)
        self.P = len(configs)
        self.device = resolve_device(device) if isinstance(device, str) else device
        if self.device.type == "cpu":
            # Adam's second moments of tiny gradients are subnormal floats, which x86 CPUs
            # handle 3-10x slower; flushing them to zero changes nothing that matters here
            torch.set_flush_denormal(True)
        self.info = DataInfo.from_data(data)
        self.model, self.loss, self.weighting = build_population(self.configs, self.info,
                                                                 self.seeds, self.device)
        coarse = [0 if data.task != "regression" else c.loss.coarse_classes for c in configs]
        self.splits = {name: DeviceSplit(split, data, self.model.modalities, coarse, self.device)
                       for name, split in data.splits.items()}
        tc = [c.train for c in configs]
        self.optimizer = PopulationAdamW(self.model.store, [t.lr for t in tc],
                                         [t.weight_decay for t in tc], [t.grad_clip for t in tc],
                                         slices=encoder_slices(self.model, self.configs))
        # each member's schedule of its encoder layers' rates (warm-up, then constant or decay)
        steps_per_epoch = len(batch_starts(len(data.splits["train"]), tc[0].batch_size))
        self.encoder_schedules = ([EncoderSchedule.of(c, steps_per_epoch) for c in configs]
                                  if pc.model else [])
        ema = torch.tensor([t.ema for t in tc], device=self.device).view(-1, 1)
        self.ema_decay = ema if bool((ema > 0).any()) else None
        self.ema = self.model.store.flat.clone() if self.ema_decay is not None else None
        # bf16 autocast of the training steps on CUDA (evaluation is float32: the metrics a
        # saved model reproduces); `mixed_precision=True` runs the same path on a CPU (tests)
        self.autocast = self.device.type == "cuda" if mixed_precision is None else mixed_precision
        self.batch_size = tc[0].batch_size
        self.orders = [torch.Generator().manual_seed(int(s)) for s in self.seeds]
        self.running = torch.ones(self.P, dtype=torch.bool, device=self.device)
        self.running_list = [True] * self.P  # the same, on the host
        self.ids = list(range(self.P))  # each row's member among all those `fit` trains
        self.best_state: torch.Tensor | None = None  # (P, N) each member's best weights so far
        self.valid_pred: torch.Tensor | None = None  # the last validation predictions

    # ---- one epoch -------------------------------------------------------------------------
    def train_epoch(self) -> torch.Tensor:
        """One pass over train for every running member; (P, K + 1) mean term losses and total."""
        self.model.train()
        train = self.splits["train"]
        bs = self.batch_size
        host_order = torch.stack([self._order(g, train.n, bs) for g in self.orders])
        order = host_order.to(self.device)
        sums = torch.zeros(self.P, len(TERMS) + 1, device=self.device)
        steps = 0
        store = self.model.store
        for start in batch_starts(train.n, bs):
            idx = order[:, start:start + bs]
            inputs, lengths, labels = train.batch(idx, host_order[:, start:start + bs])
            self.model.noise.step += 1
            if self.encoder_schedules:
                self.optimizer.slice_scale = [s.scale(self.model.noise.step)
                                              for s in self.encoder_schedules]
            with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.autocast):
                out = self.model(inputs, lengths)
            losses = self.loss.losses(out, labels)
            total = self.weighting.combine(losses)
            store.zero_grad()
            # members are independent: the sum's gradient is each member's own
            torch.where(self.running, total, torch.zeros_like(total)).sum().backward()
            self.optimizer.step(self.running_list)
            if self.ema is not None:
                self.ema.lerp_(store.flat, 1 - self.ema_decay)
            sums += torch.cat([losses.detach(), total.detach()[:, None]], 1)
            steps += 1
        means = sums / max(steps, 1)
        self.weighting.end_epoch(means[:, :-1])
        return means

    def _order(self, gen: torch.Generator, n: int, bs: int) -> torch.Tensor:
        """A member's samples in the order of this epoch: shuffled; with fine-tuned encoder
        layers (whose cost grows with each batch's longest utterance), in batches of similar
        length."""
        order = torch.randperm(n, generator=gen)
        if self.model.text_layers is None:
            return order
        return similar_length_order(order, self.splits["train"].host_lengths["text"], bs, gen)

    # ---- evaluation ------------------------------------------------------------------------
    @torch.no_grad()
    def predict(self, split: str) -> torch.Tensor:
        """Main-task outputs of every member on a split: (P, N) scores or (P, N, C) logits."""
        self.model.eval()
        data = self.splits[split]
        width = sum(x.shape[-1] * data.steps[m] for m, x in data.inputs.items())
        chunk = max(32, EVAL_ELEMENTS // max(1, self.P * width))
        preds = []
        with self._eval_weights():
            for start in range(0, data.n, chunk):
                rows = torch.arange(start, min(start + chunk, data.n))
                inputs, lengths, _ = data.batch(rows.to(self.device).expand(self.P, -1), rows)
                preds.append(self.model(inputs, lengths).main.float())
        return torch.cat(preds, 1)

    def _eval_weights(self):
        """Evaluate with the weight average where a member keeps one (train.ema)."""
        trainer = self

        class Swap:
            def __enter__(self):
                if trainer.ema is not None:
                    self.saved = trainer.model.store.flat.clone()
                    trainer.model.store.flat.copy_(trainer.ema)

            def __exit__(self, *exc):
                if trainer.ema is not None:
                    trainer.model.store.flat.copy_(self.saved)

        return Swap()

    def main_loss(self, pred: torch.Tensor, split: str) -> torch.Tensor:
        """The fitness of HAEMSA eq. 8 per member: L1 (= MAE) for scores, cross-entropy for
        emotions; (P,)."""
        y = self.splits[split].y
        if self.data.task == "regression":
            return (pred - y).abs().mean(1)
        logp = torch.log_softmax(pred, -1)
        return -logp.gather(-1, y.expand(len(pred), -1).unsqueeze(-1)).squeeze(-1).mean(1)

    def evaluate(self, split: str) -> list[dict[str, float]]:
        """Every metric of every member on a split ("loss" = the main-task loss)."""
        return self.metrics(self.predict(split), split)

    def metrics(self, pred: torch.Tensor, split: str) -> list[dict[str, float]]:
        """Every metric of predictions (P, N[, C]) of a split, per member."""
        loss = self.main_loss(pred, split).tolist()
        truth = self.splits[split].y.cpu().numpy()
        out = []
        for p in range(len(pred)):
            metrics = compute_metrics(pred[p].cpu().numpy(), truth, task=self.data.task,
                                      scale=self.data.scale, label_names=self.data.label_names)
            metrics["loss"] = loss[p] if math.isfinite(loss[p]) else math.inf
            out.append(metrics)
        return out

    def _valid_values(self, wanted: list[set[str]]) -> list[dict[str, float]]:
        """The validation metrics each member needs this epoch (its early-stopping metric, what
        a search watches); loss and mae come without computing the rest."""
        pred = self.valid_pred = self.predict("valid")
        values = [{"loss": v} for v in self.main_loss(pred, "valid").tolist()]
        full = None
        for p, names in enumerate(wanted):
            if self.data.task == "regression":
                values[p]["mae"] = values[p]["loss"]  # L1 on valid is MAE
            if names - set(values[p]):
                full = full or self._full_valid(pred)
                values[p].update(full[p])
        return values

    def _full_valid(self, pred):
        truth = self.splits["valid"].y.cpu().numpy()
        return [compute_metrics(pred[p].cpu().numpy(), truth, task=self.data.task,
                                scale=self.data.scale, label_names=self.data.label_names)
                for p in range(self.P)]

    # ---- the whole run ---------------------------------------------------------------------
    def fit(self, *, eval_splits=("valid", "test"), watch: Sequence[str] = (),
            on_epoch: Callable[[int, list[dict[str, float] | None]], None] | None = None,
            halving: Halving | None = None) -> list[TrainResult]:
        """Train with early stopping on each member's validation metric; return each member's
        best-state metrics on `eval_splits` (a search leaves "test" out).

        `on_epoch(epoch, valid)` is called after every epoch with each member's validation
        metrics (its early-stopping metric and `watch`; None for members that no longer train):
        Ray Tune reports there. `halving`: successive halving of the genomes (training.halving).
        Members that stop free their compute: the population is rebuilt without them; at the
        end `model` holds every member's best state again.
        """
        run = _Run(self.data, self.configs, self.seeds, self.device, watch, halving,
                   regroup=lambda ids: [ids])
        results, final = run.train([self], eval_splits, on_epoch, restore=True)
        if final is not self:  # this trainer becomes the restored population of every member
            self.__dict__.update(final.__dict__)
        return results

    # ---- one epoch of `fit`, and moving members between populations ------------------------
    def _epoch(self, epoch: int, tracks: list["_Track"], wanted: set[str]) -> list[dict | None]:
        """Train one epoch; each running member's divergence, early stopping and best state
        (tracks[p] is row p's). Validation metrics per row (None: it no longer trains)."""
        if self.best_state is None:
            self.best_state = self.model.store.flat.clone()
        means = self.train_epoch().tolist()
        tc = [c.train for c in self.configs]
        valid: list[dict | None] = list(self._valid_values([{t.select_metric, *wanted}
                                                            for t in tc]))
        improved = []
        for p, t in enumerate(tracks):
            if not t.running:
                valid[p] = None
                improved.append(False)
                continue
            t.stopped_at = epoch
            t.history.append({"epoch": epoch,
                              **{f"train_{k}": v for k, v in zip((*TERMS, "total"), means[p])},
                              **{f"valid_{k}": v for k, v in valid[p].items()}})
            if not math.isfinite(means[p][-1]):
                t.diverged = f"non-finite training loss in epoch {epoch}"
                t.running, valid[p] = False, None
                improved.append(False)
                continue
            score = Objective(tc[p].select_metric).loss(valid[p].get(tc[p].select_metric,
                                                                     math.nan))
            better = math.isfinite(score) and score < t.best
            improved.append(better)
            if better:
                t.best, t.best_epoch = score, epoch
                t.best_pred = self.valid_pred[p].clone()
            if epoch >= tc[p].epochs or epoch - t.best_epoch >= tc[p].patience:
                t.running = False
        if any(improved):
            mask = torch.tensor(improved, device=self.device).view(-1, 1)
            current = self.ema if self.ema is not None else self.model.store.flat
            self.best_state = torch.where(mask, current, self.best_state)
        self.running_list = [t.running for t in tracks]
        self.running = torch.tensor(self.running_list, device=self.device)
        return valid

    def _own(self, row: int) -> torch.Tensor:
        return self.model.store.positions(row).to(self.device)

    def _snapshot(self, row: int) -> dict:
        """Everything row `row`'s member trains on with, in a form any population holding it
        can load (`_load`): its own weights, moments, weight average and best state, its
        optimiser step, data order and task weights."""
        own, opt, w = self._own(row), self.optimizer, self.weighting
        flat = self.model.store.flat
        return {"params": flat[row, own].clone(), "m": opt.m_flat[row, own].clone(),
                "v": opt.v_flat[row, own].clone(),
                "ema": (self.ema if self.ema is not None else flat)[row, own].clone(),
                "best": (self.best_state if self.best_state is not None else flat)[row, own]
                .clone(), "step": opt.steps[row].clone(), "order": self.orders[row],
                "noise_step": self.model.noise.step, "lam": w.lam[row].clone(),
                "first": None if w.first is None else w.first[row].clone()}

    @torch.no_grad()
    def _load(self, row: int, state: dict) -> None:
        """Row `row` continues where `state` (a `_snapshot`, or only "params") left off."""
        own = self._own(row)
        self.model.store.flat[row, own] = state["params"]
        if self.ema is not None:
            self.ema[row, own] = state.get("ema", state["params"])
        if "best" not in state:
            return
        if self.best_state is None:
            self.best_state = self.model.store.flat.clone()
        self.best_state[row, own] = state["best"]
        opt, w = self.optimizer, self.weighting
        opt.m_flat[row, own], opt.v_flat[row, own] = state["m"], state["v"]
        opt.steps[row].copy_(state["step"])
        self.orders[row] = state["order"]
        self.model.noise.step = state["noise_step"]  # steps so far: the same for every member
        w.lam[row] = state["lam"]
        if state["first"] is not None:
            if w.first is None:
                w.first = torch.ones_like(w.lam)
            w.first[row] = state["first"]


@dataclass
class _Track:
    """One member's training as `fit` sees it, whichever population it trains in."""

    best: float = math.inf  # its early-stopping score at the best epoch
    best_epoch: int = 0
    stopped_at: int = 0
    running: bool = True
    diverged: str = ""
    rung: int = 0  # > 0: stopped by successive halving at this rung
    history: list[dict[str, float]] = field(default_factory=list)
    best_pred: torch.Tensor | None = None  # validation predictions of the best state
    best_own: torch.Tensor | None = None  # its best weights (own entries), once it left
    task_weights: dict[str, float] = field(default_factory=dict)
    params: int = 0
    population: int = 1  # members in the population it started in

    def value(self, rank: Objective) -> float:
        """Its fitness so far as a loss (the rank metric at its best epoch), inf if none."""
        if not self.best_epoch or self.diverged:
            return math.inf
        v = rank.loss(self.history[self.best_epoch - 1].get(f"valid_{rank.metric}", math.nan))
        return v if math.isfinite(v) else math.inf


class _Run:
    """Members trained as populations in lockstep, epoch by epoch, so that successive halving
    ranks all of them; whenever members stop, the survivors are regrouped into new populations
    (`regroup`: lists of member ids) carrying their state, and the stopped ones cost nothing."""

    def __init__(self, data, configs, seeds, device, watch, halving: Halving | None, regroup):
        self.data, self.configs, self.seeds, self.device = data, configs, seeds, device
        self.tracks = [_Track() for _ in configs]
        self.halving, self.regroup = halving, regroup
        self.wanted = set(watch) | ({halving.rank.metric} if halving else set())

    def population(self, ids: list[int]) -> PopulationTrainer:
        trainer = PopulationTrainer(self.data, [self.configs[i] for i in ids],
                                    [self.seeds[i] for i in ids], device=self.device)
        trainer.ids = list(ids)
        return trainer

    def train(self, trainers: list[PopulationTrainer], eval_splits, on_epoch, restore: bool,
              on_end=None):
        """`on_end({member: TrainResult})` in the epoch members end, when their validation
        metrics are final then (only "valid" evaluated, no restore): the results returned at
        the end, but for `seconds` (the time so far)."""
        t0 = time.perf_counter()
        tracks, P = self.tracks, len(self.configs)
        streamed = not restore and set(eval_splits) == {"valid"}
        done: dict[int, dict] = {}  # member -> its best state's validation metrics, once ended
        for trainer in trainers:
            for i in trainer.ids:
                tracks[i].population = trainer.P
        for epoch in range(1, max(c.train.epochs for c in self.configs) + 1):
            valid: list[dict | None] = [None] * P
            for trainer in trainers:
                rows = trainer._epoch(epoch, [tracks[i] for i in trainer.ids], self.wanted)
                for i, v in zip(trainer.ids, rows):
                    valid[i] = v
            if self.halving is not None:
                rung = self.halving.rung(epoch)
                stop = self.halving.stopped(epoch, [t.running for t in tracks],
                                            [t.value(self.halving.rank) for t in tracks])
                for i in stop:
                    tracks[i].running, tracks[i].rung = False, rung
            if streamed:  # the validation metrics of members that just ended are final
                ended = [i for i, t in enumerate(tracks) if not t.running and i not in done]
                if ended:
                    self.park(trainers)  # their params and task weights, for result()
                    done.update(zip(ended, self.best_valid(trainers[0], ended)))
                    if on_end is not None:
                        seconds = time.perf_counter() - t0
                        on_end({i: self.result(i, {"valid": done[i]}, seconds) for i in ended})
            if on_epoch is not None:
                on_epoch(epoch, valid)
            if not any(t.running for t in tracks):
                break
            if any(not tracks[i].running for tr in trainers for i in tr.ids):
                trainers = self.compact(trainers)
        self.park(trainers)
        seconds = time.perf_counter() - t0
        if restore or set(eval_splits) - {"valid"}:
            finals = self.restored(trainers)
            metrics = {}
            for split in eval_splits:
                rows = {i: m for tr in finals if split in tr.splits
                        for i, m in zip(tr.ids, tr.evaluate(split))}
                if rows:
                    metrics[split] = [rows[i] for i in range(P)]
            final = finals[0] if len(finals) == 1 else None
        else:  # the validation predictions of each best state are at hand
            if eval_splits:
                rest = [i for i in range(P) if i not in done]
                done.update(zip(rest, self.best_valid(trainers[0], rest)))
            metrics = {"valid": [done[i] for i in range(P)]} if eval_splits else {}
            final = None
        return self.results(metrics, seconds), final

    def compact(self, trainers: list[PopulationTrainer]) -> list[PopulationTrainer]:
        """The running members regrouped into new populations, each with its state."""
        states, keep = {}, []
        for trainer in trainers:
            if all(self.tracks[i].running for i in trainer.ids) and \
                    [trainer.ids] == self.regroup(trainer.ids):
                keep.append(trainer)  # nobody left it, nothing to regroup
                continue
            self.park([trainer])
            states.update({i: trainer._snapshot(r) for r, i in enumerate(trainer.ids)
                           if self.tracks[i].running})
        new = []
        for ids in (self.regroup(sorted(states)) if states else []):
            trainer = self.population(ids)
            for r, i in enumerate(ids):
                trainer._load(r, states[i])
            new.append(trainer)
        return keep + new

    def park(self, trainers: list[PopulationTrainer]) -> None:
        """Keep the best state of the members that stopped (own entries) before their
        population goes."""
        for trainer in trainers:
            for r, i in enumerate(trainer.ids):
                t = self.tracks[i]
                if not t.running and t.best_own is None:
                    best = trainer.best_state if trainer.best_state is not None else \
                        trainer.model.store.flat
                    t.best_own = best[r, trainer._own(r)].clone()
                    t.task_weights = trainer.weighting.weights(r)
                    t.params = len(t.best_own)

    def restored(self, trainers: list[PopulationTrainer]) -> list[PopulationTrainer]:
        """Every member in its best state: one population of all of them (the one that trained
        them all, if no member ever left it), or one per text encoder where they differ."""
        groups: dict[tuple, list[int]] = {}
        for i, cfg in enumerate(self.configs):
            groups.setdefault(cfg.pretrained.key, []).append(i)
        out = []
        for ids in groups.values():
            trainer = next((tr for tr in trainers if tr.ids == ids), None)
            if trainer is None:
                trainer = self.population(ids)
            for r, i in enumerate(ids):
                trainer._load(r, {"params": self.tracks[i].best_own})
            out.append(trainer)
        return out

    def best_valid(self, any_trainer: PopulationTrainer, members) -> list[dict[str, float]]:
        """The validation metrics of the members' best states."""
        preds = [self.tracks[i].best_pred for i in members]
        fallback = next((p for p in preds if p is not None), None)
        if fallback is None:
            return [{"loss": math.inf} for _ in preds]
        nan = torch.full_like(fallback, math.nan)
        return any_trainer.metrics(torch.stack([p if p is not None else nan for p in preds]),
                                   "valid")

    def results(self, metrics: dict, seconds: float) -> list[TrainResult]:
        return [self.result(p, {s: m[p] for s, m in metrics.items()}, seconds)
                for p in range(len(self.tracks))]

    def result(self, p: int, metrics: dict, seconds: float) -> TrainResult:
        t, cfg = self.tracks[p], self.configs[p]
        error = t.diverged or ("" if t.best_epoch else
                              f"validation {cfg.train.select_metric} was never finite")
        status = Status.NAN if error else Status.EARLY_STOPPED if t.rung else Status.OK
        return TrainResult(
            status=status, metrics=metrics, best_epoch=t.best_epoch, epochs=t.stopped_at,
            params=t.params, seconds=seconds, population=t.population, history=t.history,
            task_weights=t.task_weights, error=error, rung=t.rung)


def train_population(data: MSAData, configs: list[RunConfig], seeds: list[int], *,
                     device: str | torch.device = "auto", eval_splits=("valid", "test"),
                     watch: Sequence[str] = (), on_epoch=None,
                     halving: Halving | None = None, on_end=None) -> list[TrainResult]:
    """Train every (config, seed) member. Members train together as few populations as the
    device makes worthwhile (see `plan_populations`; regrouped whenever members stop), in
    lockstep, so that `halving` ranks all of them; results come back in order. `on_epoch(epoch,
    {member: valid metrics or None})` after every epoch; with eval_splits ("valid",),
    `on_end({member: TrainResult})` as members end (their results then, as returned)."""
    device = resolve_device(device) if isinstance(device, str) else device

    def regroup(ids: list[int]) -> list[list[int]]:
        return [[ids[j] for j in group]
                for group in plan_populations([configs[i] for i in ids], device)]

    run = _Run(data, configs, seeds, device, watch, halving, regroup)
    hook = None
    if on_epoch is not None:
        hook = lambda epoch, valid: on_epoch(epoch, dict(enumerate(valid)))  # noqa: E731
    trainers = [run.population(ids) for ids in regroup(list(range(len(configs))))]
    return run.train(trainers, eval_splits, hook, restore=False, on_end=on_end)[0]


# CPU cost of one population step, in units of one member's (width^2 x level) work: a fixed
# part for the program, and each member's work at the population's (padded) width. Measured on
# 2 cores (torch 2.13): ~12 ms per step plus ~0.13 us per unit.
_CPU_STEP_OVERHEAD = 90_000


def plan_populations(configs: list[RunConfig], device: torch.device) -> list[list[int]]:
    """Which members train together: members share the batch size. On a GPU (launch-bound)
    the rest is one population; on a CPU (compute-bound) padding to the widest member costs
    real time, so members are grouped by width where that pays (dynamic programming over the
    members sorted by width, against the per-step overhead a group costs)."""
    by_batch: dict[tuple, list[int]] = {}  # members sharing batch size and text encoder
    for i, cfg in enumerate(configs):
        by_batch.setdefault((cfg.train.batch_size, cfg.pretrained.key), []).append(i)
    if device.type != "cpu":
        return list(by_batch.values())
    plan = []
    for members in by_batch.values():
        width = {i: configs[i].model.widest for i in members}
        order = sorted(members, key=lambda i: width[i])
        levels = [configs[i].model.depth + 2 for i in order]  # + experts and towers
        best = [0.0] + [float("inf")] * len(order)
        cut = [0] * (len(order) + 1)
        for j in range(1, len(order) + 1):
            for i in range(j):  # a group order[i:j], padded to its widest member
                cost = best[i] + _CPU_STEP_OVERHEAD + sum(levels[i:j]) * width[order[j - 1]] ** 2
                if cost < best[j]:
                    best[j], cut[j] = cost, i
        j, groups = len(order), []
        while j > 0:
            groups.append(order[cut[j]:j])
            j = cut[j]
        plan += reversed(groups)
    return plan


def train_model(data: MSAData, cfg: RunConfig, *, seed: int = 0, device: str = "auto",
                eval_splits=("valid", "test"), on_epoch=None) -> TrainResult:
    """Train one model (a population of one); raises TrainingDiverged if it diverged."""
    hook = None if on_epoch is None else (lambda e, valid: on_epoch(e, valid[0]))
    result = train_population(data, [cfg], [seed], device=device, eval_splits=eval_splits,
                              on_epoch=hook)[0]
    if result.status is Status.NAN:
        raise TrainingDiverged(result.error)
    return result
