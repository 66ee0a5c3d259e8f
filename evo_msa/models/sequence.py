"""Sequences for a population: their valid steps, packed, and the encoders that read them.

A batch of utterances is mostly padding (MOSI's MiniLM tokens: median 13 of 50 steps), and a
recurrent loop runs step after step. So a sequence modality travels through the model as its
valid steps only (`Steps`), packed as torch's PackedSequence packs one batch (`StepLayout`):
time-major, each member's rows sorted longest first; step t holds the first n_t sorted rows of
every member (n_t: the most rows any member still has at t). Packed position s is the same
(sorted row, step) for every member, so shifts and per-row sums are one index op for the whole
population. The trainer packs straight from the split on the device (`Steps.gather`): no
(P, B, T, D) batch is ever made (on a CPU such a tensor, tens of MB, is also page faults).

Encoders (`model.encoder`, or `model.<modality>_encoder`), each followed by a Block:

    mean       the mean over the valid steps
    attention  attention pooling: a learned query scores tanh(x_t W + b) on every valid step,
               the softmax of the scores weights the steps (the query starts at 0: the mean)
    gru        a GRU (PyTorch's gates and initialisation), its state at the last valid step;
               step t updates only the n_t rows still running
    conv       a width-3 convolution over the steps, ReLU, the mean over the valid steps

For T == 1 every kind is the mean (one MLP block). A member computes the same whatever
population it is in: packing only decides which extra rows are computed and thrown away.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from evo_msa.config import ENCODERS
from evo_msa.models.layers import (
    Block,
    Linear,
    MemberNoise,
    ParamStore,
    keep_threshold,
    masked_mean,
    subset,
)


@dataclass
class StepLayout:
    """Where the valid steps of a batch (P, B, T) sit once packed. Packed position s is sorted
    row `row[s]` at step `at[s]`, for every member; member p's sorted row j is its batch row
    perm[p, j]. `counts` and `offsets` (host ints) delimit the steps on the packed axis;
    None: every row at every step (an export, whose shapes may not depend on the data)."""

    counts: list[int] | None  # n_t: rows packed at step t (the longest-running member's)
    offsets: list[int] | None  # where step t starts
    totals: list[int] | None  # each member's valid steps (None in a `select`ed layout)
    row: torch.Tensor  # (S,) sorted row of each packed position
    at: torch.Tensor  # (S,) its step
    perm: torch.Tensor  # (P, B) sorted row -> batch row
    inv: torch.Tensor  # (P, B) batch row -> sorted row
    lengths: torch.Tensor  # (P, B) valid steps of each sorted row
    steps: int  # T of the batch

    @classmethod
    def of(cls, lengths: torch.Tensor, steps: int) -> "StepLayout":
        """The layout of lengths (P, B), clipped to `steps`. Computed where `lengths` is (the
        trainer's are on the host); one device read of B numbers otherwise."""
        P, B = lengths.shape
        dev = lengths.device
        lengths = lengths.clamp(0, steps)
        if torch.compiler.is_compiling():
            # an export traces shapes, so none may depend on the lengths: every row at every
            # step, unsorted (the same results, without the savings)
            rows = torch.arange(B, device=dev)
            ident = rows[None, :].expand(P, -1)
            at = torch.arange(steps, device=dev)[:, None].expand(steps, B).reshape(-1)
            return cls(None, None, None, rows.repeat(steps), at, ident, ident, lengths, steps)
        # a row of length 0 still takes step 0 (the GRU's state after it; never valid)
        ordered, perm = lengths.sort(dim=1, descending=True, stable=True)
        # n_t: the column maxima of the sorted lengths fall, so they give every n_t at once
        host = torch.cat([ordered.max(0).values.clamp_min(1), ordered.sum(1)]).cpu().numpy()
        longest, totals = host[:B], host[B:]
        counts = (longest[None, :] > np.arange(int(longest[0]))[:, None]).sum(1)
        offsets = np.concatenate([[0], np.cumsum(counts)[:-1]])
        row = torch.as_tensor(np.concatenate([np.arange(n) for n in counts]), device=dev)
        at = torch.as_tensor(np.repeat(np.arange(len(counts)), counts), device=dev)
        return cls(counts.tolist(), offsets.tolist(), totals.tolist(), row, at, perm,
                   perm.argsort(1), ordered, steps)

    def to(self, device) -> "StepLayout":
        """The same layout on `device`."""
        return replace(self, row=self.row.to(device), at=self.at.to(device),
                       perm=self.perm.to(device), inv=self.inv.to(device),
                       lengths=self.lengths.to(device))

    def select(self, sel: torch.Tensor) -> "StepLayout":
        """The layout of some members (packed positions stay where they are)."""
        return replace(self, perm=self.perm[sel], inv=self.inv[sel], lengths=self.lengths[sel],
                       totals=None)

    @property
    def valid(self) -> torch.Tensor:
        """(P, S) bool: the member really has this step."""
        return self.lengths[:, self.row] > self.at

    @property
    def batch_rows(self) -> torch.Tensor:
        """(P, S): the batch row of every packed position."""
        return self.perm[:, self.row]

    def row_sums(self, y: torch.Tensor) -> torch.Tensor:
        """(P, S, K) -> (P, B, K): the sum over each row's packed positions, in batch order."""
        P, _, K = y.shape
        sums = y.new_zeros(P, self.perm.shape[1], K).index_add(1, self.row, y)
        return torch.gather(sums, 1, self.inv[..., None].expand(-1, -1, K))

    def last(self, y: torch.Tensor) -> torch.Tensor:
        """(P, S, K) -> (P, B, K): each row at its last valid step (step 0 for length 0)."""
        P, _, K = y.shape
        B = self.perm.shape[1]
        j = torch.arange(B, device=y.device)
        last = self.lengths.clamp_min(1) - 1
        if self.counts is None:
            at = last * B + j
        else:
            at = torch.as_tensor(self.offsets, device=y.device)[last] + j  # sorted order
        return torch.gather(y, 1, torch.gather(at, 1, self.inv)[..., None].expand(-1, -1, K))

    def neighbour(self, shift: int) -> torch.Tensor:
        """(S,) the packed position of the same row `shift` steps on, or S (no such step)."""
        S = self.row.shape[0]
        t = self.at + shift
        inside = (t >= 0) & (t < self.steps)
        if self.counts is None:
            B = self.perm.shape[1]
            return torch.where(inside, torch.arange(S, device=t.device) + shift * B, S)
        counts = torch.as_tensor(self.counts + [0], device=self.row.device)
        offsets = torch.as_tensor(self.offsets + [S], device=self.row.device)
        inside = inside & (t < len(self.counts))
        tt = t.clamp(0, len(self.counts))
        there = inside & (self.row < counts[tt])
        return torch.where(there, offsets[tt] + self.row, S)


@dataclass
class Steps:
    """A batch of sequences as their valid steps: x (P, S, D), zero where a member has no
    such step (layout.valid)."""

    x: torch.Tensor
    layout: StepLayout

    @classmethod
    def pack(cls, x: torch.Tensor, lengths: torch.Tensor) -> "Steps":
        """From a padded batch x (P, B, T, D) and lengths (P, B)."""
        P, B, T, D = x.shape
        layout = StepLayout.of(lengths, T)
        index = layout.batch_rows * T + layout.at
        packed = torch.gather(x.reshape(P, B * T, D), 1, index[..., None].expand(-1, -1, D))
        return cls(packed * layout.valid[..., None].to(x.dtype), layout)

    @classmethod
    def gather(cls, source: torch.Tensor, steps: int, idx: torch.Tensor, layout: StepLayout
               ) -> "Steps":
        """Rows idx (P, B) of a split's steps, packed as `layout` (on the device already):
        the only copy of the batch that is made. `source` (N * steps + 1, D) is the split's
        (N, steps, D) features flattened, with a last row of zeros, where positions a member
        does not have are read from."""
        sample = torch.gather(idx, 1, layout.perm)[:, layout.row]  # (P, S)
        at = torch.where(layout.valid, sample * steps + layout.at, len(source) - 1)
        return cls(source[at], layout)

    def select(self, sel: torch.Tensor) -> "Steps":
        """The steps of the members `sel`."""
        return Steps(self.x[sel], self.layout.select(sel))

    def scaled(self, factor: torch.Tensor) -> "Steps":
        """Every packed step times factor (P, S) or (P, S, D) (dropout)."""
        return Steps(self.x * (factor if factor.dim() == 3 else factor[..., None]), self.layout)

    def dropout(self, noise: MemberNoise, site: str, rates: list[float]) -> "Steps":
        """Dropout on every feature of every valid step, at each member's rate in steps of
        1/256 (a feature is kept when its random byte is at least round(256 rate), and
        scaled by 256 / (256 - round(256 rate))). Member p's bytes fill its own valid steps
        in its own packed order (step, then its rows longest first), from its own generator
        (MemberNoise.bytes): they depend on its batch alone, not on the cut, the packing or
        the other members. Only valid steps are drawn."""
        lay = self.layout
        D = self.x.shape[-1]
        valid = lay.valid  # member by member, in packed order: the order of the draws
        x = self.x[valid]  # (sum of totals, D), a copy: changed in place below
        start = 0
        for p, (rate, n) in enumerate(zip(rates, lay.totals)):
            cut = int(keep_threshold(torch.tensor(float(rate))))
            if cut > 0:
                mine = x[start:start + n]
                mine.masked_fill_(noise.bytes(site, p, n, D, x.device) < cut, 0.0)
                mine.mul_(256.0 / (256 - cut))
            start += n
        return Steps(self.x.index_put((valid,), x), lay)

    def mean(self) -> torch.Tensor:
        """(P, B, D): the mean over each row's valid steps (0 for a row of length 0)."""
        sums = self.layout.row_sums(self.x)
        count = torch.gather(self.layout.lengths, 1, self.layout.inv).clamp_min(1)
        return sums / count[..., None].to(sums.dtype)


def pooled_mean(x, lengths: torch.Tensor) -> torch.Tensor:
    """The mean over the valid steps of Steps or of a padded (P, B, T, D) batch."""
    return x.mean() if isinstance(x, Steps) else masked_mean(x, lengths)


def _gru_steps(gi: torch.Tensor, w: torch.Tensor, b: torch.Tensor, counts: list[int] | None,
               steps: int = 0):
    """The GRU over packed steps: gi (P, S, 3H) the inputs' gate terms, w (P, H, 3H), b
    (P, 1, 3H); step t updates the first counts[t] rows (None: all rows of `steps` steps).
    Returns the states (P, S, H) and, for the backward, each step's hidden gate terms (r, z
    in place of theirs, then W_hn h + b_hn) and candidate."""
    H = w.shape[1]
    chunks = (gi.unflatten(1, (steps, -1)).unbind(1) if counts is None
              else torch.split(gi, counts, 1))
    h = gi.new_zeros(gi.shape[0], chunks[0].shape[1], H)
    states, gates, cands = [], [], []
    for g in chunks:
        if g.shape[1] < h.shape[1]:
            h = h[:, :g.shape[1]]  # rows past their last step are done (longest first)
        gh = torch.baddbmm(b, h, w)
        gh[..., :2 * H] = torch.sigmoid(gh[..., :2 * H] + g[..., :2 * H])  # r, z
        cand = torch.tanh(torch.addcmul(g[..., 2 * H:], gh[..., :H], gh[..., 2 * H:]))
        h = torch.addcmul(cand, gh[..., H:2 * H], h - cand)  # (1 - z) n + z h
        states.append(h)
        gates.append(gh)
        cands.append(cand)
    return torch.cat(states, 1), gates, cands


class _PackedGRU(torch.autograd.Function):
    """`_gru_steps` with its backward written out: no autograd graph of ~10 small ops per
    step, and the weight gradient as one product over every packed step at the end."""

    @staticmethod
    def forward(ctx, gi, w, b, counts):
        with torch.no_grad():
            states, gates, cands = _gru_steps(gi, w, b, counts)
        ctx.counts, ctx.gates, ctx.cands = counts, gates, cands
        ctx.save_for_backward(w, states)
        return states

    @staticmethod
    def backward(ctx, d_states):
        w, states = ctx.saved_tensors
        counts, gates, cands = ctx.counts, ctx.gates, ctx.cands
        P, S, H = states.shape
        offsets = [0]
        for n in counts[:-1]:
            offsets.append(offsets[-1] + n)
        d_gi = states.new_empty(P, S, 3 * H)
        d_gh = states.new_empty(P, S, 3 * H)
        h_prev = states.new_zeros(P, S, H)  # each packed step's previous state (0 at t = 0)
        w_t = w.transpose(1, 2)
        carry = None  # dL/dh of the rows still running, from the step after
        for t in range(len(counts) - 1, -1, -1):
            off, n = offsets[t], counts[t]
            dh = d_states[:, off:off + n]
            if carry is not None:
                dh = dh.clone()
                dh[:, :carry.shape[1]] += carry
            gh, cand = gates[t], cands[t]
            r, z, ghn = gh[..., :H], gh[..., H:2 * H], gh[..., 2 * H:]
            prev = (states[:, offsets[t - 1]:offsets[t - 1] + n] if t
                    else states.new_zeros(P, n, H))
            if t:
                h_prev[:, off:off + n] = prev
            d_an = dh * (1 - z) * (1 - cand * cand)  # through the candidate's tanh
            d_rz = torch.cat([d_an * ghn, dh * (prev - cand)], -1) * gh[..., :2 * H] * (
                1 - gh[..., :2 * H])
            d_gi[:, off:off + n, :2 * H] = d_rz
            d_gi[:, off:off + n, 2 * H:] = d_an
            d_gh[:, off:off + n, :2 * H] = d_rz
            d_gh[:, off:off + n, 2 * H:] = d_an * r
            carry = torch.baddbmm(dh * z, d_gh[:, off:off + n], w_t)
        d_w = torch.bmm(h_prev.transpose(1, 2), d_gh)
        d_b = d_gh.sum(1, keepdim=True)
        return d_gi, d_w, d_b, None


def narrow_project(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None,
                   widths: list[int], groups: int) -> torch.Tensor:
    """x (P, S, D) @ w (P, D, G * H) (+ b (P, G * H)), where member p has only the first
    widths[p] units of each of the G groups of H columns: each member's product at its own
    width, the padded columns' (zero) products skipped. Over thousands of packed steps that
    arithmetic is most of an encoder's cost when widths differ."""
    P, S, D = x.shape
    H = w.shape[-1] // groups
    if all(width == H for width in widths):
        return torch.bmm(x, w) if b is None else torch.baddbmm(b[:, None], x, w)
    outs = []
    for p, width in enumerate(widths):
        wp = w[p].view(D, groups, H)[:, :, :width].reshape(D, groups * width)
        if b is None:
            y = x[p] @ wp
        else:
            y = torch.addmm(b[p].view(groups, H)[:, :width].reshape(-1), x[p], wp)
        outs.append(F.pad(y.view(S, groups, width), (0, H - width)))
    return torch.stack(outs).view(P, S, groups * H)


class SequenceExpert(nn.Module):
    """The specific expert f_m of one modality: Steps (or, for T == 1, (P, B, 1, D)) ->
    (P, B, W), each member with its own encoder kind. Members of one kind run together, the
    kind's weights padded to its widest member (not the population's widest layer); kinds are
    gathered and put back in order."""

    def __init__(self, store: ParamStore, name: str, d_in: int, seq_len: int, kinds: list[str],
                 active: torch.Tensor, width: torch.Tensor, pad: int):
        super().__init__()
        P = len(kinds)
        self.name = name
        kinds = [k if seq_len > 1 else "mean" for k in kinds]
        self.kinds: list[str] = []  # the kinds some member has, each with its members' indices
        self.blocks = nn.ModuleDict()
        self.widths: dict[str, list[int]] = {}  # each kind's members' widths
        self.pad = pad
        out = torch.stack([torch.arange(pad) < int(w) for w in width]) & active[:, None]
        for kind in ENCODERS:
            mine = torch.tensor([k == kind for k in kinds]) & active
            if not mine.any():
                continue
            self.kinds.append(kind)
            self.register_buffer(f"{kind}_members", torch.nonzero(mine).flatten(),
                                 persistent=False)
            self.widths[kind] = [int(w) for w in width[mine]]  # on the host
            own = out & mine[:, None]
            H = int(width[mine].max())  # this kind's own padding
            hidden = own[:, :H]
            ins = mine[:, None].expand(P, d_in)
            if kind == "gru":
                self.gru_width = H
                gate = torch.cat([hidden, hidden, hidden], 1)  # r, z, n gates
                fan = width.float()  # PyTorch's GRU init: U(+-1/sqrt(hidden))
                self.w_ih = Linear(store, f"{name}.gru.ih", ins, gate, fan_in=fan)
                self.w_hh = Linear(store, f"{name}.gru.hh", hidden, gate, fan_in=fan)
                block_in = hidden
            elif kind == "conv":
                self.conv_width = H
                taps = ins[:, None, :].expand(P, 3, d_in)  # x_{t-1}, x_t, x_{t+1}
                self.conv = Linear(store, f"{name}.conv", taps, hidden[:, None, :].expand(P, 3, H),
                                   bias=False, fan_in=3.0 * d_in)
                self.conv_bias = store.declare(f"{name}.conv.bias", (H,), hidden, "uniform",
                                               torch.full((P,), 3.0 * d_in))
                block_in = hidden
            elif kind == "attention":
                self.attn_key = Linear(store, f"{name}.attention.key", ins, hidden)
                self.attn_query = store.declare(f"{name}.attention.query", (H,), hidden, "zeros")
                block_in = ins
            else:
                block_in = ins
            self.blocks[kind] = Block(store, f"{name}.{kind}.out", block_in, own)

    def forward(self, params, x, lengths, rate, noise, mean: torch.Tensor | None = None):
        """x: Steps (T > 1) or (P, B, 1, D); `mean`: the mean over the valid steps when the
        caller has it already."""
        P = lengths.shape[0]
        if not isinstance(x, Steps) and self.kinds != ["mean"]:
            x = Steps.pack(x, lengths)
        outs = []
        for kind in self.kinds:
            idx = getattr(self, f"{kind}_members")
            whole = len(idx) == P
            sel = None if whole else idx
            ri = rate if whole else rate[idx]
            if kind == "mean":
                pooled = mean if mean is not None else pooled_mean(x, lengths)
                pooled = pooled if whole else pooled[idx]
            else:
                pooled = getattr(self, f"_{kind}")(params, x if whole else x.select(idx), sel,
                                                   self.widths[kind])
            outs.append((idx, self.blocks[kind](params, pooled, ri, noise, self.name, sel=sel)))
        if len(outs) == 1 and len(outs[0][0]) == P:
            return outs[0][1]
        result = outs[0][1].new_zeros(P, lengths.shape[1], self.pad)
        for idx, y in outs:
            result = result.index_copy(0, idx, y)
        return result

    def _gru(self, params, x: Steps, sel, widths: list[int]):
        # every step's input at once: (Pk, S, 3H)
        gi = narrow_project(x.x, subset(params[self.w_ih.w], sel), subset(params[self.w_ih.b], sel),
                            widths, 3)
        w, b = subset(params[self.w_hh.w], sel), subset(params[self.w_hh.b], sel)[:, None]
        if torch.compiler.is_compiling():  # an export: no backward, plain ops trace best
            states = _gru_steps(gi, w, b, x.layout.counts, x.layout.steps)[0]
        else:  # the recurrence in float32 (under bf16 autocast too): 50 rounded steps drift
            with torch.autocast(gi.device.type, enabled=False):
                states = _PackedGRU.apply(gi.float(), w, b, x.layout.counts)
        return x.layout.last(states)

    def _conv(self, params, x: Steps, sel, widths: list[int]):
        H = self.conv_width
        Pk, S, D = x.x.shape
        w = subset(params[self.conv.w], sel)  # (Pk, 3, D, H)
        taps = narrow_project(x.x, w.permute(0, 2, 1, 3).reshape(Pk, D, 3 * H), None, widths,
                              3)  # (Pk, S, 3H)
        taps = torch.cat([taps, taps.new_zeros(Pk, 1, 3 * H)], 1)  # position S: no step
        lay = x.layout
        y = (taps[:, :S, H:2 * H] + taps[:, lay.neighbour(-1), :H]  # x_{t-1} W_0
             + taps[:, lay.neighbour(1), 2 * H:])  # x_{t+1} W_2
        y = torch.relu(y + subset(params[self.conv_bias], sel)[:, None, :])
        return Steps(y * lay.valid[..., None].to(y.dtype), lay).mean()

    def _attention(self, params, x: Steps, sel, widths: list[int]):
        keys = torch.tanh(narrow_project(x.x, subset(params[self.attn_key.w], sel),
                                         subset(params[self.attn_key.b], sel), widths, 1))
        q = subset(params[self.attn_query], sel)
        scores = (keys * q[:, None, :]).sum(-1).float()  # (Pk, S)
        lay = x.layout
        valid = lay.valid
        scores = scores.masked_fill(~valid, float("-inf"))
        # a softmax per row: subtract each row's largest score (rows of length 0: none)
        top = scores.new_full((scores.shape[0], lay.perm.shape[1]), float("-inf"))
        top = top.scatter_reduce(1, lay.row.expand_as(scores), scores, "amax")
        e = torch.exp(scores - top[:, lay.row].clamp_min(-1e30)).masked_fill(~valid, 0.0)
        weighted = Steps(x.x * e[..., None].to(x.x.dtype), lay)
        total = lay.row_sums(e[..., None])  # (Pk, B, 1)
        return weighted.layout.row_sums(weighted.x) / total.clamp_min(1e-30).to(x.x.dtype)
