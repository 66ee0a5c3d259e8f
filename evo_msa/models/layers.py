"""Population layers: P networks of different widths trained as one program.

Every tensor carries the population on its first axis. Member p's layer of width w_p lives in
the first-axis slice p of a tensor padded to the widest member, with a boolean mask marking the
units (and weight entries) p really has. Padded entries start at exactly 0 and stay there:
their gradients are structurally 0 (a padded input unit is 0, a padded output unit feeds only
zero weights or is cut off by a mask), so a padded network computes what the unpadded one does.

Parameters are views into one flat buffer of shape (P, N) owned by `ParamStore`, so weight
averaging and best-state tracking are whole-population tensor ops, and each member's rows of
every parameter are contiguous (what the fused optimiser steps over).

Layers that hold tensors (masks) are nn.Modules with them as non-persistent buffers, so `.to()`
moves them and no state dict holds them; weights are the store's, passed in as `params`.

Initialisation is per member, from the member's own generator, over the entries it really has,
in the order the parameters were declared: a member gets the same initial weights whatever
population it trains in, so batched and one-at-a-time training agree.
"""
from __future__ import annotations

import math
import warnings
import zlib
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

# Gradients are views of one flat buffer laid out like the weights (ParamStore.grad_flat), on
# purpose; autograd warns that such views break its "layout contract" (meant for dense weights).
warnings.filterwarnings("ignore", message="grad and param do not obey the gradient layout")


@dataclass
class _Entry:
    name: str
    shape: tuple[int, ...]  # per member, without the population axis
    offset: int
    mask: torch.Tensor  # (P, *shape) bool: the entries each member really has
    init: str  # "uniform" (bound 1/sqrt(fan_in)), "normal" (std 1/sqrt(fan_in)), "ones", "zeros",
    #            "given" (every member starts from `value`: pretrained weights)
    fan_in: torch.Tensor  # (P, *shape) fan-in of every entry, for the init scale
    value: torch.Tensor | None = None  # (*shape) the "given" initial weights


class ParamStore:
    """Declares parameters of a population, then materialises them as views of one buffer."""

    def __init__(self, population: int):
        self.P = population
        self.entries: list[_Entry] = []
        self.size = 0
        self.flat: torch.Tensor | None = None
        self.grad_flat: torch.Tensor | None = None  # (P, N) every parameter's gradient
        self.params: dict[str, nn.Parameter] = {}
        self._full: torch.Tensor | None = None  # full_mask(), once the store is complete

    def declare(self, name: str, shape: tuple[int, ...], mask: torch.Tensor, init: str,
                fan_in: torch.Tensor | None = None, value: torch.Tensor | None = None) -> str:
        """`fan_in` broadcasts against (P, *shape) (e.g. (P, 1, ...) for one value per member);
        `value`: the initial weights of init "given"."""
        if name in {e.name for e in self.entries}:
            raise ValueError(f"parameter {name} declared twice")
        full = (self.P, *shape)
        fan = (fan_in if fan_in is not None else torch.ones(1)).float()
        fan = fan.reshape(*fan.shape, *([1] * (len(full) - fan.dim()))).expand(full)
        self.entries.append(_Entry(name, tuple(shape), self.size, mask.expand(full).clone(), init,
                                   fan, None if value is None else value.detach().float().cpu()))
        self.size += math.prod(shape)
        self._full = None
        return name

    def materialise(self, device: torch.device, seeds: list[int]) -> dict[str, nn.Parameter]:
        """Allocate the flat buffer on `device` and initialise every member from its seed."""
        flat = torch.zeros(self.P, max(self.size, 1))
        for p, seed in enumerate(seeds):
            gen = torch.Generator().manual_seed(int(seed))
            for e in self.entries:
                view = flat[p, e.offset:e.offset + math.prod(e.shape)].view(e.shape)
                m = e.mask[p]
                n = int(m.sum())
                if n == 0:
                    continue
                scale = e.fan_in[p][m].clamp_min(1).rsqrt()
                if e.init == "uniform":
                    view[m] = (torch.rand(n, generator=gen) * 2 - 1) * scale
                elif e.init == "normal":
                    view[m] = torch.randn(n, generator=gen) * scale
                elif e.init == "ones":
                    view[m] = 1.0
                elif e.init == "given":
                    view[m] = e.value.expand(e.shape)[m]
        self.flat = flat.to(device)
        self.params = {name: nn.Parameter(v) for name, v in self.views(self.flat).items()}
        # gradients land in one buffer laid out like the weights (autograd adds into a .grad
        # that exists): a member's gradient is one contiguous row, so the optimiser steps
        # over a row, not over every parameter's slice of it
        self.grad_flat = torch.zeros_like(self.flat)
        self._grads = self.views(self.grad_flat)
        self.zero_grad()
        return self.params

    def views(self, flat: torch.Tensor) -> dict[str, torch.Tensor]:
        """Every parameter's (P, *shape) view of a (P, N) buffer laid out like `flat` (the
        weights, an optimiser's moments)."""
        return {e.name: flat[:, e.offset:e.offset + math.prod(e.shape)].view(self.P, *e.shape)
                for e in self.entries}

    def positions(self, member: int) -> torch.Tensor:
        """Where member `member`'s own entries lie in its row of the flat buffer, in flat order.
        Any two populations that hold a member list its entries in the same order (declaration
        order, row-major inside a parameter; padding only adds entries between them), so a
        member's state moves between populations as values at these positions."""
        if not self.entries:
            return torch.zeros(0, dtype=torch.long)
        if self._full is None:
            self._full = self.full_mask()
        return self._full[member].nonzero().flatten()

    def zero_grad(self) -> None:
        """Zero every gradient in place (one flat buffer), re-attaching any view replaced since."""
        self.grad_flat.zero_()
        for name, p in self.params.items():
            if p.grad is not self._grads[name]:  # (re)attach the view, had anything replaced it
                p.grad = self._grads[name]

    def member_counts(self) -> list[int]:
        """Parameters each member really has (padding excluded)."""
        total = torch.zeros(self.P, dtype=torch.long)
        for e in self.entries:
            total += e.mask.reshape(self.P, -1).sum(1)
        return total.tolist()

    def full_mask(self) -> torch.Tensor:
        """(P, N) bool: which entries of the flat buffer each member really has."""
        if not self.entries:
            return torch.zeros(self.P, 1, dtype=torch.bool)
        return torch.cat([e.mask.reshape(self.P, -1) for e in self.entries], 1)


