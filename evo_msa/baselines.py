"""Built-in baselines: what a simple model gets on the user's data.

Every selected modality is pooled over time (the mean over its valid steps, given by the
lengths; T == 1 is just the vector) and the pooled vectors are concatenated. On that input:

- `ridge` (regression): sklearn `Ridge`'s objective (with intercept), solved for every alpha
  from one SVD; the penalty alpha chosen on valid by valid MAE.
- `softmax` (classification): multinomial logistic regression (sklearn `LogisticRegression`,
  lbfgs, L2), penalty C chosen on valid by valid weighted F1, ties broken by valid
  cross-entropy.
- `mlp` (both): one hidden layer of 128 ReLU units with dropout, Adam, early stopping on the
  valid loss (MAE = the L1 main-task loss for regression, cross-entropy for classification).
- `finetune` (both, text only): the plain fine-tuned text encoder (MMSA's `use_finetune`): a
  pretrained encoder (all-MiniLM-L6-v2 unless told) reads the utterances, every layer trains,
  mean pooling over the tokens and one linear layer; L1 or cross-entropy, AdamW (3e-5 encoder,
  1e-3 head), batch 32 of similar lengths, 5 epochs, the epoch with the best valid loss kept.

Selection only ever looks at valid; test is scored once, with the selected model. The result has
the structure of `evo_msa.training.multiseed.train_seeds` (built by its `summarise` and
`per_seed_table`), so the same metrics.json / metrics.csv can be written, plus a "baseline"
entry that says what was fitted and how it was chosen. `ridge` and `softmax` are deterministic:
they are fitted once and the result is repeated for every seed (std 0).
"""
from __future__ import annotations

import copy
import math
import time
import warnings
from typing import TYPE_CHECKING, Callable

import numpy as np
import pandas as pd
import torch

from evo_msa.data.dataset import MODALITIES, SHORT_NAMES, MSAData, Split
from evo_msa.errors import UserError
from evo_msa.metrics import compute_metrics
from evo_msa.training.multiseed import per_seed_table, summarise
from evo_msa.training.trainer import TrainResult, resolve_device, similar_length_order

if TYPE_CHECKING:
    from sklearn.linear_model import LogisticRegression

MODELS = ("ridge", "softmax", "mlp", "finetune")
# Half-decade steps. The valid-MAE curve is flat near its minimum while test MAE is not, so a
# finer grid moves the test figure by ~0.01 (MOSI MiniLM text: 0.868 here, 0.881 at 4 per decade).
RIDGE_ALPHAS = tuple(float(a) for a in np.logspace(-3, 4, 15))  # 1e-3, 3.2e-3, .. 1e4
SOFTMAX_CS = tuple(float(c) for c in np.logspace(-4, 2, 13))  # 2 per decade, 1e-4 .. 1e2
SOFTMAX_MAX_ITER = 2000
MLP = {"hidden": 128, "dropout": 0.1, "lr": 1e-3, "batch_size": 64, "max_epochs": 200,
       "patience": 10}
FINETUNE = {"model": "all-MiniLM-L6-v2", "lr": 3e-5, "head_lr": 1e-3, "weight_decay": 0.01,
            "batch_size": 32, "epochs": 5, "max_tokens": 50}
_EVAL_SPLITS = ("valid", "test")


# --- inputs --------------------------------------------------------------------------------------

def select_modalities(data: MSAData, modalities: list[str] | None) -> list[str]:
    """The modalities to use, in canonical order; None means all the data has. Short names
    (t, a, v) are accepted. Unknown or absent modalities are a UserError."""
    if modalities is None:
        return list(data.modalities)
    names = [SHORT_NAMES.get(m, m) for m in modalities]
    if not names:
        raise UserError("baseline: no modality selected (choose from "
                        f"{', '.join(data.modalities)}, or leave it out for all)")
    for m in names:
        if m not in MODALITIES:
            raise UserError(f"baseline: unknown modality {m!r} (choose from "
                            f"{', '.join(MODALITIES)})")
        if m not in data.modalities:
            raise UserError(f"baseline: modality {m!r} is not in {data.name} (it has "
                            f"{', '.join(data.modalities)})")
    return [m for m in MODALITIES if m in names]


