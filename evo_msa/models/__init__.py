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