def subset(t: torch.Tensor, sel: torch.Tensor | None) -> torch.Tensor:
    """The members `sel` of a per-member tensor (all of them when `sel` is None)."""
    return t if sel is None else t[sel]


class Linear:
    """y = x W + b for every member (and every group G of a member, e.g. one per modality).

    Weight (P, *G, d_in, d_out); input (P, *G, B, d_in) -> (P, *G, B, d_out). A member's
    weight entries exist where its input unit and its output unit both exist. `sel` runs a
    subset of the members (their rows of x).
    """

    def __init__(self, store: ParamStore, name: str, in_mask: torch.Tensor,
                 out_mask: torch.Tensor, bias: bool = True,
                 fan_in: torch.Tensor | float | None = None):
        # in_mask (P, *G, d_in), out_mask (P, *G, d_out)
        lead = tuple(in_mask.shape[1:-1])
        d_in, d_out = in_mask.shape[-1], out_mask.shape[-1]
        w_mask = in_mask.unsqueeze(-1) & out_mask.unsqueeze(-2)
        if fan_in is None:
            fan = in_mask.sum(-1).float()  # (P, *G): nn.Linear's bound 1/sqrt(fan_in)
        else:
            fan = torch.as_tensor(fan_in, dtype=torch.float32)
            fan = fan.reshape(*fan.shape, *([1] * (1 + len(lead) - fan.dim())))
            fan = fan.expand(in_mask.shape[0], *lead) if fan.dim() else fan
        self.w = store.declare(f"{name}.weight", (*lead, d_in, d_out), w_mask, "uniform",
                               fan[..., None, None])
        self.b = (store.declare(f"{name}.bias", (*lead, d_out), out_mask, "uniform", fan[..., None])
                  if bias else None)

    def __call__(self, params, x: torch.Tensor, sel: torch.Tensor | None = None) -> torch.Tensor:
        """y = x W + b for every member (those `sel` when given)."""
        w = subset(params[self.w], sel)
        lead = w.shape[:-2]
        flat_w = w.reshape(-1, *w.shape[-2:])
        flat_x = x.reshape(-1, *x.shape[-2:])
        if self.b is None:
            y = torch.bmm(flat_x, flat_w)
        else:
            b = subset(params[self.b], sel)
            y = torch.baddbmm(b.reshape(-1, 1, w.shape[-1]), flat_x, flat_w)
        return y.reshape(*lead, x.shape[-2], w.shape[-1])


