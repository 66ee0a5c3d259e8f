"""Evaluations in this process, one batch after another: for evaluators whose evaluations are
cheap (lookup tables), where starting Ray would cost more than the whole search, and for tests."""
from __future__ import annotations

from typing import Callable

from evo_msa.nas.engine import SearchEngine
from evo_msa.nas.evaluators.base import Evaluator, members


def run_inline(engine: SearchEngine, evaluator: Evaluator, *, batch: int = 1,
               persist: Callable[[], None] = lambda: None) -> None:
    """Ask up to `batch` evaluations, evaluate them, complete them; until the engine is done."""
    engine.set_window(batch - 1)  # each batch knows every result before it
    while not engine.finished:
        todo = engine.ask(batch)
        if not todo:  # nothing in flight and nothing to train: the strategy has stopped
            break
        trainings = [m for ev in todo for m in members(ev)]
        outcomes = evaluator.evaluate(trainings)
        for ev in todo:
            engine.complete(ev.id, [o for o in outcomes if o.eval_id == ev.id],
                            population=len(trainings))
        if engine.changed:
            engine.changed = False
            persist()
    if engine.changed:
        engine.changed = False
        persist()
