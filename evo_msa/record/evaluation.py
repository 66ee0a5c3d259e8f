"""The evaluation record: one genome as the search saw it, created by the policy from a
candidate, completed by the outcomes of its trainings. The leaderboard, best_genome.json, the
checkpoint and the final trainer all read it."""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

from evo_msa.space.fitness import Fitness
from evo_msa.status import Status


@dataclass
class Evaluation:
    """A genome as the search saw it: decoded, trained (or not), scored."""

    id: int  # the candidate id
    generation: int
    parents: list[int]
    genome: list[float]  # full precision: what the strategy evolved
    genes: dict[str, Any]  # the genome decoded (config path -> value)
    config: dict  # the run config trained (RunConfig.to_dict())
    key: str  # architecture identity, for de-duplication
    params: int
    status: Status = Status.PENDING
    rung: int = 0  # > 0: successive halving stopped it at this rung (status early-stopped)
    fitness: tuple[float, ...] | None = None  # one value per objective (at the rung, if any)
    fitness_std: float | None = None  # the primary objective's spread over the seeds (>= 2)
    metrics: dict[str, float] = field(default_factory=dict)  # validation, mean over seeds
    seeds: list[int] = field(default_factory=list)
    epochs: float | None = None  # mean over seeds
    seconds: float | None = None  # wall time of the trial that trained it
    population: int | None = None  # networks trained together in that trial
    trial: str = ""  # Ray Tune trial id
    node: str = ""  # where it ran
    device: str = ""
    note: str = ""  # why it failed, was cached or rejected
    fingerprint: str = ""  # of the space, data and options it settled under (a forced resume)
    repeat: bool = False  # a re-evaluation of a known architecture: trains its whole budget

    def to_dict(self) -> dict:
        """As JSON (the checkpoint's evaluations)."""
        d = asdict(self)
        d["status"] = self.status.value
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "Evaluation":
        """The evaluation `to_dict` gave."""
        d = dict(d)
        d["status"] = Status(d["status"])
        if d.get("fitness") is not None:
            d["fitness"] = tuple(d["fitness"])
        return cls(**d)

    def row(self, fitness: Fitness) -> dict:
        """The leaderboard row: decoded genes as `gene:*`, validation metrics as `valid_*`."""
        values = self.fitness or (float("nan"),) * len(fitness.objectives)
        row = {"generation": self.generation, "id": self.id,
               "parents": "|".join(map(str, self.parents)), "status": self.status.value,
               "rung": self.rung or "", "fitness": values[0],
               "fitness_std": "" if self.fitness_std is None else self.fitness_std}
        if fitness.multi:
            row.update({f"fitness:{name}": v for name, v in zip(fitness.names, values)})
        row.update({"params": self.params, "seconds": self.seconds, "epochs": self.epochs,
                    "seeds": "" if self.status is Status.REJECTED else "|".join(map(str, self.seeds)),
                    "population": self.population, "node": self.node, "device": self.device,
                    "note": self.note, "fingerprint": self.fingerprint})
        row.update({f"gene:{k}": "|".join(map(str, v)) if isinstance(v, list) else v
                    for k, v in self.genes.items()})
        row.update({f"valid_{k}": v for k, v in self.metrics.items()})
        row["genome"] = json.dumps(self.genome)
        return row
