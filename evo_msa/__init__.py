"""evo-msa: evolutionary architecture search for multimodal sentiment analysis.

Python API (the `evo-msa` command is a thin layer over it, see `evo_msa.api`):

    from evo_msa import search, train, predict, load_model

The layout, which way the data flows and which room does what: ARCHITECTURE.md at the
repository root. The names below load on first use (PEP 562): `import evo_msa` stays cheap,
and no function shadows a subpackage (`import evo_msa.nas.strategy as s` works).
"""
from importlib import import_module

from evo_msa._version import __version__
from evo_msa.errors import UserError

_API = ("search", "resume", "train", "baseline", "predict", "load_model", "export")
__all__ = [*_API, "UserError", "__version__"]


def __getattr__(name: str):
    if name in _API:
        return getattr(import_module("evo_msa.api"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