def pooled_inputs(split: Split, modalities: list[str]) -> np.ndarray:
    """(N, sum of dims) float64: each modality averaged over its valid time steps, concatenated.
    A sample with length 0 gets zeros for that modality."""
    parts = []
    for m in modalities:
        x = split.features[m].astype(np.float64)  # (N, T, D)
        lengths = np.minimum(split.lengths[m], x.shape[1])
        mask = np.arange(x.shape[1])[None, :] < lengths[:, None]  # (N, T)
        total = np.einsum("ntd,nt->nd", x, mask.astype(np.float64))
        parts.append(total / np.maximum(lengths, 1)[:, None])
    return np.concatenate(parts, axis=1)


def _targets(data: MSAData, split: str) -> np.ndarray:
    s = data.splits[split]
    return s.regression if data.task == "regression" else s.classification


def _score(data: MSAData, pred: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    """compute_metrics plus "loss", as the trainer reports it: MAE (the L1 main-task loss) for
    regression, cross-entropy for classification (`pred` are then logits / log-probabilities)."""
    if data.task == "regression":
        loss = float(np.mean(np.abs(pred.astype(np.float64) - truth)))
    else:
        loss = float(torch.nn.functional.cross_entropy(
            torch.from_numpy(np.asarray(pred, dtype=np.float64)),
            torch.from_numpy(np.asarray(truth, dtype=np.int64))))
    metrics = compute_metrics(pred, truth, task=data.task, scale=data.scale,
                              label_names=data.label_names)
    metrics["loss"] = loss if math.isfinite(loss) else float("inf")
    return metrics


def _check_model(data: MSAData, model: str) -> None:
    if model not in MODELS:
        raise UserError(f"baseline: unknown model {model!r} (choose from {', '.join(MODELS)})")
    if model == "ridge" and data.task != "regression":
        raise UserError(f"baseline: ridge is for regression, but {data.name} is a "
                        f"{data.num_classes}-class classification task: use softmax (or mlp)")
    if model == "softmax" and data.task != "classification":
        raise UserError(f"baseline: softmax is for classification, but {data.name} is a "
                        "regression task: use ridge or mlp")


# --- closed-form / convex models (deterministic) ------------------------------------------------

class _RidgePath:
    """Ridge with an intercept (sklearn `Ridge`'s objective) for every alpha from one thin SVD
    of the centred inputs, X - mean = U S V^T: coef(alpha) = V diag(s / (s^2 + alpha)) U^T y.
    One decomposition instead of a Gram matrix and a solve per alpha (MOSI's 7 modality
    subsets x 15 alphas: 0.3 s instead of 3.5 s, before every search)."""

    def __init__(self, x: np.ndarray, y: np.ndarray):
        self.x_mean, self.y_mean = x.mean(0), float(y.mean())
        u, self.s, self.vt = np.linalg.svd(x - self.x_mean, full_matrices=False)
        self.uty = u.T @ (y - self.y_mean)

    def coef(self, alpha: float) -> np.ndarray:
        return self.vt.T @ (self.s / (self.s ** 2 + alpha) * self.uty)

    def predict(self, coef: np.ndarray, x: np.ndarray) -> np.ndarray:
        return (x - self.x_mean) @ coef + self.y_mean


def _fit_ridge(data: MSAData, x: dict[str, np.ndarray]) -> tuple[dict, dict, int]:
    y = {s: _targets(data, s).astype(np.float64) for s in x}
    path = _RidgePath(x["train"], y["train"])
    best = None
    for alpha in RIDGE_ALPHAS:
        coef = path.coef(alpha)
        mae = float(np.mean(np.abs(path.predict(coef, x["valid"]) - y["valid"])))
        if best is None or mae < best[0]:
            best = (mae, alpha, coef)
    mae, alpha, coef = best
    metrics = {s: _score(data, path.predict(coef, x[s]).astype(np.float32), _targets(data, s))
               for s in _EVAL_SPLITS}
    at_edge = alpha in (RIDGE_ALPHAS[0], RIDGE_ALPHAS[-1])
    info = {"selection": "alpha with the lowest valid MAE",
            "grid": {"alpha": list(RIDGE_ALPHAS)}, "selected": {"alpha": alpha},
            "selected_at_grid_edge": at_edge}
    return metrics, info, int(coef.size + 1)


def _log_proba(clf: LogisticRegression, x: np.ndarray, num_classes: int) -> np.ndarray:
    """(N, K) log-probabilities over all K classes (a class absent from train gets ~0)."""
    proba = np.full((len(x), num_classes), 1e-12)
    proba[:, clf.classes_] = np.maximum(clf.predict_proba(x), 1e-12)
    return np.log(proba / proba.sum(axis=1, keepdims=True))


def _fit_softmax(data: MSAData, x: dict[str, np.ndarray]) -> tuple[dict, dict, int]:
    from sklearn.exceptions import ConvergenceWarning  # sklearn: a second to import
    from sklearn.linear_model import LogisticRegression

    k = data.num_classes
    y_train = _targets(data, "train")
    if len(np.unique(y_train)) < 2:
        raise UserError(f"baseline: softmax needs at least two classes in train, {data.name} "
                        "has one")
    best, not_converged = None, []
    for c in SOFTMAX_CS:
        clf = LogisticRegression(C=c, max_iter=SOFTMAX_MAX_ITER)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ConvergenceWarning)
            clf.fit(x["train"], y_train)
        if any(issubclass(w.category, ConvergenceWarning) for w in caught):
            not_converged.append(c)
        valid = _score(data, _log_proba(clf, x["valid"], k), _targets(data, "valid"))
        key = (-valid["weighted_f1"], valid["loss"])
        if best is None or key < best[0]:
            best = (key, c, clf)
    _, c, clf = best
    metrics = {s: _score(data, _log_proba(clf, x[s], k), _targets(data, s))
               for s in _EVAL_SPLITS}
    info = {"selection": "C with the highest valid weighted F1 (ties: lower valid cross-entropy)",
            "grid": {"C": list(SOFTMAX_CS)}, "selected": {"C": c},
            "selected_at_grid_edge": c in (SOFTMAX_CS[0], SOFTMAX_CS[-1]),
            "not_converged_C": not_converged}
    return metrics, info, int(clf.coef_.size + clf.intercept_.size)


