"""One status vocabulary, from a training to the leaderboard.

A training (one member of a population, one seed) ends OK, NAN (diverged) or ERROR, or is
EARLY_STOPPED (at a rung of successive halving, or by ASHA; its best result so far stands, at a
lower fidelity). An evaluation (a genome, one or more trainings) is PENDING until its trainings
are in, and may be settled without any training: CACHED (an architecture already trained) or
REJECTED (a cheap constraint). The leaderboard's `status` column holds the values.
"""
from __future__ import annotations

import enum


class Status(str, enum.Enum):
    """The one status vocabulary, from a training's outcome to the leaderboard."""

    PENDING = "pending"  # handed to a trial, no result yet
    OK = "ok"  # trained, fitness measured
    CACHED = "cached"  # the same architecture was trained already: its fitness is reused
    REJECTED = "rejected"  # failed a cheap constraint (parameter count): never trained
    EARLY_STOPPED = "early-stopped"  # stopped before its budget; its best fitness so far stands
    NAN = "nan"  # the training diverged
    ERROR = "error"  # the training raised (or its process or node was lost)

    @property
    def usable(self) -> bool:
        """Its fitness is a measurement at the full budget: it may be the best genome, be
        reused, be retrained. (EARLY_STOPPED is measured too, at a lower fidelity: the
        strategy learns from it, nothing else takes it for a result.)"""
        return self in (Status.OK, Status.CACHED)

    @property
    def failed(self) -> bool:
        """A failure: diverged, raised, or rejected before training."""
        return self in (Status.NAN, Status.ERROR, Status.REJECTED)

    @property
    def trained(self) -> bool:
        """Compute was spent on it (what a budget of trainings counts)."""
        return self in (Status.OK, Status.EARLY_STOPPED, Status.NAN, Status.ERROR)

    @classmethod
    def usable_values(cls) -> tuple[str, ...]:
        """The leaderboard values of the usable statuses (full budget)."""
        return tuple(s.value for s in cls if s.usable)

    @classmethod
    def trained_values(cls) -> tuple[str, ...]:
        """The leaderboard values of the statuses that spent a training."""
        return tuple(s.value for s in cls if s.trained)
