"""Task weighting strategies: how the loss terms are summed into one objective.

fixed      sum_k lambda_k L_k with the genome's weights (HAEMSA eq. 14)
gdwg       DMMSA's Global Dynamic Weight Generation (eqs. 13-14): the main and coarse terms keep
           their fixed weights; the auxiliary terms share their weight budget by
           softmax_k((L_k(t-1) / L_k(1)) / tau), updated once per epoch, so a term whose loss falls
           slower gets more weight. With equal GDWG weights this equals `fixed`.
attention  learned task attention (HAEMSA 3.2): a learnable logit s_k per term; the term is
           weighted by exp(-s_k) and s_k is added as a regulariser (homoscedastic-uncertainty
           form), which keeps the learned weights from collapsing to zero. The reported
           attention is softmax(-s).
"""
from __future__ import annotations


import torch
from torch import nn

from evo_msa.config import ObjectiveConfig
from evo_msa.objectives.losses import term_weights

FIXED_TERMS = ("main", "coarse")  # DMMSA keeps the weights of the core sentiment tasks fixed


class TaskWeighting(nn.Module):
    """Base: fixed weights. Subclasses change `combine` and may learn or adapt."""

    def __init__(self, cfg: ObjectiveConfig):
        super().__init__()
        self.base = term_weights(cfg)

    def combine(self, losses: dict[str, torch.Tensor]) -> torch.Tensor:
        return sum(self.base[k] * v for k, v in losses.items())

    def end_epoch(self, epoch_losses: dict[str, float]) -> None:
        """Called with the mean unweighted loss of every term over the finished epoch."""

    def weights(self) -> dict[str, float]:
        """Current weights, for logs and tests."""
        return dict(self.base)


class GDWG(TaskWeighting):
    def __init__(self, cfg: ObjectiveConfig):
        super().__init__(cfg)
        self.tau = cfg.gdwg_tau
        self.dynamic = [k for k, w in self.base.items() if k not in FIXED_TERMS and w > 0]
        self.first: dict[str, float] = {}  # L_k(1), the first epoch's losses
        self.lam = {k: 1.0 / len(self.dynamic) for k in self.dynamic}  # equal at the start

    def combine(self, losses):
        n = len(self.dynamic)
        total = 0.0
        for k, v in losses.items():
            w = self.base[k] * (n * self.lam[k] if k in self.lam else 1.0)
            total = total + w * v
        return total

    def end_epoch(self, epoch_losses):
        present = [k for k in self.dynamic if k in epoch_losses]
        if not present:
            return
        for k in present:
            self.first.setdefault(k, max(epoch_losses[k], 1e-12))
        rates = torch.tensor([epoch_losses[k] / self.first[k] for k in present]) / self.tau
        lam = torch.softmax(rates, 0).tolist()
        # terms absent this epoch keep no weight; the present ones share the whole budget
        self.lam = dict(zip(present, lam))

    def weights(self):
        return dict(self.lam)


class TaskAttention(TaskWeighting):
    def __init__(self, cfg: ObjectiveConfig):
        super().__init__(cfg)
        self.terms = [k for k, w in self.base.items() if w > 0]
        self.log_var = nn.Parameter(torch.zeros(len(self.terms)))

    def combine(self, losses):
        total = 0.0
        for i, k in enumerate(self.terms):
            if k in losses:
                s = self.log_var[i]
                total = total + self.base[k] * (torch.exp(-s) * losses[k] + s)
        return total

    def weights(self):
        attn = torch.softmax(-self.log_var.detach(), 0).tolist()
        return dict(zip(self.terms, attn))


def make_weighting(cfg: ObjectiveConfig) -> TaskWeighting:
    kinds = {"fixed": TaskWeighting, "gdwg": GDWG, "attention": TaskAttention}
    return kinds[cfg.weighting](cfg)


__all__ = ["TaskWeighting", "GDWG", "TaskAttention", "make_weighting", "FIXED_TERMS"]
