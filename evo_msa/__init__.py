"""evo-msa: evolutionary architecture search for multimodal sentiment analysis.

Data flow, one package per step:
    data -> models -> objectives -> train -> (metrics) -> space -> search -> report

Python API (the `evo-msa` command is a thin layer over it):
    from evo_msa import train, search, resume, baseline
"""

__version__ = "0.2.0"

from evo_msa.api import baseline, resume, search, train  # noqa: E402
from evo_msa.errors import UserError  # noqa: E402

__all__ = ["train", "search", "resume", "baseline", "UserError", "__version__"]
