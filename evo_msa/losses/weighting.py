"""Task weighting: how each member sums its loss terms into one training loss.

fixed      sum_k lambda_k L_k with the genome's weights (HAEMSA eq. 14)
gdwg       DMMSA's Global Dynamic Weight Generation (eqs. 13-14): the main and coarse terms keep
           their fixed weights; the auxiliary terms share their weight budget by
           softmax_k((L_k(t-1) / L_k(1)) / tau), updated once per epoch, so a term whose loss falls
           slower gets more weight. With equal GDWG weights this equals `fixed`.
attention  learned task attention (HAEMSA 3.2): a learnable logit s_k per term; the term is
           weighted by exp(-s_k) and s_k is added as a regulariser (homoscedastic-uncertainty
           form), which keeps the learned weights from collapsing to zero. The reported
           attention is softmax(-s).

Each member has its own kind; all three run as tensor ops over the population.
"""
from __future__ import annotations

import torch

from evo_msa.config import LossConfig
from evo_msa.losses.terms import COARSE, MAIN, TERMS
from evo_msa.models.layers import ParamStore

FIXED_TERMS = (MAIN, COARSE)  # DMMSA keeps the weights of the core sentiment tasks fixed
LOG_VAR = "weighting.log_var"


class TaskWeighting:
    """How each member of a population sums its loss terms: fixed weights (the genome's lambdas),
    GDWG or attention."""

    def __init__(self, configs: list[LossConfig], store: ParamStore):
        P, K = len(configs), len(TERMS)
        self.kinds = [c.weighting for c in configs]
        self.tau = torch.tensor([c.gdwg_tau for c in configs])
        attention = torch.tensor([k == "attention" for k in self.kinds])
        self._attention = attention
        self.uses_attention = "attention" in self.kinds  # host-side: no device sync per step
        store.declare(LOG_VAR, (K,), attention[:, None].expand(P, K), "zeros")
        self.store = store
        self.first: torch.Tensor | None = None  # L_k(1): the first epoch's losses (GDWG)
        self.lam: torch.Tensor | None = None  # (P, K) GDWG shares of the auxiliary budget

    def setup(self, weights: torch.Tensor, active: torch.Tensor) -> None:
        """Called once the parameters exist: the base weights and the active terms (P, K)."""
        dev = weights.device
        self.base, self.active = weights, active
        self.attention = self._attention.to(dev)
        gdwg = torch.tensor([k == "gdwg" for k in self.kinds], device=dev)
        self.tau = self.tau.to(dev)
        dynamic = active.clone()
        dynamic[:, list(FIXED_TERMS)] = False
        self.dynamic = dynamic & gdwg[:, None]
        n = self.dynamic.sum(1, keepdim=True).clamp_min(1)
        self.lam = self.dynamic.float() / n  # equal at the start

    def combine(self, losses: torch.Tensor) -> torch.Tensor:
        """(P, K) term losses -> (P,) training loss of each member."""
        n = self.dynamic.sum(1, keepdim=True).float()
        mult = torch.where(self.dynamic, n * self.lam, torch.ones_like(self.lam))
        fixed = (self.base * mult * losses).sum(1)
        if not self.uses_attention:
            return fixed
        s = self.store.params[LOG_VAR]
        att = (self.active * self.base * (torch.exp(-s) * losses + s)).sum(1)
        return torch.where(self.attention, att, fixed)

    def end_epoch(self, epoch_losses: torch.Tensor) -> None:
        """GDWG's once-per-epoch update from the mean unweighted loss of every term (P, K)."""
        if not bool(self.dynamic.any()):
            return
        if self.first is None:
            self.first = epoch_losses.clamp_min(1e-12)
        rates = (epoch_losses / self.first) / self.tau[:, None]
        rates = rates.masked_fill(~self.dynamic, float("-inf"))
        lam = torch.softmax(rates, 1)
        self.lam = torch.where(self.dynamic, torch.nan_to_num(lam), torch.zeros_like(lam))

    def weights(self, member: int) -> dict[str, float]:
        """A member's current weights, for logs and tests."""
        kind = self.kinds[member]
        active = self.active[member].tolist()
        if kind == "attention":
            s = self.store.params[LOG_VAR][member].detach()
            names = [t for t, a in zip(TERMS, active) if a]
            attn = torch.softmax(-s[self.active[member]], 0).tolist()
            return dict(zip(names, attn))
        if kind == "gdwg":
            return {t: float(v) for t, v, d in zip(TERMS, self.lam[member].tolist(),
                                                 self.dynamic[member].tolist()) if d}
        return {t: float(w) for t, w, a in zip(TERMS, self.base[member].tolist(), active) if a}
