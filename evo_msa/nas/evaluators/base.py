"""The evaluator interface: how a genome of a search space becomes a measurement.

    describe(genome) -> Description   decode: the genes, what is trained (config), its identity
                                      (key) and size (parameters), or why it cannot be built
    identity(genome) -> str           the key alone (cheap: strategies ask it of many children)
    evaluate(members) -> [Outcome]    train (or look up) every member: an evaluation's config
                                      with one seed; never raises for a bad member

A search's engine and policies see only this interface, so HAEMSA trainings in Ray Tune trials
(evaluators.haemsa) and ground-truth lookup tables (evaluators.table) run through the same
strategies, policies, leaderboard and resume.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, field
from typing import Any, Callable

from evo_msa.record.evaluation import Evaluation
from evo_msa.space import SearchSpace
from evo_msa.status import Status


@dataclass(frozen=True)
class Description:
    """A genome decoded by an evaluator."""

    genes: dict[str, Any]  # gene name -> decoded value (the leaderboard's gene:* columns)
    config: dict  # what is trained: a HAEMSA run config, a table's parameters
    key: str  # identity: two genomes with one key are one architecture (trained once)
    size: int = 0  # parameter count: constraints.max_params and the `params` objective
    rejected: str = ""  # why it cannot be built (e.g. a mask keeping none of the data's modalities)


@dataclass(frozen=True)
class Member:
    """One training: an evaluation's config with one seed."""

    eval_id: int
    seed: int
    config: dict
    whole: bool = False  # trains its whole budget (a re-evaluation): no halving stops it

    def to_dict(self) -> dict:
        """As plain JSON (a trial's config)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "Member":
        """The member `to_dict` gave."""
        return cls(int(d["eval_id"]), int(d["seed"]), d["config"], bool(d.get("whole")))


@dataclass
class Outcome:
    """What one training gave: OK, EARLY_STOPPED (its best so far: at a rung of successive
    halving, or stopped by ASHA), NAN or ERROR."""

    eval_id: int
    seed: int
    status: Status
    metrics: dict[str, float] = field(default_factory=dict)  # validation metrics
    epochs: float = 0.0
    error: str = ""
    rung: int = 0  # > 0: successive halving stopped it at this rung (1 = the first)
    stage: str = ""  # where a stopped training stopped, when not at an epoch rung (a screen)

    def to_dict(self) -> dict:
        """As plain JSON (what a trial reports)."""
        return {**asdict(self), "status": self.status.value}

    @classmethod
    def from_dict(cls, d: dict) -> "Outcome":
        """The outcome `to_dict` gave (a missing field takes its default)."""
        return cls(int(d["eval_id"]), int(d["seed"]), Status(d["status"]),
                   dict(d.get("metrics") or {}), float(d.get("epochs") or 0.0),
                   str(d.get("error") or ""), int(d.get("rung") or 0),
                   str(d.get("stage") or ""))


def members(evaluation: Evaluation) -> list[Member]:
    """An evaluation's trainings: its config with each of its seeds."""
    return [Member(evaluation.id, seed, evaluation.config, evaluation.repeat)
            for seed in evaluation.seeds]


# progress(epoch, each training's best so far, the final outcomes of the trainings that have
# ended): per-epoch reports of a long evaluation (Tune: ASHA, results as they come)
Progress = Callable[[int, list[Outcome], list[Outcome]], None]


class Evaluator(ABC):
    """Decodes genomes of `space` and measures them; see the module docstring."""

    kind = "base"
    # trials of this evaluator are worth shipping to Ray (trainings), not run inline (lookups)
    needs_ray = False

    def __init__(self, space: SearchSpace):
        self.space = space

    @abstractmethod
    def describe(self, genome: list[float]) -> Description:
        """Decode a genome (never raises: a genome that cannot be built says why)."""

    @abstractmethod
    def evaluate(self, members: list[Member], progress: Progress | None = None
                 ) -> list[Outcome]:
        """One outcome per member, in order; a bad member gets an ERROR/NAN outcome."""

    def identity(self, genome: list[float]) -> str:
        """describe(genome).key: two genomes with one identity are one architecture."""
        return self.describe(genome).key

    def describe_data(self) -> str:
        """One line on what is evaluated (the search banner)."""
        return self.kind

    def cpu_batch_cap(self) -> int | None:
        """The most genomes a CPU trial should hold when --batch-genomes is not given; None:
        no cap (training several genomes as one population saves time on a CPU for small
        networks, which one member alone cannot keep a core busy with)."""
        return None

    def max_epochs(self) -> int | None:
        """The most epochs one training runs (what ASHA's rungs are cut from); None: its
        trainings have no epochs (a lookup)."""
        return None
