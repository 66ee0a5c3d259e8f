from evo_msa.train.multiseed import format_summary, train_seeds, write_results
from evo_msa.train.trainer import Trainer, TrainingDiverged, TrainResult, resolve_device, train_model

__all__ = ["Trainer", "TrainResult", "TrainingDiverged", "train_model", "resolve_device",
           "train_seeds", "write_results", "format_summary"]
