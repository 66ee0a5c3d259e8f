"""The options of a search, declared once: the CLI's flags, their help and choices, and the
checks every caller (CLI, Python API, a resumed search.json) goes through."""
from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass, field
from typing import Any, Callable

from evo_msa.errors import UserError, brief


def option(default: Any, help: str, *, check: Callable[[Any], bool] | None = None,
           expected: str = "", choices: tuple | None = None, nargs: str | None = None,
           cli: bool = True, metavar: str | None = None):
    """A SearchOptions field with what the CLI and the validation need to know about it."""
    meta = {"help": help, "check": check, "expected": expected, "choices": choices,
            "nargs": nargs, "cli": cli, "metavar": metavar}
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: type(default)(default), metadata=meta)
    return field(default=default, metadata=meta)


def _positive(v) -> bool:
    return v is not None and v > 0


@dataclass
class SearchOptions:
    space: str = option("", "search-space YAML (e.g. search_spaces/haemsa.yaml)")
    data: str = option("synthetic:mosi", "an MMSA-layout pickle, or synthetic:mosi / "
                       "synthetic:iemocap / synthetic:sims (e.g. synthetic:mosi?seed=1&noise=vision)")
    pop: int = option(32, "population size", check=lambda v: v >= 2, expected="an integer >= 2")
    generations: int = option(6, "budget: pop x generations evaluations, for every strategy",
                              check=lambda v: v >= 1, expected="an integer >= 1")
    patience: int | None = option(None, "stop when the best fitness has not improved for this "
                                  "many generations", check=lambda v: v is None or v >= 1,
                                  expected="an integer >= 1")
    strategy: str = option("evolution", "random: uniform samples with the same budget (baseline)",
                           choices=("evolution", "random"))
    mode: str = option("generational", "generational (the paper; NSGA-II with several "
                       "objectives) or steady-state (asynchronous aging evolution)",
                       choices=("generational", "steady-state"))
    seed: int = option(0, "seed of the search and of every trial")
    device: str = option("auto", "trials use CUDA when --gpus-per-trial > 0 (auto)",
                         choices=("auto", "cpu", "cuda"))
    cpus_per_trial: float = option(1.0, "CPUs reserved per trial", check=_positive,
                                   expected="a number > 0")
    gpus_per_trial: float = option(0.0, "GPU share per trial: 0.25 runs four trials on one GPU "
                                   "(a scheduling share, not a memory cap)",
                                   check=lambda v: v >= 0,
                                   expected="a number >= 0 (0.25: four trials per GPU)")
    batch_genomes: int = option(0, "genomes one trial trains together as one population "
                                "(0: from the resources, so that a generation fills them)",
                                check=lambda v: v >= 0, expected="an integer >= 0 (0 = auto)")
    asha: bool = option(False, "stop weak trials early (ASHA; a trial is a batch of genomes)")
    address: str | None = option(None, "Ray cluster to join ('auto' for the running one); "
                                 "default: a local Ray")
    data_on_nodes: bool = option(False, "trials read --data themselves, from a path every node "
                                 "sees (a shared filesystem), instead of the driver sending it "
                                 "through Ray's object store: for data too big for that")
    final_seeds: list[int] = option([0, 1, 2, 3, 4], "seeds of the final retraining of the best "
                                    "genome(s); none skips it", nargs="*", metavar="SEED")
    final_top: int = option(0, "retrain the K best genomes on the first objective (0: the best "
                            "one, or the Pareto front when the fitness has several objectives)",
                            check=lambda v: v >= 0, expected="an integer >= 0 (0 = auto)")
    final_epochs: int = option(50, "epoch cap of the final retraining (early stopping on valid)",
                               check=lambda v: v >= 1, expected="an integer >= 1")
    track: str | None = option(None, "log every evaluation's curves and genes for TensorBoard "
                               "(<run>/tensorboard)", choices=("tensorboard",))
    out: str | None = option(None, "run directory (default runs/<timestamp>)", cli=False)
    evolution: dict = option({}, "EvolutionSettings overrides", cli=False)

    @property
    def strategy_kind(self) -> str:
        return "random" if self.strategy == "random" else self.mode

    @property
    def trial_device(self) -> str:
        return "cuda" if self.gpus_per_trial > 0 and self.device != "cpu" else "cpu"

    def validate(self) -> None:
        for f in dataclasses.fields(self):
            value, meta = getattr(self, f.name), f.metadata
            flag = f"--{f.name.replace('_', '-')}"
            optional = value is None and f.default is None
            if meta.get("choices") and value not in meta["choices"] and not optional:
                raise UserError(f"{flag} must be one of {', '.join(meta['choices'])}, "
                                f"got {brief(value)}")
            if meta.get("check") and not meta["check"](value):
                raise UserError(f"{flag} must be {meta['expected']}")
        if self.device == "cuda" and self.gpus_per_trial == 0:
            raise UserError("--device cuda needs --gpus-per-trial > 0 (e.g. 0.25)")

    # ---- the CLI and search.json -----------------------------------------------------------
    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        for f in dataclasses.fields(cls):
            meta = f.metadata
            if not meta.get("cli", True):
                continue
            flag = f"--{f.name.replace('_', '-')}"
            default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
            kw: dict[str, Any] = {"default": default, "help": meta["help"]}
            if f.type == "bool":
                kw["action"] = "store_true"
            else:
                kw["type"] = {"int": int, "float": float, "list[int]": int}.get(
                    f.type.replace(" | None", ""), str)
                if meta.get("choices"):
                    kw["choices"] = meta["choices"]
                if meta.get("nargs"):
                    kw["nargs"] = meta["nargs"]
                if meta.get("metavar"):
                    kw["metavar"] = meta["metavar"]
            parser.add_argument(flag, **kw)

    @classmethod
    def from_args(cls, args: argparse.Namespace, **extra) -> "SearchOptions":
        names = {f.name for f in dataclasses.fields(cls) if f.metadata.get("cli", True)}
        return cls(**{n: getattr(args, n) for n in names}, **extra)

    @classmethod
    def given(cls, args: argparse.Namespace) -> list[str]:
        """The options set on the command line to something other than their default."""
        defaults = cls()
        return [f.name for f in dataclasses.fields(cls) if f.metadata.get("cli", True)
                and getattr(args, f.name) != getattr(defaults, f.name)]

    @classmethod
    def from_dict(cls, raw: Any, source: str) -> "SearchOptions":
        """Options saved in a run's search.json (older runs stored a seed count)."""
        if not isinstance(raw, dict):
            raise UserError(f"{source}: expected a mapping of search options")
        known = {f.name for f in dataclasses.fields(cls)} | {"provenance"}
        unknown = [k for k in raw if k not in known]
        if unknown:
            raise UserError(f"{source}: unknown option {brief(unknown[0])}")
        raw = {k: v for k, v in raw.items() if k != "provenance"}  # a record, not an option
        if isinstance(raw.get("final_seeds"), int):
            raw["final_seeds"] = list(range(raw["final_seeds"]))
        try:
            return cls(**raw)
        except TypeError as exc:
            raise UserError(f"{source}: {exc}") from None
