"""A Ray Tune `Searcher` that drives the search engine: a thin ask/tell adapter (as Ray's own
Optuna and Nevergrad searchers are). The DEAP population stays in the driver; a trial receives
plain dicts: the run configs and seeds of its batch of genomes.

suggest(trial_id)            engine.ask(batch size) -> one trial config, or wait / FINISHED
on_trial_complete(...)       the trial's outcomes -> engine.complete, then a checkpoint
save()/restore()             the engine's state as JSON (the run keeps it in state.json)
"""
from __future__ import annotations

import json
from typing import Callable

from ray.tune.search import Searcher

from evo_msa.io import StorageError
from evo_msa.nas.engine import SearchEngine
from evo_msa.space.fitness import NETWORK_OBJECTIVES


class EngineSearcher(Searcher):
    def __init__(self, engine: SearchEngine, *, batch_size: int, device: str, slots: int = 1,
                 on_change: Callable[[], None] = lambda: None, track: bool = False):
        super().__init__(metric="fitness", mode=engine.fitness.direction)
        self.engine, self.batch_size, self.device = engine, batch_size, device
        self.slots = max(1, slots)  # trials that run at once
        self.on_change = on_change
        self.track = track  # trials report per-epoch metrics of every member
        self.trials: dict[str, list[int]] = {}  # trial id -> evaluation ids
        self.ready: list[list] = []  # batches made, not yet handed out
        self.failure: StorageError | None = None  # a checkpoint that could not be written

    def suggest(self, trial_id: str):
        if self.failure is not None:
            return Searcher.FINISHED  # stop the search: the runner raises the failure
        if not self.ready:
            self.ready = balanced_batches(self.engine.ask(self.batch_size * self.slots),
                                          self.batch_size)
        self._persist()
        batch = self.ready.pop(0) if self.ready else []
        if not batch:
            return Searcher.FINISHED if self.engine.finished else None
        self.trials[trial_id] = [ev.id for ev in batch]
        measured = [o for o in self.engine.fitness.objectives if o.metric not in NETWORK_OBJECTIVES]
        return {"members": [{"eval": ev.id, "seed": seed, "config": ev.config}
                            for ev in batch for seed in ev.seeds],
                "watch": [o.metric for o in measured],
                # what the trial reports per epoch as "fitness" (ASHA compares it)
                "objective": ({"metric": measured[0].metric, "direction": measured[0].direction}
                              if measured else None),
                "device": self.device, "track": self.track}

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False):
        ids = self.trials.pop(trial_id, None)
        if ids is None:
            return
        result = result or {}
        outcomes = json.loads(result.get("outcomes", "[]"))
        where = {"trial": trial_id, "node": result.get("node", ""),
                 "device": result.get("device", ""), "seconds": result.get("seconds"),
                 "population": result.get("population")}
        for eval_id in ids:
            mine = [o for o in outcomes if o["eval"] == eval_id]
            self.engine.complete(eval_id, mine, lost=error, **where)
        self._persist()

    def _persist(self) -> None:
        """Checkpoint; a write that fails (a full disk) stops the search instead of going on
        without checkpoints (Tune would swallow an exception raised here)."""
        if self.engine.changed and self.failure is None:
            self.engine.changed = False
            try:
                self.on_change()
            except StorageError as exc:
                self.failure = exc

    def save(self, checkpoint_path: str) -> None:
        from evo_msa.io import write_json

        write_json(checkpoint_path, self.engine.state_dict())

    def restore(self, checkpoint_path: str) -> None:
        with open(checkpoint_path) as fh:
            self.engine.load_state_dict(json.load(fh))
        self.trials = {}


def balanced_batches(evaluations: list, size: int) -> list[list]:
    """Deal evaluations into batches of at most `size` with about equal work (parameter count
    as the proxy; largest first, each to the lightest batch), so trials that run side by side
    finish together instead of one slot idling."""
    if not evaluations:
        return []
    n = -(-len(evaluations) // size)  # as few batches as the size allows
    batches: list[list] = [[] for _ in range(n)]
    load = [0] * n
    for ev in sorted(evaluations, key=lambda e: -e.params):
        open_ = [i for i in range(n) if len(batches[i]) < size]
        i = min(open_, key=lambda j: load[j])
        batches[i].append(ev)
        load[i] += ev.params
    return [sorted(b, key=lambda e: e.id) for b in batches]
