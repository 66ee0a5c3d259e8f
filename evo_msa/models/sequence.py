"""The sequence encoders of the specific experts, for a population: (P, B, T, D) -> (P, B, W).

Kinds (`model.encoder`, or `model.<modality>_encoder`), each followed by a Block:

    mean       the mean over the valid steps
    attention  attention pooling: a learned query scores tanh(x_t W + b) on every valid step,
               the softmax of the scores weights the steps (the query starts at 0: the mean)
    gru        a GRU (PyTorch's gates and initialisation), its state at the last valid step
    conv       a width-3 convolution, ReLU, the mean over the valid steps

For T == 1 every kind is the mean (one MLP block).

Where the work goes: a batch of utterances is mostly padding (MOSI's MiniLM tokens: median 13
of 50 steps), and a recurrent loop runs step after step. So the valid steps are packed first
(`StepLayout`): time-major, each member's rows sorted longest first, as torch's
PackedSequence; step t holds the first n_t rows of every member (n_t: the most rows any member
still has at t). Input projections (GRU, convolution, attention keys) run once over the packed
steps only, and the GRU's step t updates only those n_t rows, so its loop ends at the batch's
longest sequence. A member computes the same whatever population it is in: the rows it needs
are the same, packing only decides which extra rows are computed and thrown away.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from evo_msa.config import ENCODERS
from evo_msa.models.layers import Block, Linear, ParamStore, _pick, masked_mean


@dataclass
class StepLayout:
    """The valid steps of x (P, B, T, D), packed: position s of the packed axis is row
    rows[s] (in each member's longest-first order) at step steps[s]; `index` (P, S) says which
    of x's B * T positions that is, `valid` (P, S) whether the member really has it, `final`
    (P, B) where each row's last valid step sits (length 0 counts as 1)."""

    counts: list[int]  # n_t: rows computed at step t
    offsets: list[int]  # where step t starts on the packed axis
    index: torch.Tensor  # (P, S) into x.reshape(P, B * T, D)
    valid: torch.Tensor  # (P, S) bool
    final: torch.Tensor  # (P, B) packed position of each row's last valid step
    dense: bool  # every row at every step (index = the time-major order of x)

    @classmethod
    def of(cls, lengths: torch.Tensor, steps: int) -> "StepLayout":
        P, B = lengths.shape
        dev = lengths.device
        last = lengths.clamp(1, steps)
        if torch.compiler.is_compiling():
            # ONNX export traces shapes, so no shape may depend on the lengths: every row at
            # every step (the same result, without the savings)
            rows = torch.arange(B, device=dev)
            t = torch.arange(steps, device=dev)
            index = (rows[None, :] * steps + t[:, None]).reshape(1, -1).expand(P, -1)
            valid = (t[:, None] < last[:, None, :]).reshape(P, -1)
            final = (last - 1) * B + rows
            return cls([B] * steps, [t_ * B for t_ in range(steps)], index, valid, final, True)
        ordered, perm = last.sort(dim=1, descending=True, stable=True)
        # n_t = rows of the member with the most rows still running at t; the column maxima
        # of the sorted lengths fall, so one host read gives every n_t
        longest = ordered.max(0).values.cpu().numpy()
        counts = (longest[None, :] > np.arange(int(longest[0]))[:, None]).sum(1)
        offsets = np.concatenate([[0], np.cumsum(counts)[:-1]])
        rows = torch.as_tensor(np.concatenate([np.arange(n) for n in counts]), device=dev)
        at = torch.as_tensor(np.repeat(np.arange(len(counts)), counts), device=dev)
        index = perm[:, rows] * steps + at
        valid = ordered[:, rows] > at
        offset = torch.as_tensor(offsets, device=dev)
        final_sorted = offset[ordered - 1] + torch.arange(B, device=dev)
        final = torch.empty_like(final_sorted).scatter_(1, perm, final_sorted)
        return cls(counts.tolist(), offsets.tolist(), index, valid, final, False)

    def pack(self, x: torch.Tensor) -> torch.Tensor:
        """(P, B, T, D) -> (P, S, D): the packed steps (padding in them zeroed)."""
        P, B, T, D = x.shape
        if self.dense:
            packed = x.transpose(1, 2).reshape(P, T * B, D)
        else:
            packed = torch.gather(x.reshape(P, B * T, D), 1,
                                  self.index[..., None].expand(-1, -1, D))
        return packed * self.valid[..., None].to(x.dtype)

    def unpack(self, y: torch.Tensor, B: int, T: int) -> torch.Tensor:
        """(P, S, K) -> (P, B, T, K), zeros where nothing was packed (padding included)."""
        P, _, K = y.shape
        y = y * self.valid[..., None].to(y.dtype)
        if self.dense:
            return y.reshape(P, T, B, K).transpose(1, 2)
        out = y.new_zeros(P, B * T, K)
        return out.scatter(1, self.index[..., None].expand(-1, -1, K), y).reshape(P, B, T, K)

    def select(self, sel: torch.Tensor) -> "StepLayout":
        return StepLayout(self.counts, self.offsets, self.index[sel], self.valid[sel],
                          self.final[sel], self.dense)


class SequenceExpert(nn.Module):
    """The specific expert f_m of one modality: (P, B, T, D) -> (P, B, W), each member with its
    own encoder kind. Members of one kind run together; kinds are gathered and put back in
    order."""

    def __init__(self, store: ParamStore, name: str, d_in: int, seq_len: int, kinds: list[str],
                 active: torch.Tensor, width: torch.Tensor, pad: int):
        super().__init__()
        P = len(kinds)
        self.name = name
        kinds = [k if seq_len > 1 else "mean" for k in kinds]
        self.kinds: list[str] = []  # the kinds some member has, each with its members' indices
        self.blocks = nn.ModuleDict()
        self.pad = pad
        out = torch.stack([torch.arange(pad) < int(w) for w in width]) & active[:, None]
        for kind in ENCODERS:
            mine = torch.tensor([k == kind for k in kinds]) & active
            if not mine.any():
                continue
            self.kinds.append(kind)
            self.register_buffer(f"{kind}_members", torch.nonzero(mine).flatten(),
                                 persistent=False)
            own = out & mine[:, None]
            ins = mine[:, None].expand(P, d_in)
            if kind == "gru":
                gate = torch.cat([own, own, own], 1)  # r, z, n gates
                fan = width.float()  # PyTorch's GRU init: U(+-1/sqrt(hidden))
                self.w_ih = Linear(store, f"{name}.gru.ih", ins, gate, fan_in=fan)
                self.w_hh = Linear(store, f"{name}.gru.hh", own, gate, fan_in=fan)
                block_in = own
            elif kind == "conv":
                taps = ins[:, None, :].expand(P, 3, d_in)  # x_{t-1}, x_t, x_{t+1}
                self.conv = Linear(store, f"{name}.conv", taps, own[:, None, :].expand(P, 3, pad),
                                   bias=False, fan_in=3.0 * d_in)
                self.conv_bias = store.declare(f"{name}.conv.bias", (pad,), own, "uniform",
                                               torch.full((P,), 3.0 * d_in))
                block_in = own
            elif kind == "attention":
                self.attn_key = Linear(store, f"{name}.attention.key", ins, own)
                self.attn_query = store.declare(f"{name}.attention.query", (pad,), own, "zeros")
                block_in = ins
            else:
                block_in = ins
            self.blocks[kind] = Block(store, f"{name}.{kind}.out", block_in, own)

    def forward(self, params, x, lengths, rate, noise):
        P = x.shape[0]
        layout = None  # the kinds were made "mean" where the data has T == 1
        if any(k != "mean" for k in self.kinds):
            layout = StepLayout.of(lengths, x.shape[2])
        outs = []
        for kind in self.kinds:
            idx = getattr(self, f"{kind}_members")
            whole = len(idx) == P
            xi, li, ri = (x, lengths, rate) if whole else (x[idx], lengths[idx], rate[idx])
            sel = None if whole else idx
            lay = layout if whole or layout is None else layout.select(idx)
            if kind == "mean":
                pooled = masked_mean(xi, li)
            else:
                pooled = getattr(self, f"_{kind}")(params, xi, li, lay, sel)
            outs.append((idx, self.blocks[kind](params, pooled, ri, noise, self.name, sel=sel)))
        if len(outs) == 1 and len(outs[0][0]) == P:
            return outs[0][1]
        result = x.new_zeros(P, x.shape[1], self.pad)
        for idx, y in outs:
            result = result.index_copy(0, idx, y)
        return result

    def _gru(self, params, x, lengths, layout: StepLayout, sel):
        Pk, B = x.shape[:2]
        H = self.pad
        gi = self.w_ih(params, layout.pack(x), sel)  # (Pk, S, 3H): every step's input at once
        w, b = _pick(params[self.w_hh.w], sel), _pick(params[self.w_hh.b], sel)[:, None]
        h = x.new_zeros(Pk, B, H)
        states = []
        for off, n in zip(layout.offsets, layout.counts):
            if n < h.shape[1]:
                h = h[:, :n]  # rows past their last step are done (longest first)
            gh = torch.baddbmm(b, h, w)
            g = gi[:, off:off + n]
            rz = torch.sigmoid(g[..., :2 * H] + gh[..., :2 * H])
            cand = torch.tanh(g[..., 2 * H:] + rz[..., :H] * gh[..., 2 * H:])
            h = cand + rz[..., H:] * (h - cand)  # (1 - z) n + z h
            states.append(h)
        packed = torch.cat(states, 1)  # (Pk, S, H), the order of the layout
        return torch.gather(packed, 1, layout.final[..., None].expand(-1, -1, H))

    def _conv(self, params, x, lengths, layout: StepLayout, sel):
        Pk, B, T, D = x.shape
        H = self.pad
        w = _pick(params[self.conv.w], sel)  # (Pk, 3, D, H)
        taps = torch.bmm(layout.pack(x), w.permute(0, 2, 1, 3).reshape(Pk, D, 3 * H))
        taps = layout.unpack(taps, B, T)  # (Pk, B, T, 3H), zero off the valid steps
        y = taps[..., H:2 * H]
        y = y + F.pad(taps[..., :H], (0, 0, 1, 0))[:, :, :T]  # x_{t-1} W_0
        y = y + F.pad(taps[..., 2 * H:], (0, 0, 0, 1))[:, :, 1:]  # x_{t+1} W_2
        bias = _pick(params[self.conv_bias], sel)
        return masked_mean(torch.relu(y + bias[:, None, None, :]), lengths)

    def _attention(self, params, x, lengths, layout: StepLayout, sel):
        Pk, B, T, _ = x.shape
        keys = torch.tanh(self.attn_key(params, layout.pack(x), sel))  # (Pk, S, H)
        q = _pick(params[self.attn_query], sel)
        scores = layout.unpack((keys * q[:, None, :]).sum(-1, keepdim=True), B, T)[..., 0]
        mask = torch.arange(T, device=x.device) < lengths.clamp(1, T)[..., None]  # (Pk, B, T)
        weights = torch.softmax(scores.float().masked_fill(~mask, float("-inf")), -1)
        weights = weights.to(x.dtype)
        # padding holds anything (never read): zero it where a weight is 0
        return torch.einsum("pbt,pbtd->pbd", weights, torch.where(mask[..., None], x, 0.0))
