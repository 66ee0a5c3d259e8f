"""The multi-task loss terms, per member of a population: every term is a (P,) tensor.

Terms (the columns of `TERMS`) and where they come from:
  main      sentiment regression (L1 / SmoothL1, DMMSA eq. 7; optionally + w (1 - Pearson r)
            over the batch, since MSA is also scored by correlation) or emotion cross-entropy
  coarse    coarse sentiment classes, cross-entropy (DMMSA eq. 9, bins of its tables 7-8),
            optionally label-smoothed
  unimodal  each specific expert predicts its unimodal label, or the multimodal label when the
            data has none (DMMSA eq. 10)
  unified   the unified expert's own class prediction; it is the teacher of the KL term
  kl        KL(p_s || p_m) summed over the specific experts (HAEMSA eqs. 11-13)
  contrast  Multi NT-Xent with text-anchored pairs (DMMSA eqs. 3, 11, 12)
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from evo_msa.config import LossConfig
from evo_msa.models.haemsa import HAEMSA, ModelOutput

TERMS = ("main", "coarse", "unimodal", "unified", "kl", "contrast")
MAIN, COARSE, UNIMODAL, UNIFIED, KL, CONTRAST = range(len(TERMS))
NEG = -1.0e4


@dataclass
class TaskLabels:
    """The labels of one mini-batch, per member (members see different samples)."""

    main: torch.Tensor  # (P, B) float scores or int classes
    coarse: torch.Tensor | None = None  # (P, B) int coarse bins, each member's own (regression)
    unimodal: torch.Tensor | None = None  # (P, M, B) float unimodal scores (CH-SIMS)

    @property
    def expert_classes(self) -> torch.Tensor:
        """What the experts' class heads predict (the KL transfer's distribution): coarse
        sentiment bins for regression data, the emotion for classification data."""
        return self.coarse if self.coarse is not None else self.main


def term_weights(cfg: LossConfig) -> list[float]:
    """The genome's weight of every term: lambda1..lambda4, gamma and the contrast weight."""
    return [cfg.lambda_main, cfg.lambda_coarse, cfg.lambda_unimodal, cfg.lambda_unified,
            cfg.gamma_kl, cfg.lambda_contrast]


