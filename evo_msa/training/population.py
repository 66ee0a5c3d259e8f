"""The one model factory for training: a population's HAEMSA with its losses and task weighting.

The order matters and lives only here. The task weighting declares its learned logits in the
model's parameter store before the store is materialised (they are part of the flat buffer the
optimiser steps over, after the network's own parameters); the losses and the weighting's
setup read the built model's device and per-member masks.

For prediction alone (no losses, no learned task weights), `models.build_model` builds the network.
"""
from __future__ import annotations

from typing import NamedTuple

import torch

from evo_msa.config import RunConfig
from evo_msa.data import DataInfo
from evo_msa.losses import PopulationLoss, TaskWeighting
from evo_msa.models import HAEMSA


class Population(NamedTuple):
    """What trains: the network of every member, its loss terms, and how it weights them."""

    model: HAEMSA
    loss: PopulationLoss
    weighting: TaskWeighting


def build_population(configs: list[RunConfig], info: DataInfo, seeds: list[int],
                     device: str | torch.device = "cpu") -> Population:
    """Member p (configs[p]) initialised from seeds[p] on `device`:

        model, loss, weighting = build_population(configs, info, seeds, device)
    """
    losses = [c.loss for c in configs]
    model = HAEMSA(configs, info)
    weighting = TaskWeighting(losses, model.store)  # declared before the store is allocated
    model.build(device, seeds)
    loss = PopulationLoss(losses, model)
    weighting.setup(loss.weights, loss.active)
    return Population(model, loss, weighting)