class _MaskedLayerNorm(torch.autograd.Function):
    """LayerNorm over a member's own units, forward and backward written out: a third of the
    tensor passes autograd makes of the composed ops. Padded units of x are 0 (they come from
    zero weights); they get output 0 and gradient exactly 0."""

    @staticmethod
    def forward(ctx, x, g, b, mask, count, eps):
        mean = x.sum(-1, keepdim=True) / count
        xc = (x - mean) * mask
        rstd = torch.rsqrt((xc * xc).sum(-1, keepdim=True) / count + eps)
        xhat = xc * rstd
        ctx.save_for_backward(xhat, rstd, g, mask, count)
        return xhat * g + b

    @staticmethod
    def backward(ctx, dy):
        xhat, rstd, g, mask, count = ctx.saved_tensors
        dg = (dy * xhat).sum(-2, keepdim=True)  # over the batch axis: g is (P, *G, 1, W)
        db = dy.sum(-2, keepdim=True)
        dxhat = dy * g
        mean1 = dxhat.sum(-1, keepdim=True) / count
        mean2 = (dxhat * xhat).sum(-1, keepdim=True) / count
        dx = (dxhat - (mean1 + xhat * mean2) * mask) * rstd
        return dx, dg, db, None, None, None


class LayerNorm(nn.Module):
    """LayerNorm over each member's own units: statistics ignore padding; padded units keep a
    weight and bias of 0, so they stay 0."""

    def __init__(self, store: ParamStore, name: str, mask: torch.Tensor, eps: float = 1e-5):
        super().__init__()
        units = mask.float()  # (P, *G, W)
        # buffers, so .to() moves them; not weights, so no state dict holds them
        self.register_buffer("mask", units, persistent=False)
        self.register_buffer("count", units.sum(-1, keepdim=True).clamp_min(1), persistent=False)
        self.g = store.declare(f"{name}.weight", tuple(mask.shape[1:]), mask, "ones")
        self.b = store.declare(f"{name}.bias", tuple(mask.shape[1:]), mask, "zeros")
        self.eps = eps

    def forward(self, params, x: torch.Tensor, sel: torch.Tensor | None = None) -> torch.Tensor:
        """Normalise each member's own units of `x` (those `sel` when given)."""
        mask = subset(self.mask, sel).unsqueeze(-2)  # (P, *G, 1, W)
        count = subset(self.count, sel).unsqueeze(-2)
        g, b = subset(params[self.g], sel).unsqueeze(-2), subset(params[self.b], sel).unsqueeze(-2)
        return _MaskedLayerNorm.apply(x.float(), g, b, mask, count, self.eps)


def _i32(x: int) -> int:
    """A 32-bit constant as a signed int32 (torch integer arithmetic wraps around)."""
    x &= 0xFFFFFFFF
    return x - (1 << 32) if x >= (1 << 31) else x


_K_SITE, _K_GROUP, _K_STEP = _i32(0x9E3779B9), _i32(0x85EBCA6B), _i32(0xC2B2AE35)
_MIX1, _MIX2 = _i32(0x7FEB352D), _i32(0x846CA68B)


