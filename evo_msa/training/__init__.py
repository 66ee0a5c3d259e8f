"""Training: a population of HAEMSA networks at once (trainer), built with its losses by one
factory (population), AdamW per member (optim), configs x seeds as one population (multiseed),
saved models (saved), several of them as one predictor: a seed or weighted ensemble (ensemble).

The names below load on first use (PEP 562), so `import evo_msa` stays cheap (no torch)."""
from importlib import import_module

_EXPORTS = {"format_summary": "multiseed", "train_configs": "multiseed",
            "train_seeds": "multiseed", "Population": "population",
            "build_population": "population", "PopulationTrainer": "trainer",
            "TrainingDiverged": "trainer", "TrainResult": "trainer", "resolve_device": "trainer",
            "train_model": "trainer", "train_population": "trainer"}
__all__ = list(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
