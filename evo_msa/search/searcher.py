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

from evo_msa.search.engine import SearchEngine
from evo_msa.space.fitness import NETWORK_OBJECTIVES


class EngineSearcher(Searcher):
    def __init__(self, engine: SearchEngine, *, batch_size: int, device: str,
                 on_change: Callable[[], None] = lambda: None):
        super().__init__(metric="fitness", mode=engine.fitness.direction)
        self.engine, self.batch_size, self.device = engine, batch_size, device
        self.on_change = on_change
        self.trials: dict[str, list[int]] = {}  # trial id -> evaluation ids

    def suggest(self, trial_id: str):
        batch = self.engine.ask(self.batch_size)
        self._persist()
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
                "device": self.device}

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
        if self.engine.changed:
            self.engine.changed = False
            self.on_change()

    def save(self, checkpoint_path: str) -> None:
        from evo_msa.io import write_json

        write_json(checkpoint_path, self.engine.state_dict())

    def restore(self, checkpoint_path: str) -> None:
        with open(checkpoint_path) as fh:
            self.engine.load_state_dict(json.load(fh))
        self.trials = {}