class PopulationLoss:
    """Per-member loss settings as tensors, and the loss terms of a forward pass."""

    def __init__(self, configs: list[LossConfig], model: HAEMSA):
        dev = model.device
        self.model = model
        self.weights = torch.tensor([term_weights(c) for c in configs], device=dev)  # (P, 6)
        self.smooth = torch.tensor([c.regression_loss == "smooth_l1" for c in configs], device=dev)
        self.beta = torch.tensor([c.smooth_beta for c in configs], device=dev)
        self.label_smoothing = torch.tensor([c.coarse_smoothing for c in configs], device=dev)
        self.tau = torch.tensor([c.contrast_tau for c in configs], device=dev)
        self.corr_weight = torch.tensor([c.corr_weight for c in configs], device=dev)
        self.corr_on = any(c.corr_weight > 0 for c in configs)
        regression = not model.classification
        applicable = torch.ones_like(self.weights, dtype=torch.bool)
        applicable[:, COARSE] = regression
        applicable[:, UNIFIED] = model.unified
        applicable[:, KL] = model.unified
        applicable[:, CONTRAST] = model.contrast_on
        # a term a member does not weigh is not computed for it (turning a task off saves work)
        self.active = applicable & (self.weights > 0)
        self.active[:, MAIN] = True
        self.used = self.active.any(0).tolist()  # the terms some member computes (host-side)
        self.smoothing = any(c.coarse_smoothing > 0 for c in configs)

    def regression_loss(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """L1 or SmoothL1 (each member's own), mean over the last axis; pred (P, ..., B)."""
        diff = (pred.float() - target).abs()
        shape = (-1,) + (1,) * (diff.dim() - 1)
        beta = self.beta.view(shape)
        smooth = torch.where(diff < beta, 0.5 * diff * diff / beta, diff - 0.5 * beta)
        return torch.where(self.smooth.view(shape), smooth, diff).mean(-1)

    def losses(self, out: ModelOutput, labels: TaskLabels) -> torch.Tensor:
        """(P, 6) loss of every term for every member; 0 where a term is not active."""
        P = self.weights.shape[0]
        model = self.model
        terms = [torch.zeros(P, device=self.weights.device) for _ in TERMS]
        y = labels.main
        if model.classification:
            terms[MAIN] = cross_entropy(out.main, y)
        else:
            terms[MAIN] = self.regression_loss(out.main, y)
            if self.corr_on:
                terms[MAIN] = terms[MAIN] + self.corr_weight * (1 - pearson(out.main.float(), y))
        use = self.used
        mods = model.modality_mask.float()  # (P, M)
        if use[COARSE] and out.coarse is not None:
            terms[COARSE] = cross_entropy(out.coarse, labels.coarse,
                                          self.label_smoothing if self.smoothing else None,
                                          model.coarse_mask)
        if use[UNIMODAL]:
            if model.classification:
                per = torch.stack([cross_entropy(out.unimodal[:, j], y)
                                   for j in range(out.unimodal.shape[1])], 1)
            else:
                target = labels.unimodal if labels.unimodal is not None else y[:, None]
                per = self.regression_loss(out.unimodal, target.expand_as(out.unimodal))
            terms[UNIMODAL] = (per * mods).sum(1) / mods.sum(1).clamp_min(1)
        if use[UNIFIED]:
            terms[UNIFIED] = cross_entropy(out.expert_logits[:, -1], labels.expert_classes)
        if use[KL]:
            terms[KL] = kl_transfer(out.expert_logits, mods)
        if use[CONTRAST] and out.contrast is not None:
            terms[CONTRAST] = multi_nt_xent(out.contrast, mods, self.tau, model.anchor_index)
        return torch.stack(terms, 1) * self.active


def pearson(pred: torch.Tensor, target: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """Pearson correlation over the last axis, per member: (P, B), (P, B) -> (P,)."""
    p = pred - pred.mean(-1, keepdim=True)
    t = target - target.mean(-1, keepdim=True)
    return (p * t).sum(-1) / (p.norm(dim=-1) * t.norm(dim=-1) + eps)


def cross_entropy(logits: torch.Tensor, target: torch.Tensor,
                  smoothing: torch.Tensor | None = None,
                  class_mask: torch.Tensor | None = None) -> torch.Tensor:
    """Per-member mean cross-entropy: logits (P, B, C), target (P, B) -> (P,). With label
    smoothing eps (P,), the target keeps 1 - eps and eps spreads over the member's classes."""
    logp = F.log_softmax(logits.float(), -1)
    nll = -logp.gather(-1, target.unsqueeze(-1)).squeeze(-1)
    if smoothing is None:
        return nll.mean(-1)
    mask = class_mask[:, None, :].float()
    uniform = -(logp * mask).sum(-1) / mask.sum(-1)
    eps = smoothing[:, None]
    return ((1 - eps) * nll + eps * uniform).mean(-1)


def kl_transfer(expert_logits: torch.Tensor, modality_mask: torch.Tensor) -> torch.Tensor:
    """Sum over a member's specific experts of KL(p_s || p_m), batch mean (HAEMSA eqs. 11-13).
    The unified expert p_s (the last expert) is the teacher: no gradient flows into it here."""
    teacher = F.log_softmax(expert_logits[:, -1].detach().float(), -1)  # (P, B, C)
    student = F.log_softmax(expert_logits[:, :-1].float(), -1)  # (P, M, B, C)
    kl = (teacher.exp()[:, None] * (teacher[:, None] - student)).sum(-1).mean(-1)  # (P, M)
    return (kl * modality_mask).sum(1)


def multi_nt_xent(contrast: tuple[torch.Tensor, torch.Tensor], modality_mask: torch.Tensor,
                  tau: torch.Tensor, anchor: torch.Tensor) -> torch.Tensor:
    """DMMSA eq. 3 with the pairs of eqs. 11-12, per sample, averaged over the batch.

    Anchor a = the anchor modality's similar part (text, else the member's first modality).
    Positives P = (a, m_similar) for the member's other modalities; negatives N = (a, m_dissimilar)
    for each of its modalities, the anchor's own included.
    Loss = -log(sum_P e^{s/tau} / sum_{N+P} e^{s/tau}); 0 for a member with one modality.
    """
    similar, dissimilar = (F.normalize(x.float(), dim=-1) for x in contrast)  # (P, M, B, D)
    P, M = modality_mask.shape
    a = similar[torch.arange(P, device=similar.device), anchor]  # (P, B, D)
    t = tau.view(P, 1, 1)
    pos = (similar * a[:, None]).sum(-1) / t  # (P, M, B)
    neg = (dissimilar * a[:, None]).sum(-1) / t
    is_anchor = torch.arange(M, device=similar.device)[None, :] == anchor[:, None]
    pos_ok = (modality_mask.bool() & ~is_anchor)[:, :, None]
    neg_ok = modality_mask.bool()[:, :, None]
    pos = pos.masked_fill(~pos_ok, NEG)
    neg = neg.masked_fill(~neg_ok, NEG)
    loss = torch.logsumexp(torch.cat([pos, neg], 1), 1) - torch.logsumexp(pos, 1)  # (P, B)
    return torch.where(pos_ok.any(1).squeeze(-1), loss.mean(-1), torch.zeros_like(loss[:, 0]))
