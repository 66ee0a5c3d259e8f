"""The options of a search, declared once: the CLI's flags, their help and choices, and the
checks every caller (CLI, Python API, a resumed search.json) goes through."""
from __future__ import annotations

import argparse
import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, Callable

from evo_msa.errors import UserError, brief, did_you_mean
from evo_msa.nas.selection import FINALISTS, SHARE
from evo_msa.nas.strategies.base import MAX_GENERATIONS, MAX_POP, MAX_TRAININGS


def option(default: Any, help: str, *, check: Callable[[Any], bool] | None = None,
           expected: str = "", choices: tuple | None = None, nargs: str | None = None,
           cli: bool = True, metavar: str | None = None):
    """A SearchOptions field with what the CLI and the validation need to know about it."""
    meta = {"help": help, "check": check, "expected": expected, "choices": choices,
            "nargs": nargs, "cli": cli, "metavar": metavar}
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: type(default)(default), metadata=meta)
    return field(default=default, metadata=meta)


# Upper bounds: a typo such as --pop 1000000000 (or the same number edited into a run's
# search.json) fails here in one line instead of allocating for minutes.
# (pop, generations and trainings: the strategies' own bounds, imported above)
MAX_FINAL_TOP = 100  # genomes retrained at the end
MAX_COMPARE = 20  # baselines given to --compare
ENSEMBLE = 3  # architectures the final ensemble chooses from (see nas.ensemble)
FINAL_EPOCHS = 50  # epoch cap of the final retraining (early stopping decides)
MAX_FINALISTS = 100  # configurations re-trained at the end of a search
MAX_SHARE = 0.5  # of the budget, for the finalists: the search keeps at least half
MAX_EPOCHS = 100_000  # as config.MAX_COUNT
MAX_SEEDS = 100  # seeds of one training (final or `evo-msa train`)
MAX_SEED = 2 ** 32 - 1  # numpy's seed range
MAX_BATCH_GENOMES = 1024
MAX_CPUS = 1024.0
MAX_GPUS = 64.0


def _int_in(low: int, high: int, none_ok: bool = False) -> Callable[[Any], bool]:
    return lambda v: (v is None and none_ok) or (
        isinstance(v, int) and not isinstance(v, bool) and low <= v <= high)


def _number_in(low: float, high: float, low_open: bool = False) -> Callable[[Any], bool]:
    def check(v) -> bool:
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            return False
        return (low < v if low_open else low <= v) and v <= high
    return check


def _text(none_ok: bool = False) -> Callable[[Any], bool]:
    return lambda v: (v is None and none_ok) or (isinstance(v, str) and "\n" not in v)


def seeds_problem(seeds: Any) -> str | None:
    """What is wrong with a list of training seeds, or None."""
    if not isinstance(seeds, (list, tuple)) or not all(_int_in(0, MAX_SEED)(s) for s in seeds):
        return f"a list of integers in 0..{MAX_SEED}"
    if len(seeds) > MAX_SEEDS:
        return f"at most {MAX_SEEDS} seeds, got {len(seeds)}"
    if len(set(seeds)) < len(seeds):
        return f"distinct seeds, got {brief(list(seeds))}"
    return None


