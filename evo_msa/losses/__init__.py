"""The multi-task training loss: its terms (HAEMSA eq. 14, DMMSA), the task labels, and how
each member weights its terms."""
from evo_msa.losses.labels import coarse_labels
from evo_msa.losses.terms import TERMS, PopulationLoss, TaskLabels, term_weights
from evo_msa.losses.weighting import TaskWeighting

__all__ = ["coarse_labels", "TERMS", "PopulationLoss", "TaskLabels", "term_weights",
           "TaskWeighting"]
