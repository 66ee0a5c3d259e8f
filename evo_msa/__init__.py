"""evo-msa: evolutionary architecture search for multimodal sentiment analysis.

Python API (the `evo-msa` command, cli.py, is a thin layer over api.py):

    from evo_msa import search, train, predict, load_model

The layout follows the data flow; one room, one job:

    data/        MMSA-layout pickles (restricted unpickler, checks, z-scoring), synthetic data
      -> models/     HAEMSA for a population of P networks at once (P = 1: one model),
                     sequence encoders over packed valid steps (sequence.py)
      -> losses/     the multi-task loss terms (HAEMSA eq. 14, DMMSA), task weighting
      -> training/   the population trainer, AdamW per member, several seeds, successive
                     halving inside a population (halving.py), saved models
      -> metrics.py  MMSA's metric definitions; baselines.py ridge / softmax / MLP
    space/       the search-space file: genes decoded from a genome in [0, 1]^n, the fitness
      -> nas/        the search: strategies -> policies -> evaluators -> engine -> execution
                     (Ray Tune trials or inline) -> runner (run directory, final trainer)
    record/      what a run leaves, written and read in one place: the run directory, the
                 evaluation record, ranking, the leaderboard, best_genome.json, study files
      -> report/     plots and the HTML report (renders records)
    studies/     `evo-msa study`: study files (the top-level experiments/ folder) ->
                 variants (baselines, train, search, ...) -> results, summary, RESULTS.md

Cross-cutting, at the root: config.py (the run config a genome decodes into), status.py (one
status vocabulary from a training to the leaderboard), io.py (the one atomic writer),
errors.py (UserError: one line, exit 2), provenance.py.

Which way a search flows: `nas.runner` checks options, space and data, then the engine asks
its strategy for genomes, the policy decodes each through the space's evaluator (cached and
rejected ones are settled at once), trials evaluate batches of members (genome x seed) and
return typed outcomes, the policy turns them into each evaluation's status and fitness, the
strategy is told; the run directory gets a checkpoint after every settled evaluation.

The names below load on first use (PEP 562): `import evo_msa` stays cheap, and no function
shadows a subpackage (`import evo_msa.nas.strategies as s` works).
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