@dataclass
class SearchOptions:
    """Every option of a search (`evo-msa search` flags, `evo_msa.search` keywords, search.json);
    each field's metadata holds its help text and bounds."""

    space: str = option("", "search-space YAML (e.g. search_spaces/haemsa.yaml)", check=_text(),
                        expected="a path")
    data: str = option("synthetic:mosi", "an MMSA-layout pickle, or synthetic:mosi / "
                       "synthetic:iemocap / synthetic:sims (e.g. synthetic:mosi?seed=1&noise=vision)",
                       check=_text(), expected="a path or synthetic:NAME")
    pop: int = option(32, "population size", check=_int_in(2, MAX_POP),
                      expected=f"an integer in 2..{MAX_POP}")
    generations: int = option(6, "budget: pop x generations trainings, for every strategy",
                              check=_int_in(1, MAX_GENERATIONS),
                              expected=f"an integer in 1..{MAX_GENERATIONS}")
    budget: int | None = option(None, "trainings the search may spend (default: pop x "
                                "generations); a genome answered without training (a known "
                                "architecture) costs none",
                                check=_int_in(1, MAX_TRAININGS, True),
                                expected=f"an integer in 1..{MAX_TRAININGS:,}")
    patience: int | None = option(None, "stop when the best fitness has not improved for this "
                                  "many generations", check=_int_in(1, MAX_GENERATIONS, True),
                                  expected=f"an integer in 1..{MAX_GENERATIONS}")
    strategy: str = option("evolution", "random: uniform samples with the same budget "
                           "(the baseline); tpe: Optuna's TPE; cmaes: CMA-ES with margin "
                           "(the cmaes package); both need evo-msa[bench]",
                           choices=("evolution", "random", "tpe", "cmaes"))
    mode: str = option("auto", "auto: surrogate with one objective, generational with several; "
                       "surrogate (evolution proposes, a predictor picks), generational (the "
                       "paper; NSGA-II with several objectives) or steady-state (asynchronous "
                       "aging evolution)",
                       choices=("auto", "surrogate", "generational", "steady-state"))
    finalists: int = option(FINALISTS, "configurations re-trained at the end of the search, "
                            "for every strategy: the pick is the one with the best robust "
                            "estimate (their mean, shrunk towards the neighbours')",
                            check=_int_in(1, MAX_FINALISTS),
                            expected=f"an integer in 1..{MAX_FINALISTS}")
    finalist_share: float = option(SHARE, "share of the budget the finalists' re-trainings "
                                   "take (0: none; the pick is then the best robust estimate "
                                   "of single trainings)", check=_number_in(0, MAX_SHARE),
                                   expected=f"a number in 0..{MAX_SHARE}")
    seed: int = option(0, "seed of the search and of every trial", check=_int_in(0, MAX_SEED),
                       expected=f"an integer in 0..{MAX_SEED}")
    device: str = option("auto", "trials use CUDA when --gpus-per-trial > 0 (auto)",
                         choices=("auto", "cpu", "cuda"))
    cpus_per_trial: float = option(1.0, "CPUs reserved per trial",
                                   check=_number_in(0, MAX_CPUS, low_open=True),
                                   expected=f"a number > 0 and <= {MAX_CPUS:g}")
    gpus_per_trial: float = option(0.0, "GPU share per trial: 0.25 runs four trials on one GPU "
                                   "(a scheduling share, not a memory cap)",
                                   check=_number_in(0, MAX_GPUS),
                                   expected=f"a number in 0..{MAX_GPUS:g} (0.25: four trials "
                                   "per GPU)")
    batch_genomes: int = option(0, "genomes one trial trains together as one population "
                                "(0: from the resources: a generation fills the trial slots "
                                "once on GPUs, twice on CPUs)",
                                check=_int_in(0, MAX_BATCH_GENOMES),
                                expected=f"an integer in 0..{MAX_BATCH_GENOMES} (0 = auto)")
    asha: bool = option(False, "stop weak trials early (ASHA; a trial is a batch of genomes)",
                        check=lambda v: isinstance(v, bool), expected="true or false")
    address: str | None = option(None, "Ray cluster to join ('auto' for the running one); "
                                 "default: a local Ray", check=_text(none_ok=True),
                                 expected="a Ray address such as auto or HOST:PORT")
    data_on_nodes: bool = option(False, "trials read --data themselves, from a path every node "
                                 "sees (a shared filesystem), instead of the driver sending it "
                                 "through Ray's object store: for data too big for that",
                                 check=lambda v: isinstance(v, bool), expected="true or false")
    final_seeds: list[int] = option([0, 1, 2, 3, 4], "seeds of the final retraining of the best "
                                    "genome(s); none skips it", nargs="*", metavar="SEED",
                                    check=lambda v: seeds_problem(v) is None,
                                    expected=f"a list of at most {MAX_SEEDS} distinct integers "
                                    f"in 0..{MAX_SEED}")
    final_top: int = option(0, "retrain the K best genomes on the first objective (0: the best "
                            "one, or the Pareto front when the fitness has several objectives)",
                            check=_int_in(0, MAX_FINAL_TOP),
                            expected=f"an integer in 0..{MAX_FINAL_TOP} (0 = auto)")
    ensemble: int | None = option(None, "greedy ensemble (Caruana, with replacement) of the K "
                                  "best distinct architectures, each retrained with the final "
                                  "seeds (K-1 extra final trainings); valid decides between it "
                                  "and the best single model (0 or 1: no ensemble; default: the "
                                  f"space's final.ensemble, else {ENSEMBLE})",
                                  check=_int_in(0, MAX_FINAL_TOP, none_ok=True),
                                  expected=f"an integer in 0..{MAX_FINAL_TOP} (0 or 1 = off)",
                                  metavar="K")
    compare: list[str] = option([], "output folders of `evo-msa baseline` (e.g. --model "
                                "finetune) or `evo-msa train` on the same data: the verdict "
                                "compares the final model with them too, beside the built-in "
                                "ridge / softmax", nargs="*", metavar="DIR",
                                check=lambda v: isinstance(v, list) and len(v) <= MAX_COMPARE
                                and all(isinstance(x, str) and x for x in v),
                                expected=f"a list of at most {MAX_COMPARE} folders")
    final_epochs: int | None = option(None, "epoch cap of the final retraining (early "
                                      "stopping on valid; default: the space's final.epochs, "
                                      f"else {FINAL_EPOCHS})",
                                      check=_int_in(1, MAX_EPOCHS, none_ok=True),
                                      expected=f"an integer in 1..{MAX_EPOCHS}")
    track: str | None = option(None, "tensorboard: every evaluation's curves and genes "
                               "(<run>/tensorboard); mlflow: every evaluation and the final "
                               "model as MLflow runs (<run>/mlflow.db); both need "
                               "evo-msa[track]", choices=("tensorboard", "mlflow"))
    out: str | None = option(None, "run directory (default runs/<timestamp>)", cli=False,
                             check=_text(none_ok=True), expected="a path")
    evolution: dict = option({}, "StrategySettings overrides", cli=False,
                             check=lambda v: isinstance(v, dict),
                             expected="a mapping of StrategySettings fields")

    @property
    def strategy_kind(self) -> str:
        """The strategy's name (auto: decided by the number of objectives, see kind_for)."""
        return self.mode if self.strategy == "evolution" else self.strategy

    def kind_for(self, objectives: int) -> str:
        """The strategy that runs for `objectives` fitness objectives (auto: the surrogate with one,
        generational with several)."""
        kind = self.strategy_kind
        if kind == "auto":
            return "surrogate" if objectives == 1 else "generational"
        return kind

    @property
    def trial_device(self) -> str:
        """Where a trial trains: cuda when it gets a GPU, else cpu."""
        return "cuda" if self.gpus_per_trial > 0 and self.device != "cpu" else "cpu"

    def validate(self) -> None:
        """Check every option against its bounds: a one-line UserError naming the flag."""
        for f in dataclasses.fields(self):
            value, meta = getattr(self, f.name), f.metadata
            flag = f"--{f.name.replace('_', '-')}" if meta.get("cli", True) else f.name
            optional = value is None and f.default is None
            if meta.get("choices") and value not in meta["choices"] and not optional:
                raise UserError(f"{flag} must be one of {', '.join(meta['choices'])}, "
                                f"got {brief(value)}")
            if meta.get("check") and not meta["check"](value):
                raise UserError(f"{flag} must be {meta['expected']}, got {brief(value)}")
        if self.budget is None and self.pop * self.generations > MAX_TRAININGS:
            raise UserError(f"--pop x --generations must be at most {MAX_TRAININGS:,} "
                            f"evaluations, got {self.pop * self.generations:,}")
        if self.device == "cuda" and self.gpus_per_trial == 0:
            raise UserError("--device cuda needs --gpus-per-trial > 0 (e.g. 0.25)")
        self.evolution_settings()  # unknown keys and bad values of `evolution`

    def evolution_settings(self):
        """The strategy's StrategySettings: pop, generations, budget and patience with the
        `evolution` overrides (a UserError for an unknown key or a bad value)."""
        from evo_msa.nas.strategies import StrategySettings

        return StrategySettings.from_options(self.pop, self.generations, self.budget,
                                              self.patience, self.evolution)

    # ---- the CLI and search.json -----------------------------------------------------------
    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        """Add every option as a command-line flag to `parser`."""
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
        """The options parsed from the command line (and `extra` keywords)."""
        names = {f.name for f in dataclasses.fields(cls) if f.metadata.get("cli", True)}
        return cls(**{n: getattr(args, n) for n in names}, **extra)

    @classmethod
    def given(cls, args: argparse.Namespace) -> list[str]:
        """The options set on the command line to something other than their default."""
        defaults = cls()
        return [f.name for f in dataclasses.fields(cls) if f.metadata.get("cli", True)
                and getattr(args, f.name) != getattr(defaults, f.name)]

    @classmethod
    def check_names(cls, names, source: str, also: tuple[str, ...] = ()) -> None:
        """A UserError naming the first of `names` that is no option, with the closest one
        ("unknown option 'popp', did you mean 'pop'?")."""
        known = [f.name for f in dataclasses.fields(cls)] + list(also)
        unknown = [k for k in names if k not in known]
        if unknown:
            raise UserError(f"{source}: unknown option {brief(unknown[0])}"
                            f"{did_you_mean(unknown[0], known)}")

    @classmethod
    def from_dict(cls, raw: Any, source: str) -> "SearchOptions":
        """Options saved in a run's search.json (older runs stored a seed count)."""
        if not isinstance(raw, dict):
            raise UserError(f"{source}: expected a mapping of search options")
        cls.check_names(raw, source, also=("provenance",))
        raw = {k: v for k, v in raw.items() if k != "provenance"}  # a record, not an option
        if isinstance(raw.get("final_seeds"), int):
            raw["final_seeds"] = list(range(raw["final_seeds"]))
        try:
            return cls(**raw)
        except TypeError as exc:
            raise UserError(f"{source}: {exc}") from None


def final_settings(opts, space) -> tuple[int, int]:
    """(epoch cap, ensemble candidates) of the final retraining: the option where given, else
    the space's `final:` section, else the engine's defaults."""
    epochs = opts.final_epochs or space.final.get("epochs", FINAL_EPOCHS)
    ensemble = opts.ensemble if opts.ensemble is not None else space.final.get("ensemble",
                                                                               ENSEMBLE)
    return epochs, ensemble
