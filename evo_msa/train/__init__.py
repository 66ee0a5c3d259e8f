from evo_msa.train.multiseed import format_summary, train_seeds
from evo_msa.train.trainer import (MemberStatus, PopulationTrainer, TrainingDiverged, TrainResult,
                                   resolve_device, train_model, train_population)

__all__ = ["PopulationTrainer", "TrainResult", "TrainingDiverged", "MemberStatus", "train_model",
           "train_population", "resolve_device", "train_seeds", "format_summary"]
