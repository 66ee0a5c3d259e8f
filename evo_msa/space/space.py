"""Search spaces: a YAML file of genes, decoded from a fixed-length genome in [0, 1]^n.

Every gene occupies one or more slots of the genome, so blend crossover (HAEMSA eq. 9) and
Gaussian mutation (eq. 10) apply to all genes alike; decoding maps slots to config values:

    int          low + floor(u * (high - low + 1)), optionally on a log scale (log: true)
    float        low + u * (high - low)
    log-float    exp(log low + u * (log high - log low))
    categorical  choices[floor(u * k)]
    mask         one slot per choice, on when u >= 0.5; never empty (the largest slot wins)

A gene with `count: K` fills a list field (e.g. model.level_widths): K slots, one per level.
Levels deeper than the decoded depth keep their slots (dormant, not discarded) but are left
out of the architecture key, so they never make two identical networks look different.
"""
from __future__ import annotations

import json
import math
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from evo_msa.config import RunConfig, read_yaml
from evo_msa.errors import UserError

GENE_TYPES = ("int", "float", "log-float", "categorical", "mask")
TOP_KEYS = ("name", "description", "genes", "fixed", "fitness", "constraints")
GENE_KEYS = {"type", "low", "high", "log", "choices", "count", "default"}


@dataclass
class Gene:
    path: str  # dotted config path, e.g. "model.depth"
    type: str
    low: float | None = None
    high: float | None = None
    log: bool = False
    choices: list[Any] | None = None
    count: int = 1  # >1: a list-valued field, one slot per element

    @property
    def size(self) -> int:
        return len(self.choices) if self.type == "mask" else self.count

    def decode(self, u: list[float], available: set[str] | None = None) -> Any:
        if self.type == "mask":
            on = [c for c, x in zip(self.choices, u) if x >= 0.5 and _ok(c, available)]
            if not on:  # never empty: keep the strongest available choice
                ranked = sorted(zip(u, self.choices), key=lambda p: -p[0])
                on = [next((c for _, c in ranked if _ok(c, available)), ranked[0][1])]
            return [c for c in self.choices if c in on]
        values = [self._scalar(x) for x in u]
        return values if self.count > 1 else values[0]

    def _scalar(self, u: float) -> Any:
        u = min(max(u, 0.0), 1.0)
        if self.type == "categorical":
            return self.choices[min(int(u * len(self.choices)), len(self.choices) - 1)]
        lo, hi = float(self.low), float(self.high)
        if self.type == "log-float" or (self.type == "int" and self.log):
            value = math.exp(math.log(lo) + u * (math.log(hi) - math.log(lo)))
            return min(max(int(round(value)), int(lo)), int(hi)) if self.type == "int" else value
        if self.type == "int":
            return min(int(lo + math.floor(u * (hi - lo + 1))), int(hi))
        return lo + u * (hi - lo)


def _ok(choice: str, available: set[str] | None) -> bool:
    return available is None or choice in available


@dataclass
class SearchSpace:
    name: str
    genes: list[Gene]
    fixed: dict[str, Any] = field(default_factory=dict)
    metric: str = "loss"  # validation metric that is the fitness
    direction: str = "min"
    max_params: int | None = None  # cheap constraint, checked before any training
    source: str = "space"

    @property
    def size(self) -> int:
        return sum(g.size for g in self.genes)

    def sample(self, rng: random.Random) -> list[float]:
        return [rng.random() for _ in range(self.size)]

    def clip(self, genome: list[float]) -> list[float]:
        genome[:] = [min(max(float(x), 0.0), 1.0) for x in genome]
        return genome

    def decode(self, genome: list[float], available=None) -> dict[str, Any]:
        """Flat {config path: value}; `available` limits masks to the data's modalities."""
        if len(genome) != self.size:
            raise ValueError(f"genome has {len(genome)} genes, space {self.name} needs {self.size}")
        out, i = {}, 0
        avail = set(available) if available is not None else None
        for g in self.genes:
            out[g.path] = g.decode(list(genome[i:i + g.size]), avail)
            i += g.size
        return out

    def to_config(self, genome: list[float], available=None,
                  base: RunConfig | None = None) -> RunConfig:
        cfg = (base or RunConfig()).with_overrides(self.fixed, self.source)
        return cfg.with_overrides(self.decode(genome, available), self.source)

    @staticmethod
    def architecture_key(cfg: RunConfig) -> str:
        """Identity of what gets trained: dormant levels and unused settings left out."""
        d = cfg.to_dict()
        d["model"]["level_widths"] = d["model"]["level_widths"][:d["model"]["depth"]]
        if d["objective"]["weighting"] != "gdwg":
            d["objective"].pop("gdwg_tau")
        if d["objective"]["lambda_contrast"] == 0:
            d["objective"].pop("contrast_tau")
        return json.dumps(d, sort_keys=True)

    def to_yaml(self) -> str:
        return yaml.safe_dump(_raw_space(self), sort_keys=False)


