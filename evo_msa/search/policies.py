"""Policies between the strategy and the evaluator (NNI-style): decode a genome into a run
config, reject it cheaply (parameter count) before any training, reuse the fitness of an
architecture already trained, and turn failures into a penalty fitness."""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from evo_msa.config import RunConfig
from evo_msa.models import DataInfo, build_model, count_parameters
from evo_msa.space import SearchSpace

PENALTY = 1.0e6  # fitness magnitude of a failed, NaN or rejected evaluation


@dataclass
class Prepared:
    config: RunConfig
    key: str  # architecture identity for de-duplication
    params: int
    verdict: str  # "train", "cached" or "rejected"
    fitness: float | None = None  # known already (cached / rejected)
    note: str = ""


class EvaluationPolicy:
    def __init__(self, space: SearchSpace, info: DataInfo):
        self.space, self.info = space, info
        self.known: dict[str, tuple[float, int]] = {}  # key -> (fitness, candidate id)

    @property
    def penalty(self) -> float:
        return PENALTY if self.space.direction == "min" else -PENALTY

    def score(self, fitness: float) -> float:
        """Fitness -> score, higher is better, what the strategies compare."""
        return -fitness if self.space.direction == "min" else fitness

    def prepare(self, genome: list[float]) -> Prepared:
        cfg = self.space.to_config(genome, available=self.info.modalities)
        key = self.space.architecture_key(cfg)
        if key in self.known:
            fitness, cid = self.known[key]
            return Prepared(cfg, key, 0, "cached", fitness, f"same architecture as #{cid}")
        try:
            info = dataclasses.replace(self.info, coarse_classes=cfg.objective.coarse_classes)
            params = count_parameters(build_model(cfg.model, info))
        except ValueError as exc:
            return Prepared(cfg, key, 0, "rejected", self.penalty, str(exc))
        limit = self.space.max_params
        if limit and params > limit:
            return Prepared(cfg, key, params, "rejected", self.penalty,
                            f"{params} parameters > max_params {limit}")
        return Prepared(cfg, key, params, "train")

    def remember(self, key: str, fitness: float, cid: int) -> None:
        """Only real, finite results are reused; a failure may be transient (e.g. OOM)."""
        if math.isfinite(fitness) and abs(fitness) < PENALTY:
            self.known.setdefault(key, (fitness, cid))
