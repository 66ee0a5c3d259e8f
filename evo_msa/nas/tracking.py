"""`--track tensorboard`: a search as TensorBoard runs, one per evaluation.

    <run>/tensorboard/eval_<id>/   per-epoch validation curves of each of its seeds
                                   (valid/<metric>/seed_<k>: its k-th seed, so the runs of
                                   all evaluations share tags), and its decoded genes as
                                   hyperparameters with its fitness (the HParams tab)

    tensorboard --logdir <run>/tensorboard

A Ray Tune callback in the driver: trials report their members' per-epoch validation metrics
and the callback writes them with tensorboardX (which ray[tune] installs). Tune's own
TBXLoggerCallback logs one run per trial, but a trial here trains a batch of genomes, so its
config and curves are not one genome's.
"""
from __future__ import annotations

import json
from pathlib import Path

from ray.tune import Callback

from evo_msa.nas.engine import SearchEngine
from evo_msa.nas.evaluators.base import Outcome
from evo_msa.record.evaluation import Evaluation
from evo_msa.record.rundir import tensorboard_folder

__all__ = ["TRACKERS", "TensorBoardTracker", "hparams", "viewer_hint"]

TRACKERS = ("tensorboard",)


def viewer_hint(folder: str) -> str:
    """How to look at the logs: the command when TensorBoard is installed, else what installs
    it (tensorboardX writes the files without it)."""
    import importlib.util

    if importlib.util.find_spec("tensorboard") is not None:
        return f"view: tensorboard --logdir {folder}"
    return ("to view them: pip install -e '.[track]' in the checkout, then tensorboard "
            f"--logdir {folder}")


class TensorBoardTracker(Callback):
    """A Tune callback writing one TensorBoard run per evaluation: its learning curves and final
    metrics."""

    def __init__(self, folder: Path, engine: SearchEngine):
        self.folder = Path(folder)
        self.engine = engine
        self.writers = {}
        self.logged = {e.id for e in engine.evaluations}  # a resume does not log twice
        self.seeds: dict[int, list[int]] = {}  # evaluation id -> its training seeds

    def _writer(self, eval_id: int):
        from tensorboardX import SummaryWriter

        if eval_id not in self.writers:
            self.writers[eval_id] = SummaryWriter(str(self.folder.parent / tensorboard_folder(eval_id)))
        return self.writers[eval_id]

    def on_trial_result(self, iteration, trials, trial, result, **info):
        """A trial's per-epoch report: each member's validation metrics at this epoch."""
        for row in json.loads(result.get("epoch_metrics", "[]")):
            o = Outcome.from_dict(row)
            writer = self._writer(o.eval_id)
            k = self._seed_index(o)
            for metric, value in o.metrics.items():
                writer.add_scalar(f"valid/{metric}/seed_{k}", value, result["epoch"])
        self._log_settled()

    def _seed_index(self, o: Outcome) -> int:
        """The k of a training's tags (seed_<k>: the k-th seed of its evaluation): the same for
        every report, whether the evaluation is still in flight or settled already."""
        seeds = self.seeds.get(o.eval_id)
        if seeds is None:
            ev = self.engine.pending.get(o.eval_id) or next(
                (e for e in reversed(self.engine.evaluations) if e.id == o.eval_id), None)
            seeds = self.seeds[o.eval_id] = list(ev.seeds) if ev is not None else []
        return seeds.index(o.seed) if o.seed in seeds else 0

    def on_trial_complete(self, iteration, trials, trial, **info):
        """A trial ended: the evaluations it settled are logged."""
        self._log_settled()

    def on_trial_error(self, iteration, trials, trial, **info):
        """A trial failed: the evaluations it settled are logged."""
        self._log_settled()

    def on_experiment_end(self, trials, **info):
        """The search ended: what settled is logged and every writer closed."""
        self._log_settled()
        for writer in self.writers.values():
            writer.close()
        self.writers.clear()

    def _log_settled(self) -> None:
        fitness = self.engine.fitness
        for ev in self.engine.evaluations:
            if ev.id in self.logged or not ev.status.usable:
                continue
            self.logged.add(ev.id)
            values = {f"fitness/{o.metric}": float(v)
                      for o, v in zip(fitness.objectives, ev.fitness)}
            self._writer(ev.id).add_hparams(hparams(ev), {**values, "params": ev.params},
                                            name="hparams")
            self._writer(ev.id).flush()


def hparams(ev: Evaluation) -> dict:
    """Decoded genes as TensorBoard hyperparameters (numbers and text only)."""
    out = {"generation": ev.generation}
    for path, value in ev.genes.items():
        out[path] = value if isinstance(value, (int, float, str, bool)) else json.dumps(value)
    return out
