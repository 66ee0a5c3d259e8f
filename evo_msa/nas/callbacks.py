"""What the Python API's caller is told while a search runs (`evo_msa.search(...,
on_evaluation=..., on_generation=..., on_final=...)`), in the driver process, as it happens:

    on_evaluation(evaluation)   every settled evaluation (record.evaluation.Evaluation: id,
                                generation, status, fitness, genes, metrics, params, ...),
                                trained, cached, rejected or failed
    on_generation(summary)      a finished generation: a dict with generation, generations,
                                evaluated, stopped, failed, best, median, elapsed_s, eta_s, phase
    on_final(final)             the final training's record (final.json's content)

A callback that raises stops the search as an error would (the checkpoint stays).
"""
from __future__ import annotations

from typing import Any, Callable

Hook = Callable[[Any], None] | None


class Callbacks:
    """The caller's hooks; none set tells no one."""

    def __init__(self, on_evaluation: Hook = None, on_generation: Hook = None,
                 on_final: Hook = None):
        for name, hook in (("on_evaluation", on_evaluation), ("on_generation", on_generation),
                           ("on_final", on_final)):
            if hook is not None and not callable(hook):
                from evo_msa.errors import UserError, brief

                raise UserError(f"{name} must be a function, got {brief(hook)}")
        self.on_evaluation, self.on_generation, self.on_final = (on_evaluation, on_generation,
                                                                 on_final)
        self.trackers: list = []  # --track mlflow: objects with evaluation(ev) and final(record)

    def add(self, tracker) -> None:
        """Tell `tracker` too (its evaluation(ev) and final(record)), before the caller's hooks."""
        self.trackers.append(tracker)

    def __getstate__(self) -> dict:
        # Ray Tune pickles the searcher with the engine: the copy tells no one (the engine in
        # the driver is the one that settles evaluations)
        return {}

    def __setstate__(self, state: dict) -> None:
        self.__init__()

    def evaluation(self, ev) -> None:
        """A settled evaluation: the trackers, then on_evaluation."""
        for tracker in self.trackers:
            tracker.evaluation(ev)
        if self.on_evaluation is not None:
            self.on_evaluation(ev)

    def generation(self, summary: dict) -> None:
        """A finished generation's summary: on_generation."""
        if self.on_generation is not None:
            self.on_generation(summary)

    def final(self, record: dict) -> None:
        """The final training's record: the trackers, then on_final."""
        for tracker in self.trackers:
            tracker.final(record)
        if self.on_final is not None:
            self.on_final(record)
