"""AdamW for a population: each member has its own learning rate, weight decay and gradient
clipping, and a member that stopped (early stopping, divergence) is frozen.

The update is PyTorch's own fused AdamW kernel (the one torch.optim.AdamW uses with
fused=True), called once per running member on that member's row of the flat weights, gradients
(ParamStore.grad_flat) and moments, with its lr, weight decay and clipping scale:
torch.optim.AdamW's arithmetic, one pass over the member's weights. Padded entries have zero
gradients (models.layers), so they stay 0. Unlike torch.optim.AdamW, a parameter that took no
part in the step (no member of the population uses it) still gets its weight decay: it holds
nothing any member computes with.
"""
from __future__ import annotations

import torch

from evo_msa.models.layers import ParamStore


class PopulationAdamW:
    """AdamW over a population's flat weights. `slices`: parts of every member's row with their
    own learning rates [(start, stop, lr per member)] (fine-tuned encoder layers); the rest
    of the row trains at `lr`. `slice_scale[p]` multiplies member p's slices' rates (its
    encoder schedule: warm-up, decay)."""

    def __init__(self, store: ParamStore, lr, weight_decay, grad_clip, betas=(0.9, 0.999),
                 eps: float = 1e-8, slices: list[tuple[int, int, list[float]]] = ()):
        self.store = store
        self.slices = [(a, b, [float(x) for x in rates]) for a, b, rates in slices]
        self.lr = [float(x) for x in lr]
        self.slice_scale = [1.0] * len(self.lr)
        self.wd = [float(x) for x in weight_decay]
        self.clip = [float(x) for x in grad_clip]
        self.clip_column = torch.tensor([c if c > 0 else 1.0 for c in self.clip],
                                        device=store.flat.device)
        self.b1, self.b2, self.eps = betas[0], betas[1], eps
        # the moments in flat buffers laid out like the weights: a member's state moves
        # between populations as one row (trainer compaction)
        self.m_flat, self.v_flat = torch.zeros_like(store.flat), torch.zeros_like(store.flat)
        dev = store.flat.device
        self.steps = [torch.zeros((), device=dev) for _ in self.lr]

    @torch.no_grad()
    def step(self, running: list[bool]) -> None:
        """One AdamW step for the running members, from the parameters' gradients. Nothing is
        read back from the device (a diverged member is found once per epoch)."""
        flat, grads = self.store.flat, self.store.grad_flat
        # each member's own gradient norm, over all its parameters; the kernel divides the
        # gradients by grad_scale: the clipping factor, inverted
        scales = (torch.linalg.vector_norm(grads, dim=1) / self.clip_column).clamp_min(1.0)
        end = self.slices[-1][1] if self.slices else 0  # the slices lead the row
        for p in [i for i, r in enumerate(running) if r]:  # frozen members: no step
            self.steps[p] += 1
            scale = scales[p] if self.clip[p] > 0 else None
            parts = [(a, b, rates[p] * self.slice_scale[p]) for a, b, rates in self.slices]
            for a, b, lr in parts + [(end, flat.shape[1], self.lr[p])]:
                # one fused kernel call per part; the step count is advanced once above, so
                # every part sees the same bias correction
                torch._fused_adamw_([flat[p, a:b]], [grads[p, a:b]], [self.m_flat[p, a:b]],
                                    [self.v_flat[p, a:b]], [], [self.steps[p]], lr=lr,
                                    beta1=self.b1, beta2=self.b2, weight_decay=self.wd[p],
                                    eps=self.eps, amsgrad=False, maximize=False,
                                    grad_scale=scale)
