"""HAEMSA for a population of networks at once (P = 1: one model), and its sequence encoders."""
from evo_msa.models.haemsa import (
    HAEMSA,
    ModelOutput,
    active_modalities,
    build_model,
    count_parameters,
    member_parameters,
)

__all__ = ["HAEMSA", "ModelOutput", "active_modalities", "build_model",
           "count_parameters", "member_parameters"]