class MemberNoise:
    """Dropout noise that belongs to each member: a counter-based hash ("lowbias32") of the
    member's seed, the dropout site, the training step and the element's own coordinates. A
    member so draws the same noise whether it trains alone or in any population (no shared
    random stream whose use depends on the others)."""

    def __init__(self, seeds: list[int], device: torch.device):
        self.keys = [hash_int(int(s)) for s in seeds]  # on the host
        self.key = torch.tensor([_i32(k) for k in self.keys], dtype=torch.int32, device=device)
        self.step = 0

    def bytes(self, site: str, member: int, rows: int, features: int, device) -> torch.Tensor:
        """(rows, features) uniform bytes (uint8) from a generator of the member's own (seed,
        site, step): torch's Philox, 4 bytes per draw (a tenth of the cost of U[0, 1) floats,
        and far below the hash of `uniform`), for large draws where the caller fixes which
        element gets which byte from the member's own data alone."""
        seed = hash_int(self.keys[member] ^ hash_int(zlib.crc32(site.encode()) + self.step))
        gen = torch.Generator(device).manual_seed(seed)
        words = torch.empty(rows, -(-features // 4), dtype=torch.int32, device=device)
        return words.random_(generator=gen).view(torch.uint8)[:, :features]

    def draws(self, site: str, shape: tuple[int, ...], groups: torch.Tensor | None = None,
              sel: torch.Tensor | None = None) -> torch.Tensor:
        """Uniform bytes (uint8) of `shape` = (P, *G, B, *rest); `groups` are canonical ids of
        the G axis (e.g. which modality), rest is (W,) units or (T, D) time steps and features.
        One 32-bit hash gives the bytes of four neighbours on the last axis: a quarter of the
        arithmetic of a hash per element, rates in steps of 1/256 (`keep_threshold`)."""
        key = subset(self.key, sel)
        dev = key.device
        salt = _i32(hash_int(zlib.crc32(site.encode())) + self.step * 0x9E3779B97F4A7C15)
        z = key.view(-1, *([1] * (len(shape) - 1))) + salt
        if groups is not None:
            z = z + (groups.to(dev, torch.int32) * _K_GROUP).view(1, -1, *([1] * (len(shape) - 2)))
        b_axis = 1 + (groups is not None)
        rest = shape[b_axis + 1:]
        words = -(-rest[-1] // 4)  # along the last axis
        # the word's own coordinates: sample, then time step and word, or word of units
        inner = rest[0] * words if len(rest) == 2 else 16384  # units: a fixed stride (padding)
        idx = torch.arange(shape[b_axis], device=dev, dtype=torch.int32) * inner
        idx = idx.view(-1, *([1] * len(rest)))
        if len(rest) == 2:
            idx = idx + (torch.arange(rest[0], device=dev, dtype=torch.int32) * words).view(-1, 1)
        idx = idx + torch.arange(words, device=dev, dtype=torch.int32)
        z = _lowbias32(z + idx.view(*([1] * b_axis), *idx.shape))
        return z.view(torch.uint8)[..., :rest[-1]]


def _lowbias32(z: torch.Tensor) -> torch.Tensor:
    """The "lowbias32" integer hash on int32 (logical shifts written as masked arithmetic ones)."""
    z = z ^ ((z >> 16) & 0xFFFF)
    z = z * _MIX1
    z = z ^ ((z >> 15) & 0x1FFFF)
    z = z * _MIX2
    return z ^ ((z >> 16) & 0xFFFF)


def keep_threshold(rate: torch.Tensor) -> torch.Tensor:
    """A dropout rate as the byte an element's draw must reach to be kept: round(256 rate)
    (at most 255), so the rate is kept in steps of 1/256."""
    return (rate * 256).round().clamp(0, 255).to(torch.uint8)


def hash_int(x: int) -> int:
    """splitmix64 of a Python int: spreads seeds and site ids over 64 bits."""
    x = (x + 0x9E3779B97F4A7C15) & 0xFFFFFFFFFFFFFFFF
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & 0xFFFFFFFFFFFFFFFF
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & 0xFFFFFFFFFFFFFFFF
    return x ^ (x >> 31)


def dropout(x: torch.Tensor, rate: torch.Tensor, noise: MemberNoise | None, site: str,
            groups: torch.Tensor | None = None, sel: torch.Tensor | None = None) -> torch.Tensor:
    """Dropout with one rate per member (`rate` broadcasts against x, e.g. (P, 1, 1)), in
    steps of 1/256 (`keep_threshold`; kept units are scaled by 256 / (256 - round(256 rate)));
    no noise = evaluation, or no member drops anything (decided once, on the host: no
    device sync per call)."""
    if noise is None:
        return x
    cut = keep_threshold(rate)
    keep = noise.draws(site, tuple(x.shape), groups, sel) >= cut
    return x * (keep * (256.0 / (256.0 - cut.float())))


class Block(nn.Module):
    """Linear -> LayerNorm -> GELU -> Dropout: the unit of every expert and fusion level."""

    def __init__(self, store: ParamStore, name: str, in_mask: torch.Tensor, out_mask: torch.Tensor):
        super().__init__()
        self.linear = Linear(store, f"{name}.linear", in_mask, out_mask)
        self.norm = LayerNorm(store, f"{name}.norm", out_mask)

    def forward(self, params, x, rate, noise: MemberNoise | None, site: str,
                groups: torch.Tensor | None = None, sel=None):
        """The block on `x`: linear, normalisation, activation and dropout at `rate` (each member's
        own noise at `site`)."""
        y = F.gelu(self.norm(params, self.linear(params, x, sel), sel))
        return dropout(y, rate, noise, site, groups, sel)


def step_mask(steps: int, lengths: torch.Tensor, dtype=torch.float32) -> torch.Tensor:
    """(..., T, 1) mask, 1 on the valid time steps; lengths (...,)."""
    t = torch.arange(steps, device=lengths.device)
    return (t < lengths.unsqueeze(-1)).to(dtype).unsqueeze(-1)


def masked_mean(x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Mean over the valid time steps: (..., T, D) -> (..., D)."""
    if x.shape[-2] == 1:
        return x[..., 0, :]
    mask = step_mask(x.shape[-2], lengths, x.dtype)  # (..., T, 1)
    # a matrix product: no (..., T, D) temporary
    return (mask.transpose(-1, -2) @ x)[..., 0, :] / mask.sum(-2).clamp_min(1.0)
