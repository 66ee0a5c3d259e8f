"""Multi-fidelity fitness: the `fidelity:` section of a search space (HAEMSA trainings).

    fidelity: {rungs: [2, 5], keep: 1/3}   # successive halving inside every trial's batch
    fidelity: {screen: frozen, keep: 1/2}  # fine-tuning spaces: heads first on the frozen encoder
    fidelity: off                          # every genome trains its whole fitness budget

At each rung (an epoch of the fitness budget) the genomes of a batch still training are ranked
by the mean over their seeds of the fitness so far, and the best `keep` fraction goes on
(training.halving); the rest stop there, with status early-stopped and the rung in the
leaderboard. A rung at or past the budget is the budget itself. Without the section, the default
below: rungs at fixed fractions of the space's epochs, measured in
experiments/results/fidelity/.

With `screen: frozen` (a space whose genomes fine-tune a pretrained encoder) every genome of a
batch first trains its whole budget with the encoder frozen (heads over the cached token states:
~2.6 s against ~56 s fine-tuned, MOSI, one core), and only the best `keep` share by that fitness
is then fine-tuned; the rest stop there (rung 1). On MOSI the frozen fitness ranks the
fine-tuned one better (Spearman 0.61) than the fine-tuned fitness after one or two of five
epochs (0.08, 0.52: the warm-up), so the screen, not rungs, is what pays per CPU-minute
(experiments/results/finetune_budget/).
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from evo_msa.errors import UserError, brief

# The default schedule, as fractions of the fitness epochs (12 epochs: rungs 1 and 3; 15: 1
# and 4), and the share of a batch that goes on at each rung: of the schedules simulated on the
# recorded curves of 96 genomes (MOSI MiniLM and synthetic), the one with the least compute
# until a finisher reaches the best 5% / 10% level on both (experiments/results/fidelity/).
DEFAULT_FRACTIONS = (1 / 12, 1 / 4)
DEFAULT_KEEP = 1 / 2
MIN_EPOCHS = 6  # shorter budgets (smoke runs, tests) train whole by default
MAX_RUNGS = 16
SCREENS = ("frozen",)  # what a genome may first train as before its own fine-tuning


@dataclass(frozen=True)
class Fidelity:
    """Successive halving inside a population: at which fractions of the budget (rungs) the weaker
    genomes stop, and the share kept at each."""

    rungs: tuple[int, ...] = ()  # epochs; () with `fractions`: the default
    keep: float = DEFAULT_KEEP
    fractions: tuple[float, ...] = ()  # rungs as fractions of the budget (the default)
    enabled: bool = True
    screen: str = ""  # "frozen": heads on the frozen encoder first, the best `keep` fine-tuned

    @classmethod
    def default(cls) -> "Fidelity":
        """The default rungs."""
        return cls(fractions=DEFAULT_FRACTIONS)

    def rungs_for(self, epochs: int) -> tuple[int, ...]:
        """The rungs that stop anything when the fitness budget is `epochs`."""
        if not self.enabled or self.screen:
            return ()
        if self.fractions:
            if epochs < MIN_EPOCHS:
                return ()
            rungs = sorted({max(1, round(f * epochs)) for f in self.fractions})
        else:
            rungs = list(self.rungs)
        return tuple(r for r in rungs if r < epochs)

    def describe(self, epochs: int) -> str:
        """The schedule in words, for a budget of `epochs`."""
        keep = Fraction(self.keep).limit_denominator(100)
        if self.screen:
            return (f"every genome trains on the {self.screen} encoder first, the best {keep} "
                    f"of each batch is then fine-tuned")
        rungs = self.rungs_for(epochs)
        if not rungs:
            return "every genome trains its whole budget"
        return (f"successive halving at epochs {', '.join(map(str, rungs))} of {epochs} "
                f"(keep {keep})")

    def to_dict(self) -> dict:
        """As written in a space file."""
        if not self.enabled:
            return {"enabled": False}
        if self.screen:
            return {"screen": self.screen, "keep": self.keep}
        return {"rungs": list(self.rungs), "fractions": list(self.fractions), "keep": self.keep}

    @classmethod
    def parse(cls, raw: Any, source: str) -> "Fidelity":
        """The `fidelity:` section of a space file; a bad value is a one-line UserError naming it."""
        where = f"{source}: fidelity"
        if raw is None:
            return cls.default()
        if raw is False or (isinstance(raw, str) and raw.strip().lower() in ("off", "none")):
            return cls(enabled=False)
        if not isinstance(raw, dict):
            raise UserError(f"{where}: expected off or a mapping {{rungs: [epochs], keep: "
                            f"fraction}} or {{screen: frozen, keep: fraction}}, got {brief(raw)}")
        unknown = [k for k in raw if k not in ("rungs", "keep", "screen")]
        if unknown:
            raise UserError(f"{where}: unknown key {brief(unknown[0])} (expected rungs, keep, "
                            f"screen)")
        keep = _fraction(raw.get("keep", DEFAULT_KEEP))
        if keep is None or not 0 < keep < 1:
            raise UserError(f"{where}.keep: expected a fraction in (0, 1) such as 1/3 or 0.5, "
                            f"got {brief(raw.get('keep'))}")
        if "screen" in raw:
            if raw["screen"] not in SCREENS:
                raise UserError(f"{where}.screen: expected one of {', '.join(SCREENS)}, got "
                                f"{brief(raw['screen'])}")
            if "rungs" in raw:
                raise UserError(f"{where}: screen and rungs are two schedules; give one")
            return cls(keep=keep, screen=raw["screen"])
        rungs = raw.get("rungs")
        if (not isinstance(rungs, list) or not 1 <= len(rungs) <= MAX_RUNGS
                or not all(isinstance(r, int) and not isinstance(r, bool) and r >= 1
                           for r in rungs)
                or any(b <= a for a, b in zip(rungs, rungs[1:]))):
            raise UserError(f"{where}.rungs: expected 1 to {MAX_RUNGS} increasing epochs "
                            f"(integers >= 1), got {brief(rungs)}")
        return cls(rungs=tuple(rungs), keep=keep)


def _fraction(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, str) and re.fullmatch(r"\s*\d+\s*/\s*\d+\s*", value):
        num, den = (int(x) for x in value.split("/"))
        return num / den if den else None
    return None
