"""evo-msa: evolutionary architecture search for multimodal sentiment analysis.

Data flow, one package per step:
    data -> models -> objectives -> train -> (metrics) -> space -> search -> report

Python API (the `evo-msa` command is a thin layer over it):
    from evo_msa import search, train, predict, load_model
"""

__version__ = "0.3.0"

# The subpackages evo_msa.search and evo_msa.train share their names with the functions
# search() and train() below. Python binds a package's attribute to a subpackage when it first
# loads it, so load both (cheap: no torch) before binding the functions; a later
# `from evo_msa.search.runner import ...` then never turns `evo_msa.search` into the package.
import evo_msa.search  # noqa: E402,F401
import evo_msa.train  # noqa: E402,F401
from evo_msa.api import (baseline, export, load_model, predict, resume, search,  # noqa: E402
                         train)
from evo_msa.errors import UserError  # noqa: E402

__all__ = ["search", "resume", "train", "baseline", "predict", "load_model", "export",
           "UserError", "__version__"]
