from evo_msa.objectives.labels import coarse_labels
from evo_msa.objectives.losses import kl_transfer, multi_nt_xent, task_losses, term_weights
from evo_msa.objectives.weighting import make_weighting

__all__ = ["coarse_labels", "kl_transfer", "multi_nt_xent", "task_losses", "term_weights",
           "make_weighting"]
