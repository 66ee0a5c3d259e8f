"""The multi-task loss terms, one function each, combined by `task_losses`.

Terms (keys of the returned dict) and where they come from:
  main      sentiment regression (L1 / SmoothL1, DMMSA eq. 7) or emotion cross-entropy
  coarse    coarse sentiment classes, cross-entropy (DMMSA eq. 9, bins of its tables 7-8)
  unimodal  each specific expert predicts its unimodal label, or the multimodal label when the
            data has none (DMMSA eq. 10)
  unified   the unified expert's own class prediction; it is the teacher of the KL term
  kl        KL(p_shared || p_m) summed over the specific experts (HAEMSA eqs. 11-13)
  contrast  Multi NT-Xent with text-anchored pairs (DMMSA eqs. 3, 11, 12)
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from evo_msa.config import ObjectiveConfig
from evo_msa.models.haemsa import ModelOutput


def regression_loss(pred: torch.Tensor, target: torch.Tensor, kind: str = "l1",
                    beta: float = 1.0) -> torch.Tensor:
    if kind == "smooth_l1":
        return F.smooth_l1_loss(pred, target, beta=beta)
    return F.l1_loss(pred, target)


def kl_transfer(expert_logits: dict[str, torch.Tensor]) -> torch.Tensor:
    """Sum over specific experts of KL(p_s || p_m), batch mean; the unified expert p_s is the
    teacher, so no gradient flows into it through this term."""
    teacher = F.log_softmax(expert_logits["shared"].detach().float(), dim=-1)
    terms = [F.kl_div(F.log_softmax(logits.float(), dim=-1), teacher, log_target=True,
                      reduction="batchmean")
             for name, logits in expert_logits.items() if name != "shared"]
    return torch.stack(terms).sum()


def multi_nt_xent(contrast: dict[str, tuple[torch.Tensor, torch.Tensor]], tau: float = 0.5,
                  anchor: str = "text") -> torch.Tensor:
    """DMMSA eq. 3 with the pairs of eqs. 11-12, per sample, averaged over the batch.

    Anchor a = the anchor modality's similar part (text, else the first modality).
    Positives P = (a, m_similar) for the other modalities; negatives N = (a, m_dissimilar)
    for every modality, the anchor's own included. Loss = -log(sum_P e^{s/tau} / sum_{N+P} e^{s/tau}).
    """
    mods = list(contrast)
    if len(mods) < 2:
        raise ValueError("Multi NT-Xent needs at least two modalities")
    anchor = anchor if anchor in contrast else mods[0]
    a = F.normalize(contrast[anchor][0].float(), dim=-1)

    def sim(x: torch.Tensor) -> torch.Tensor:
        return (a * F.normalize(x.float(), dim=-1)).sum(-1) / tau

    pos = torch.stack([sim(contrast[m][0]) for m in mods if m != anchor], dim=1)
    neg = torch.stack([sim(contrast[m][1]) for m in mods], dim=1)
    return (torch.logsumexp(torch.cat([pos, neg], 1), 1) - torch.logsumexp(pos, 1)).mean()


def task_losses(out: ModelOutput, labels: dict[str, torch.Tensor],
                cfg: ObjectiveConfig) -> dict[str, torch.Tensor]:
    """Every loss term the model's outputs and the labels allow.

    labels: "main" (float scores or int classes), "coarse" (int, regression only),
    "kt" (int classes the expert heads predict: coarse bins or emotions), and
    "uni_<modality>" (float, regression only) when the data has unimodal labels.
    Terms whose weight is 0 are skipped, so turning a task off also saves its compute.
    """
    weights = term_weights(cfg)
    losses: dict[str, torch.Tensor] = {}
    regression = out.main.dim() == 1
    y = labels["main"]
    if regression:
        losses["main"] = regression_loss(out.main.float(), y, cfg.regression_loss, cfg.smooth_beta)
        if out.coarse is not None and weights["coarse"] > 0:
            losses["coarse"] = F.cross_entropy(out.coarse.float(), labels["coarse"])
    else:
        losses["main"] = F.cross_entropy(out.main.float(), y)
    if weights["unimodal"] > 0:
        terms = []
        for m, pred in out.unimodal.items():
            if regression:
                target = labels.get(f"uni_{m}", y)
                terms.append(regression_loss(pred.float(), target, cfg.regression_loss,
                                             cfg.smooth_beta))
            else:
                terms.append(F.cross_entropy(pred.float(), y))
        losses["unimodal"] = torch.stack(terms).mean()
    if weights["unified"] > 0:
        losses["unified"] = F.cross_entropy(out.expert_logits["shared"].float(), labels["kt"])
    if weights["kl"] > 0:
        losses["kl"] = kl_transfer(out.expert_logits)
    if weights["contrast"] > 0 and len(out.contrast) >= 2:
        losses["contrast"] = multi_nt_xent(out.contrast, cfg.contrast_tau)
    return losses


def term_weights(cfg: ObjectiveConfig) -> dict[str, float]:
    """The genome's weight of every term: lambda1..lambda4, gamma and the contrast weight."""
    return {"main": cfg.lambda_main, "coarse": cfg.lambda_coarse, "unimodal": cfg.lambda_unimodal,
            "unified": cfg.lambda_unified, "kl": cfg.gamma_kl, "contrast": cfg.lambda_contrast}
