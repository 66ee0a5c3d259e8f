"""AdamW for a population whose parameters live in one (P, N) buffer: each member has its own
learning rate, weight decay and gradient clipping, and a member that stopped (early stopping,
divergence) is frozen. The update is torch.optim.AdamW's, as a few whole-population tensor ops
(one kernel each instead of one per parameter tensor)."""
from __future__ import annotations

import torch


class PopulationAdamW:
    def __init__(self, flat: torch.Tensor, lr, weight_decay, grad_clip, betas=(0.9, 0.999),
                 eps: float = 1e-8):
        dev = flat.device
        self.flat = flat
        self.lr = torch.as_tensor(lr, dtype=torch.float32, device=dev).view(-1, 1)
        self.wd = torch.as_tensor(weight_decay, dtype=torch.float32, device=dev).view(-1, 1)
        self.clip = torch.as_tensor(grad_clip, dtype=torch.float32, device=dev).view(-1, 1)
        self.b1, self.b2, self.eps = betas[0], betas[1], eps
        self.m = torch.zeros_like(flat)
        self.v = torch.zeros_like(flat)
        self.steps = torch.zeros(flat.shape[0], 1, device=dev)

    @torch.no_grad()
    def step(self, grad: torch.Tensor, running: torch.Tensor) -> None:
        """One AdamW step for the running members; grad (P, N), running (P,) bool."""
        run = running.view(-1, 1)
        grad = torch.where(run, grad, torch.zeros_like(grad))  # frozen (or NaN) members: no step
        norm = torch.linalg.vector_norm(grad, dim=1, keepdim=True)
        scale = torch.where(self.clip > 0, (self.clip / (norm + 1e-6)).clamp(max=1.0),
                            torch.ones_like(norm))
        grad = grad * scale
        self.steps += run.float()
        self.m.lerp_(grad, torch.where(run, 1 - self.b1, 0.0))
        self.v.mul_(torch.where(run, self.b2, 1.0)).addcmul_(grad, grad,
                                                             value=1 - self.b2)
        t = self.steps.clamp_min(1)
        bc1, bc2 = 1 - self.b1 ** t, 1 - self.b2 ** t
        update = (self.m / bc1) / ((self.v / bc2).sqrt() + self.eps)
        lr = torch.where(run, self.lr, 0.0)
        self.flat.mul_(1 - lr * self.wd).sub_(lr * update)
