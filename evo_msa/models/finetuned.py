"""The fine-tuned top layers of a pretrained text encoder, for a population.

Every member of a population that fine-tunes the top k layers of an encoder has its own copy of
their weights, declared in the population's parameter store and initialised from the pretrained
ones (init "given"): the optimiser, best-state tracking, weight averaging and moving members
between populations treat them like any other weight. The layers run on each member's own
batch (its hidden states entering layer L - k, from `models.pretrained.text_view`), padded to
the batch's longest utterance, through the encoder's own layer code with the member's weights
(`torch.func.functional_call`). Dropout inside the layers draws from a generator seeded by the
member's seed and the step: a member trains the same in any population.
"""
from __future__ import annotations

import torch
from torch import nn

from evo_msa.models.layers import ParamStore, hash_int
from evo_msa.models.pretrained import Pretrained, run_layer
from evo_msa.models.sequence import Steps

PREFIX = "text_model"


class FineTunedLayers(nn.Module):
    """Layers first..L-1 of `pre`, one copy per member. Declared before anything else in the
    store, layer by layer: each layer is one contiguous slice of a member's row (`slices`),
    which the optimiser steps at its own learning rate."""

    def __init__(self, store: ParamStore, pre: Pretrained, first: int):
        super().__init__()
        self._layers = list(pre.layers[first:])  # a plain list: their own weights are no
        # parameters of the population (functional_call replaces them by the members')
        self.names: list[list[tuple[str, str]]] = []  # per layer: (store name, layer's name)
        self.slices: list[tuple[int, int]] = []
        P = store.P
        for j, layer in enumerate(self._layers):
            start = store.size
            names = []
            for pname, weight in layer.named_parameters():
                name = f"{PREFIX}.layer{first + j}.{pname}"
                store.declare(name, tuple(weight.shape),
                              torch.ones(P, *weight.shape, dtype=torch.bool), "given",
                              value=weight)
                names.append((name, pname))
            self.names.append(names)
            self.slices.append((start, store.size))
        self.seeds: list[int] = []

    def build(self, device: torch.device, seeds: list[int]) -> None:
        """Move the layers' buffers to `device`; remember the members' seeds (dropout)."""
        for layer in self._layers:
            layer.to(device)
        self.seeds = list(seeds)

    def forward(self, params: dict[str, torch.Tensor], x: Steps, step: int) -> Steps:
        """Each member's packed steps through its own layers; the same layout back."""
        lay = x.layout
        P, _, H = x.x.shape
        B, T = lay.perm.shape[1], lay.steps
        index = (lay.batch_rows * T + lay.at)[..., None].expand(-1, -1, H)
        padded = x.x.new_zeros(P, B * T, H).scatter(1, index, x.x).view(P, B, T, H)
        lengths = torch.gather(lay.lengths, 1, lay.inv)  # (P, B), batch order
        valid = torch.arange(T, device=x.x.device)[None, None, :] < lengths[..., None]
        outs = []
        for p in range(P):
            h = padded[p]
            with torch.random.fork_rng(devices=[h.device] if h.device.type == "cuda" else []):
                if self.training:
                    torch.manual_seed(hash_int(self.seeds[p] * 1_000_003 + step))
                for layer, names in zip(self._layers, self.names):
                    layer.train(self.training)
                    h = run_layer(layer, h, valid[p], {own: params[name][p]
                                                       for name, own in names})
            outs.append(h.reshape(B * T, H))
        out = torch.gather(torch.stack(outs), 1, index)
        return Steps(out * lay.valid[..., None].to(out.dtype), lay)
