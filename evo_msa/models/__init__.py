from evo_msa.models.haemsa import (
    HAEMSA,
    DataInfo,
    ModelOutput,
    active_modalities,
    build_model,
    count_parameters,
    member_parameters,
)

__all__ = ["HAEMSA", "DataInfo", "ModelOutput", "active_modalities", "build_model",
           "count_parameters", "member_parameters"]
