from evo_msa.objectives.labels import coarse_labels
from evo_msa.objectives.losses import TERMS, PopulationObjective, TaskLabels, term_weights
from evo_msa.objectives.weighting import TaskWeighting

__all__ = ["coarse_labels", "TERMS", "PopulationObjective", "TaskLabels", "term_weights",
           "TaskWeighting"]