# --- MLP (seeded) --------------------------------------------------------------------------------

def _mlp(in_dim: int, out_dim: int) -> torch.nn.Module:
    return torch.nn.Sequential(torch.nn.Linear(in_dim, MLP["hidden"]), torch.nn.ReLU(),
                               torch.nn.Dropout(MLP["dropout"]),
                               torch.nn.Linear(MLP["hidden"], out_dim))


def _train_mlp(data: MSAData, x: dict[str, np.ndarray], seed: int,
               device: torch.device) -> TrainResult:
    t0 = time.perf_counter()
    regression = data.task == "regression"
    torch.manual_seed(seed)
    gen = torch.Generator(device="cpu").manual_seed(seed)
    xs = {s: torch.from_numpy(v.astype(np.float32)).to(device) for s, v in x.items()}
    ys = {s: torch.from_numpy(_targets(data, s)).to(device) for s in x}
    model = _mlp(xs["train"].shape[1], 1 if regression else data.num_classes).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=MLP["lr"])

    def loss_fn(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if regression:
            return torch.nn.functional.l1_loss(out[:, 0], y)
        return torch.nn.functional.cross_entropy(out, y)

    def predict(split: str) -> np.ndarray:
        model.eval()
        with torch.no_grad():
            out = model(xs[split])
        return (out[:, 0] if regression else out).cpu().numpy()

    n = len(xs["train"])
    best, best_epoch, best_state, epoch = math.inf, 0, None, 0
    for epoch in range(1, MLP["max_epochs"] + 1):
        model.train()
        order = torch.randperm(n, generator=gen).to(device)
        for i in range(0, n, MLP["batch_size"]):
            idx = order[i:i + MLP["batch_size"]]
            opt.zero_grad(set_to_none=True)
            loss_fn(model(xs["train"][idx]), ys["train"][idx]).backward()
            opt.step()
        valid_loss = _score(data, predict("valid"), _targets(data, "valid"))["loss"]
        if valid_loss < best:
            best, best_epoch, best_state = valid_loss, epoch, copy.deepcopy(model.state_dict())
        elif epoch - best_epoch >= MLP["patience"]:
            break
    if best_state is not None:
        model.load_state_dict(best_state)
    metrics = {s: _score(data, predict(s), _targets(data, s)) for s in _EVAL_SPLITS}
    return TrainResult(metrics=metrics, best_epoch=best_epoch, epochs=epoch,
                       params=sum(p.numel() for p in model.parameters()),
                       seconds=time.perf_counter() - t0)


# --- the plain fine-tuned text encoder ------------------------------------------------------------

def _train_finetune(data: MSAData, seed: int, device: torch.device, encoder: str,
                    log: Callable[[str], None] | None) -> TrainResult:
    """FINETUNE's recipe for one seed: every encoder layer and a linear head on the mean of
    the last layer's token states."""
    from evo_msa.data.text import tokenize
    from evo_msa.models.pretrained import load

    t0 = time.perf_counter()
    if device.type == "cpu":
        torch.set_flush_denormal(True)  # as the trainer does: Adam's tiny moments stay fast
    pre = load(encoder)
    tokens = {s: tokenize(data.splits[s], pre.tokenizer, FINETUNE["max_tokens"],
                          f"{data.name}: {s}") for s in ("train", *_EVAL_SPLITS)}
    regression = data.task == "regression"
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    net = copy.deepcopy(pre.model).to(device).train()
    head = torch.nn.Linear(pre.hidden, 1 if regression else data.num_classes).to(device)
    opt = torch.optim.AdamW([{"params": net.parameters(), "lr": FINETUNE["lr"]},
                             {"params": head.parameters(), "lr": FINETUNE["head_lr"]}],
                            weight_decay=FINETUNE["weight_decay"])
    ys = {s: torch.from_numpy(_targets(data, s)).to(device) for s in tokens}

    def forward(split: str, rows: np.ndarray) -> torch.Tensor:
        t = tokens[split]
        length = int(t.lengths[rows].max())
        ids = torch.as_tensor(t.ids[rows, :length], device=device)
        mask = (torch.arange(length, device=device)[None, :]
                < torch.as_tensor(t.lengths[rows], device=device)[:, None])
        states = net(input_ids=ids, attention_mask=mask.long()).last_hidden_state
        pooled = (states * mask[..., None]).sum(1) / mask.sum(1, keepdim=True)
        out = head(pooled)
        return out[:, 0] if regression else out

    def predict(split: str) -> np.ndarray:
        net.eval()
        order = np.argsort(tokens[split].lengths, kind="stable")
        out = np.zeros((len(order),) if regression else (len(order), data.num_classes),
                       dtype=np.float32)
        with torch.no_grad():
            for i in range(0, len(order), 128):
                rows = order[i:i + 128]
                out[rows] = forward(split, rows).float().cpu().numpy()
        net.train()
        return out

    def batches() -> list[np.ndarray]:
        order = torch.randperm(len(ys["train"]), generator=gen)
        lengths = torch.as_tensor(tokens["train"].lengths)
        return [b.numpy() for b in similar_length_order(order, lengths, FINETUNE["batch_size"],
                                                        gen).split(FINETUNE["batch_size"])]

    best, best_epoch, best_state = math.inf, 0, None
    for epoch in range(1, FINETUNE["epochs"] + 1):
        for rows in batches():
            out = forward("train", rows)
            y = ys["train"][torch.as_tensor(rows, device=device)]
            loss = (torch.nn.functional.l1_loss(out, y) if regression
                    else torch.nn.functional.cross_entropy(out, y))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        valid_loss = _score(data, predict("valid"), _targets(data, "valid"))["loss"]
        if log:
            log(f"    seed {seed} epoch {epoch}: valid loss {valid_loss:.4f} "
                f"({time.perf_counter() - t0:.0f}s)")
        if valid_loss < best:
            best, best_epoch = valid_loss, epoch
            best_state = copy.deepcopy((net.state_dict(), head.state_dict()))
    net.load_state_dict(best_state[0])
    head.load_state_dict(best_state[1])
    metrics = {s: _score(data, predict(s), _targets(data, s)) for s in _EVAL_SPLITS}
    return TrainResult(metrics=metrics, best_epoch=best_epoch, epochs=FINETUNE["epochs"],
                       params=sum(p.numel() for p in (*net.parameters(), *head.parameters())),
                       seconds=time.perf_counter() - t0)


# --- entry point ---------------------------------------------------------------------------------

def run_baseline(data: MSAData, model: str, modalities: list[str] | None, seeds: list[int],
                 device: str = "cpu", *, log: Callable[[str], None] | None = None,
                 text_model: str | None = None) -> tuple[dict, pd.DataFrame]:
    """Fit baseline `model` ("ridge", "softmax", "mlp" or "finetune") on the time-pooled,
    concatenated `modalities` (None: all the data has; finetune: the utterances' text, with
    `text_model` or FINETUNE's encoder) once per seed; return (summary, per-seed table) as
    `train_seeds` does. `device` is used by the MLP and finetune (sklearn runs on the CPU)."""
    _check_model(data, model)
    seeds = list(seeds)
    if not seeds:
        raise UserError("baseline: give at least one seed")
    if model == "finetune":
        mods = ["text"]
        x = {}
        info: dict = {"model": model, "modalities": mods, "encoder": text_model or FINETUNE["model"],
                      "pooling": "mean over the tokens of the last layer, one linear layer"}
    else:
        mods = select_modalities(data, modalities)
        x = {s: pooled_inputs(data.splits[s], mods) for s in ("train", *_EVAL_SPLITS)}
        info = {"model": model, "modalities": mods, "input_dim": int(x["train"].shape[1]),
                "pooling": "mean over valid time steps, modalities concatenated"}

    if model == "finetune":
        dev = resolve_device(device)
        results = []
        for i, seed in enumerate(seeds, 1):
            r = _train_finetune(data, seed, dev, info["encoder"], log)
            results.append(r)
            if log:
                log(f"  finetune seed {seed} ({i}/{len(seeds)}): best epoch {r.best_epoch}, "
                    f"valid loss {r.metrics['valid']['loss']:.4f}, {r.seconds:.1f}s")
        info.update({"selection": "epoch with the lowest valid loss",
                     "hyperparameters": dict(FINETUNE, model=info["encoder"]),
                     "optimizer": "AdamW", "device": str(dev), "deterministic": False})
        extra = {}
    elif model == "mlp":
        dev = resolve_device(device)
        results = []
        for i, seed in enumerate(seeds, 1):
            r = _train_mlp(data, x, seed, dev)
            results.append(r)
            if log:
                log(f"  mlp seed {seed} ({i}/{len(seeds)}): {r.epochs} epochs "
                    f"(best {r.best_epoch}), valid loss {r.metrics['valid']['loss']:.4f}, "
                    f"{r.seconds:.1f}s")
        info.update({"selection": "epoch with the lowest valid loss (early stopping)",
                     "hyperparameters": dict(MLP), "optimizer": "Adam",
                     "device": str(dev), "deterministic": False})
        extra = {}
    else:
        t0 = time.perf_counter()
        metrics, fit_info, params = (_fit_ridge if model == "ridge" else _fit_softmax)(data, x)
        seconds = time.perf_counter() - t0
        info.update(fit_info)
        info["deterministic"] = True
        info["note"] = (f"{model} is deterministic: fitted once, the result is repeated for "
                        "every seed (std 0); epochs and best_epochs are 0 (no epochs)")
        results = [TrainResult(metrics=copy.deepcopy(metrics), best_epoch=0, epochs=0,
                               params=params, seconds=seconds) for _ in seeds]
        extra = fit_info["selected"]
        if log:
            chosen = ", ".join(f"{k}={v:g}" for k, v in extra.items())
            log(f"  {model}: {chosen} chosen on valid, valid loss "
                f"{metrics['valid']['loss']:.4f}, {seconds:.1f}s")

    summary = summarise(results, seeds)
    summary["baseline"] = info
    table = per_seed_table(results, seeds)
    for k, v in extra.items():
        table.insert(1, k, v)
    return summary, table
