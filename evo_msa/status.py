"""One status vocabulary, from a training to the leaderboard.

A training (one member of a population, one seed) ends OK, NAN (diverged) or ERROR, or is
EARLY_STOPPED (by the scheduler; its best result so far stands). An evaluation (a genome, one
or more trainings) is PENDING until its trainings are in, and may be settled without any
training: CACHED (an architecture already trained) or REJECTED (a cheap constraint). The
leaderboard's `status` column holds the values.
"""
from __future__ import annotations

import enum


class Status(str, enum.Enum):
    PENDING = "pending"  # handed to a trial, no result yet
    OK = "ok"  # trained, fitness measured
    CACHED = "cached"  # the same architecture was trained already: its fitness is reused
    REJECTED = "rejected"  # failed a cheap constraint (parameter count): never trained
    EARLY_STOPPED = "early-stopped"  # stopped before its budget; its best fitness so far stands
    NAN = "nan"  # the training diverged
    ERROR = "error"  # the training raised (or its process or node was lost)

    @property
    def usable(self) -> bool:
        """Its fitness is a real measurement."""
        return self in (Status.OK, Status.CACHED, Status.EARLY_STOPPED)

    @property
    def failed(self) -> bool:
        return self in (Status.NAN, Status.ERROR, Status.REJECTED)

    @property
    def trained(self) -> bool:
        """Compute was spent on it (what a budget of trainings counts)."""
        return self in (Status.OK, Status.EARLY_STOPPED, Status.NAN, Status.ERROR)

    @classmethod
    def usable_values(cls) -> tuple[str, ...]:
        """The leaderboard values of the usable statuses."""
        return tuple(s.value for s in cls if s.usable)