def _raw_space(space: SearchSpace) -> dict:
    genes = {}
    for g in space.genes:
        spec = {"type": g.type}
        if g.type in ("categorical", "mask"):
            spec["choices"] = g.choices
        else:
            spec.update(low=g.low, high=g.high)
        if g.log:
            spec["log"] = True
        if g.count > 1:
            spec["count"] = g.count
        genes[g.path] = spec
    out = {"name": space.name, "genes": genes, "fixed": dict(space.fixed),
           "fitness": {"metric": space.metric, "direction": space.direction}}
    if space.max_params:
        out["constraints"] = {"max_params": space.max_params}
    return out


def load_space(path: str | Path) -> SearchSpace:
    return parse_space(read_yaml(path, "search-space"), str(path))


def parse_space(raw: Any, source: str = "space") -> SearchSpace:
    if not isinstance(raw, dict):
        raise UserError(f"{source}: expected a mapping with keys {', '.join(TOP_KEYS)}")
    unknown = set(raw) - set(TOP_KEYS)
    if unknown:
        raise UserError(f"{source}: unknown key {sorted(unknown)[0]!r} "
                        f"(expected {', '.join(TOP_KEYS)})")
    genes_raw = raw.get("genes")
    if not isinstance(genes_raw, dict) or not genes_raw:
        raise UserError(f"{source}: 'genes' must be a non-empty mapping of config path -> spec")
    defaults = RunConfig().to_dict()
    genes = [_parse_gene(name, spec, defaults, source) for name, spec in genes_raw.items()]

    fixed = raw.get("fixed") or {}
    if not isinstance(fixed, dict):
        raise UserError(f"{source}: 'fixed' must be a mapping of config path -> value")
    overlap = set(fixed) & {g.path for g in genes}
    if overlap:
        raise UserError(f"{source}: {sorted(overlap)[0]!r} is both a gene and fixed")
    RunConfig().with_overrides(fixed, f"{source}: fixed")  # validates paths and types

    fitness = raw.get("fitness") or {}
    if not isinstance(fitness, dict) or set(fitness) - {"metric", "direction"}:
        raise UserError(f"{source}: 'fitness' takes only 'metric' and 'direction'")
    metric = str(fitness.get("metric", "loss"))
    from evo_msa.metrics import metric_direction  # local: metrics pulls in scikit-learn
    direction = fitness.get("direction", metric_direction(metric))
    if direction not in ("min", "max"):
        raise UserError(f"{source}: fitness.direction must be 'min' or 'max', got {direction!r}")

    constraints = raw.get("constraints") or {}
    if not isinstance(constraints, dict) or set(constraints) - {"max_params"}:
        raise UserError(f"{source}: 'constraints' takes only 'max_params'")
    max_params = constraints.get("max_params")
    if max_params is not None and (not isinstance(max_params, int) or max_params <= 0):
        raise UserError(f"{source}: constraints.max_params must be a positive integer")

    space = SearchSpace(name=str(raw.get("name", Path(source).stem)), genes=genes, fixed=fixed,
                        metric=metric, direction=direction, max_params=max_params, source=source)
    # decoding the extreme genomes must give valid configs (catches e.g. depth > 4)
    for u in (0.0, 1.0):
        try:
            space.to_config([u] * space.size)
        except UserError as exc:
            raise UserError(f"{exc} (decoding genes at their {'low' if u == 0 else 'high'} end)")
    return space


def _parse_gene(name: str, spec: Any, defaults: dict, source: str) -> Gene:
    where = f"{source}: gene {name!r}"
    section, _, key = str(name).partition(".")
    if section not in defaults or key not in defaults[section]:
        raise UserError(f"{where}: not a config field (expected section.field, e.g. model.depth)")
    if not isinstance(spec, dict):
        raise UserError(f"{where}: expected a mapping with 'type' and bounds or choices")
    unknown = set(spec) - GENE_KEYS
    if unknown:
        raise UserError(f"{where}: unknown key {sorted(unknown)[0]!r} "
                        f"(expected {', '.join(sorted(GENE_KEYS))})")
    kind = spec.get("type")
    if kind not in GENE_TYPES:
        raise UserError(f"{where}: type must be one of {', '.join(GENE_TYPES)}, got {kind!r}")
    count = spec.get("count", 1)
    if not isinstance(count, int) or count < 1:
        raise UserError(f"{where}: count must be a positive integer, got {count!r}")
    if kind in ("categorical", "mask"):
        choices = spec.get("choices")
        if not isinstance(choices, list) or not choices:
            raise UserError(f"{where}: {kind} needs a non-empty list 'choices'")
        return Gene(name, kind, choices=list(choices), count=count)
    low, high = spec.get("low"), spec.get("high")
    for label, v in (("low", low), ("high", high)):
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise UserError(f"{where}: {label} must be a number, got {v!r}")
    if kind == "int" and (float(low) != int(low) or float(high) != int(high)):
        raise UserError(f"{where}: int bounds must be integers, got low={low}, high={high}")
    if low > high:
        raise UserError(f"{where}: low ({low}) > high ({high})")
    log = bool(spec.get("log", False)) or kind == "log-float"
    if log and low <= 0:
        raise UserError(f"{where}: a log scale needs low > 0, got {low}")
    return Gene(name, kind, low=low, high=high, log=log and kind == "int", count=count)
