"""What a search optimises: the `fitness:` section of a search space, as one value object.

    fitness: {metric: loss, direction: min}                # one objective (the default)
    fitness: {metric: loss, seeds: 3}                      # the mean over 3 training seeds
    fitness:                                               # several objectives: NSGA-II
      objectives: [{metric: loss}, {metric: params}]

An objective is a validation metric (loss, mae, corr, weighted_f1, ...) or a property of the
network: `params` (parameter count). Directions default from the name (metrics.Objective).
Strategies see scores, where higher is better; a failed evaluation gets the penalty.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

from evo_msa.errors import UserError, brief, did_you_mean
from evo_msa.metrics import Objective

PENALTY = 1.0e6  # magnitude of a failed, NaN or rejected evaluation's fitness
NETWORK_OBJECTIVES = ("params",)  # objectives measured on the network, not on valid
MAX_SEEDS = 16


class MissingMetric(KeyError):
    """A fitness metric the evaluation did not produce."""


@dataclass(frozen=True)
class Fitness:
    """What a search optimises: one or several objectives (validation metrics, parameter count),
    each the mean over `seeds` trainings."""

    objectives: tuple[Objective, ...] = (Objective("loss"),)
    seeds: int = 1  # trainings per evaluation (different seeds); the fitness is their mean

    # ---- the primary objective ------------------------------------------------------------
    @property
    def primary(self) -> Objective:
        """The first objective (what ranks, picks and early-stops)."""
        return self.objectives[0]

    @property
    def metric(self) -> str:
        """The primary objective's metric."""
        return self.primary.metric

    @property
    def direction(self) -> str:
        """The primary objective's direction (min or max)."""
        return self.primary.direction

    @property
    def multi(self) -> bool:
        """Several objectives (a Pareto front)?"""
        return len(self.objectives) > 1

    @property
    def names(self) -> list[str]:
        """The objectives' metrics, in order."""
        return [o.metric for o in self.objectives]

    # ---- values ---------------------------------------------------------------------------
    def values(self, metrics: dict[str, float], params: int) -> tuple[float, ...]:
        """The objective values of an evaluation (validation metrics, parameter count)."""
        out = []
        for o in self.objectives:
            if o.metric == "params":
                out.append(float(params))
            elif o.metric in metrics:
                out.append(float(metrics[o.metric]))
            else:
                raise MissingMetric(f"fitness metric {o.metric!r} is not a validation metric "
                                    f"(have: {', '.join(sorted(metrics))})")
        return tuple(out)

    def penalty(self) -> tuple[float, ...]:
        """The fitness of a failed evaluation: the worst value on every objective."""
        return tuple(o.sign * PENALTY for o in self.objectives)

    def usable(self, values) -> bool:
        """A real measurement: finite and not a penalty."""
        return values is not None and all(math.isfinite(v) and abs(v) < PENALTY for v in values)

    def scores(self, values) -> tuple[float, ...]:
        """Higher is better on every objective: what the strategies compare."""
        return tuple(-o.loss(v) for o, v in zip(self.objectives, values))

    def better(self, a, b) -> bool:
        """Is `a` better than `b` on the primary objective?"""
        return self.primary.better(a[0], b[0])

    def dominates(self, a, b) -> bool:
        """Pareto dominance: no worse on every objective, better on one."""
        la = [o.loss(v) for o, v in zip(self.objectives, a)]
        lb = [o.loss(v) for o, v in zip(self.objectives, b)]
        return all(x <= y for x, y in zip(la, lb)) and any(x < y for x, y in zip(la, lb))

    def to_dict(self) -> dict:
        """As written in a space file (and best_genome.json)."""
        return {"objectives": [{"metric": o.metric, "direction": o.direction}
                               for o in self.objectives], "seeds": self.seeds}

    # ---- parsing --------------------------------------------------------------------------
    @classmethod
    def parse(cls, raw: Any, source: str) -> "Fitness":
        """The `fitness:` section of a space file; a bad value is a one-line UserError naming it."""
        where = f"{source}: fitness"
        if raw is None:
            return cls()
        if isinstance(raw, list):
            raw = {"objectives": raw}
        if not isinstance(raw, dict):
            raise UserError(f"{where}: expected a mapping (metric, direction, seeds) or a list "
                            "of objectives")
        allowed = {"metric", "direction", "seeds", "objectives"}
        unknown = [k for k in raw if k not in allowed]
        if unknown:
            raise UserError(f"{where}: unknown key {brief(str(unknown[0]))}"
                            f"{did_you_mean(unknown[0], allowed)} "
                            f"(expected {', '.join(sorted(allowed))})")
        if "objectives" in raw and ({"metric", "direction"} & set(raw)):
            raise UserError(f"{where}: give either metric/direction or objectives, not both")
        specs = raw["objectives"] if "objectives" in raw else [
            {k: raw[k] for k in ("metric", "direction") if k in raw}]
        if not isinstance(specs, list) or not specs:
            raise UserError(f"{where}.objectives: expected a non-empty list of "
                            "{metric, direction} mappings")
        objectives = [_objective(spec, f"{where}.objectives[{i}]" if "objectives" in raw
                                 else where) for i, spec in enumerate(specs)]
        if len({o.metric for o in objectives}) < len(objectives):
            raise UserError(f"{where}: an objective is listed twice")
        seeds = raw.get("seeds", 1)
        if isinstance(seeds, bool) or not isinstance(seeds, int) or not 1 <= seeds <= MAX_SEEDS:
            raise UserError(f"{where}.seeds: expected an integer in 1..{MAX_SEEDS}, got {brief(seeds)}")
        return cls(tuple(objectives), seeds)


def _objective(spec: Any, where: str) -> Objective:
    if not isinstance(spec, dict) or set(spec) - {"metric", "direction"}:
        raise UserError(f"{where}: expected a mapping with 'metric' and optional 'direction'")
    metric = spec.get("metric", "loss")
    if not isinstance(metric, str) or not re.fullmatch(r"[A-Za-z0-9_]+", metric):
        raise UserError(f"{where}.metric: expected a metric name such as loss, mae, corr, "
                        f"weighted_f1 or params, got {brief(metric)}")
    direction = spec.get("direction", "")
    if direction not in ("", "min", "max"):
        raise UserError(f"{where}.direction must be 'min' or 'max', got {brief(direction)}")
    return Objective(metric, direction)
