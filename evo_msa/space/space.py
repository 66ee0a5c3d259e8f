"""Search spaces: a YAML file of genes, decoded from a fixed-length genome in [0, 1]^n.

Every gene occupies one or more slots of the genome, so blend crossover (HAEMSA eq. 9) and
Gaussian mutation (eq. 10) apply to all genes alike; decoding maps slots to config values:

    int          low + floor(u * (high - low + 1)), optionally on a log scale (log: true)
    float        low + u * (high - low)
    log-float    exp(log low + u * (log high - log low))
    categorical  choices[floor(u * k)]       unordered: uniform crossover, resampling mutation
    ordinal      choices[floor(u * k)]       ordered (a grid such as batch sizes): numeric operators
    mask         one slot per choice, on when u >= 0.5; never empty (the largest slot wins);
                 `always: [text]` keeps those on without a slot (e.g. the text a pretrained
                 encoder reads)

Genes address the run config by dotted path (`model.depth`) when the space's evaluator is HAEMSA
(the default); a space whose `evaluator:` is a lookup table (`{table: nb201:cifar10}`) names
the table's parameters plainly and is checked against the table by its evaluator.

A gene with `count: K` fills a list field (e.g. model.level_widths): K slots, one per level.
Levels deeper than the decoded depth keep their slots (dormant, not discarded) but are left
out of the architecture key, so they never make two identical networks look different.
"""
from __future__ import annotations

import json
import math
import random
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from evo_msa.config import (
    RunConfig,
    config_paths,
    first_key,
    is_int,
    kind_of,
    read_yaml,
    renamed_path,
)
from evo_msa.data.dataset import MODALITIES
from evo_msa.errors import UserError, brief, did_you_mean
from evo_msa.space.fidelity import Fidelity
from evo_msa.space.fitness import Fitness

GENE_TYPES = ("int", "float", "log-float", "categorical", "ordinal", "mask")
TOP_KEYS = ("name", "description", "evaluator", "genes", "fixed", "fitness", "constraints",
            "operators", "fidelity", "final")
UNORDERED = ("categorical", "mask")  # genes whose slots are choices without an order
# variation operators per kind of slot (see nas.strategies.operators)
CROSSOVERS, MUTATIONS = ("blend", "uniform"), ("gaussian", "resample")
DEFAULT_OPERATORS = {"ordered": {"crossover": "blend", "mutation": "gaussian"},
                     "unordered": {"crossover": "uniform", "mutation": "resample"}}
GENE_KEYS = {"type", "low", "high", "log", "choices", "count", "always"}


@dataclass
class Gene:
    """One gene: a config field (or a table's parameter) and how genome slots in [0, 1] decode into
    its values."""

    path: str  # dotted config path, e.g. "model.depth"
    type: str
    low: float | None = None
    high: float | None = None
    log: bool = False
    choices: list[Any] | None = None
    count: int = 1  # >1: a list-valued field, one slot per element
    always: list[str] = field(default_factory=list)  # a mask's choices that are always on

    @property
    def size(self) -> int:
        """Genome slots it takes (one per choice of a mask, one per element of a list)."""
        return len(self.choices) if self.type == "mask" else self.count

    @property
    def ordered(self) -> bool:
        """Do nearby slot values mean nearby settings? (Blend crossover and Gaussian mutation
        make sense only then.)"""
        return self.type not in UNORDERED

    def decode(self, u: list[float], available: set[str] | None = None) -> Any:
        """The value of the slots `u` (a mask keeps only choices in `available`)."""
        if self.type == "mask":
            on = [c for c in self.always if _ok(c, available)]
            on += [c for c, x in zip(self.choices, u) if x >= 0.5 and _ok(c, available)]
            if not on:  # never empty: keep the strongest available choice
                ranked = sorted(zip(u, self.choices), key=lambda p: -p[0])
                on = [next((c for _, c in ranked if _ok(c, available)), ranked[0][1])]
            return [c for c in (*self.always, *self.choices) if c in on]
        values = [self._scalar(x) for x in u]
        return values if self.count > 1 else values[0]

    def _scalar(self, u: float) -> Any:
        u = min(max(u, 0.0), 1.0)
        if self.type in ("categorical", "ordinal"):
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
    """A search space: its genes, fixed fields, fitness, constraints and fidelity."""

    name: str
    genes: list[Gene]
    fixed: dict[str, Any] = field(default_factory=dict)
    fitness: Fitness = field(default_factory=Fitness)  # what the search optimises
    max_params: int | None = None  # cheap constraint, checked before any training
    source: str = "space"
    evaluator: dict = field(default_factory=lambda: {"kind": "haemsa"})  # what measures a genome
    operators: dict = field(default_factory=lambda: {k: dict(v) for k, v in
                                                     DEFAULT_OPERATORS.items()})
    fidelity: Fidelity = field(default_factory=Fidelity.default)  # successive halving
    final: dict[str, int] = field(default_factory=dict)  # defaults of the final retraining

    @property
    def haemsa(self) -> bool:
        """Genes are run-config paths, trained as HAEMSA networks."""
        return self.evaluator["kind"] == "haemsa"

    @property
    def size(self) -> int:
        """The genome's length (slots of every gene)."""
        return sum(g.size for g in self.genes)

    def sample(self, rng: random.Random) -> list[float]:
        """A genome drawn uniformly."""
        return [rng.random() for _ in range(self.size)]

    def slot_genes(self) -> list[Gene]:
        """The gene that owns each genome slot, in slot order."""
        return [g for g in self.genes for _ in range(g.size)]

    def clip(self, genome: list[float]) -> list[float]:
        """The genome with every slot inside [0, 1]."""
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

    def values_of(self, path: str) -> list:
        """The values config `path` may take in the genomes: a gene's choices, a ranged gene's
        bounds, else its one value (fixed, or the run config's default)."""
        gene = next((g for g in self.genes if g.path == path), None)
        if gene is None:
            section, _, key = path.partition(".")
            return [getattr(getattr(self.to_config([0.5] * self.size), section), key)]
        return list(gene.choices) if gene.choices else [gene.low, gene.high]

    @property
    def fine_tunes(self) -> bool:
        """Some genomes fine-tune a pretrained text encoder (pretrained.model and
        finetune_layers != 0)."""
        return (self.haemsa and any(self.values_of("pretrained.model"))
                and any(k != 0 for k in self.values_of("pretrained.finetune_layers")))

    def to_config(self, genome: list[float], available=None,
                  base: RunConfig | None = None) -> RunConfig:
        """The HAEMSA run config a genome decodes into (spaces of the HAEMSA evaluator)."""
        if not self.haemsa:
            raise UserError(f"{self.source}: the genes of a {self.evaluator['kind']} space do "
                            f"not decode into a HAEMSA run config")
        cfg = (base or RunConfig()).with_overrides(self.fixed, self.source)
        return cfg.with_overrides(self.decode(genome, available), self.source)

    @staticmethod
    def architecture_key(cfg: RunConfig, seq_lens: dict[str, int] | None = None) -> str:
        """Identity of what gets trained: dormant levels and unused settings left out. A
        sequence encoder counts only for a modality in the mask that is a sequence (T > 1 in
        `seq_lens`, the data's; without it every modality may be), resolved from its own
        field or model.encoder: on vectors every encoder is the same network."""
        d = cfg.to_dict()
        model = d["model"]
        if cfg.pretrained.model and seq_lens is not None:  # text: the encoder's token states
            seq_lens = {**seq_lens, "text": cfg.pretrained.max_tokens}
        for name in ("encoder", *(f"{m}_encoder" for m in MODALITIES)):
            model.pop(name)
        model["encoders"] = {m: cfg.model.encoder_of(m) for m in model["modalities"]
                             if seq_lens is None or seq_lens.get(m, 1) > 1}
        model["level_widths"] = model["level_widths"][:model["depth"]]
        # settings added since runs were recorded are left out at their defaults: the
        # recorded runs' keys, hence their training seeds (policies.seed_start), stay
        if not model["text_skip"] or "text" not in model["modalities"]:
            model.pop("text_skip")
        # the identity predates the section's rename (objective -> loss): the recorded runs'
        # keys, hence their training seeds (policies.seed_start), stay what they were
        objective = d["objective"] = d.pop("loss")
        for rate in ("dropout", "input_dropout", "modality_dropout"):  # kept in steps of 1/256
            model[rate] = _rate_byte(model[rate])
        if len(model["modalities"]) == 1:  # nothing to contrast with, no other modality to keep
            objective["lambda_contrast"] = 0
            model.pop("modality_dropout")
        if objective["weighting"] != "gdwg":
            objective.pop("gdwg_tau")
        if objective["lambda_contrast"] == 0:
            objective.pop("contrast_tau")
        if objective["regression_loss"] != "smooth_l1":
            objective.pop("smooth_beta")
        if objective["lambda_coarse"] == 0:  # label smoothing of a task nobody trains
            objective.pop("coarse_smoothing")
        if not model["unified"]:  # no unified expert: nothing to transfer or predict
            objective.pop("gamma_kl")
            objective.pop("lambda_unified")
        pretrained = d["pretrained"]
        if not pretrained["model"] or "text" not in model["modalities"]:
            d.pop("pretrained")  # the data's text features (or no text): no encoder at all
        elif pretrained["finetune_layers"] == 0:  # frozen: nothing trains at these rates
            for name in ("lr", "layer_decay", "warmup", "schedule"):
                pretrained.pop(name)
        if pretrained.get("schedule") == "constant":  # the default (see text_skip above)
            pretrained.pop("schedule")
        return json.dumps(d, sort_keys=True)


def _rate_byte(rate: float) -> int:
    """The byte a dropout rate becomes in the model: models.layers.keep_threshold of the rate as
    float32 (round half to even of 256 rate, at most 255), without torch."""
    return int(min(255, max(0, np.round(np.float32(rate) * np.float32(256)))))


def load_space(path: str | Path) -> SearchSpace:
    """The search space of a YAML file; every problem is a one-line UserError naming it."""
    return parse_space(read_yaml(path, "search-space"), str(path))


def parse_space(raw: Any, source: str = "space") -> SearchSpace:
    """Validate a search-space mapping (a parsed YAML file); every problem is a one-line
    UserError naming `source` and the gene or key."""
    if not isinstance(raw, dict):
        raise UserError(f"{source}: expected a mapping with keys {', '.join(TOP_KEYS)}, "
                        f"got {kind_of(raw)}")
    unknown = [k for k in raw if k not in TOP_KEYS]
    if unknown:
        raise UserError(f"{source}: unknown key {brief(first_key(unknown))}"
                        f"{did_you_mean(first_key(unknown), TOP_KEYS)} "
                        f"(expected {', '.join(TOP_KEYS)})")
    name = raw.get("name", Path(source).stem or "space")
    if not isinstance(name, str) or not name.strip() or "\n" in name:
        raise UserError(f"{source}: 'name' must be a one-line string, got {brief(name)}")
    if not isinstance(raw.get("description", ""), (str, type(None))):
        raise UserError(f"{source}: 'description' must be a string, "
                        f"got {kind_of(raw['description'])}")
    genes_raw = raw.get("genes")
    if not isinstance(genes_raw, dict) or not genes_raw:
        raise UserError(f"{source}: 'genes' must be a non-empty mapping of config path -> spec, "
                        f"got {kind_of(genes_raw) if not isinstance(genes_raw, dict) else 'nothing'}")
    evaluator = _evaluator(raw.get("evaluator"), source)
    haemsa = evaluator["kind"] == "haemsa"
    defaults = RunConfig().to_dict() if haemsa else None
    genes = [_parse_gene(renamed_path(name, source) if haemsa else name, spec, defaults, source)
             for name, spec in genes_raw.items()]

    fixed = _section(raw, "fixed", source)
    if haemsa:
        fixed = {renamed_path(k, f"{source}: fixed"): v for k, v in fixed.items()}
    bad = [k for k in fixed if not isinstance(k, str)]
    if bad:
        raise UserError(f"{source}: fixed: {brief(bad[0])} is not "
                        + ("a config field (expected section.field, e.g. model.depth)" if haemsa
                           else "a parameter name"))
    overlap = set(fixed) & {g.path for g in genes}
    if overlap:
        raise UserError(f"{source}: {brief(sorted(overlap)[0])} is both a gene and fixed")
    if haemsa:
        RunConfig().with_overrides(fixed, f"{source}: fixed")  # validates paths and types

    fitness = Fitness.parse(raw.get("fitness"), source)
    if "fidelity" in raw and not haemsa:
        raise UserError(f"{source}: fidelity: a lookup table's trainings have no epochs to "
                        "halve (fidelity applies to HAEMSA trainings)")
    fidelity = Fidelity.parse(raw.get("fidelity"), source)

    space = SearchSpace(name=name, genes=genes, fixed=fixed, fitness=fitness,
                        max_params=_max_params(raw, source), source=source, evaluator=evaluator,
                        operators=_operators(raw.get("operators"), source), fidelity=fidelity,
                        final=_final(raw, source, haemsa))
    if haemsa:
        _check_decodes(space)
    if fidelity.screen and not space.fine_tunes:
        raise UserError(f"{source}: fidelity.screen: {fidelity.screen} screens genomes that "
                        f"fine-tune a pretrained text encoder; this space's never do "
                        f"(pretrained.model and pretrained.finetune_layers)")
    return space


def _max_params(raw: dict, source: str) -> int | None:
    """`constraints: {max_params: N}`: genomes with more parameters are rejected untrained."""
    constraints = _section(raw, "constraints", source)
    unknown = [k for k in constraints if k != "max_params"]
    if unknown:
        raise UserError(f"{source}: constraints: unknown key {brief(first_key(unknown))}"
                        f"{did_you_mean(first_key(unknown), ['max_params'])} (expected max_params)")
    max_params = constraints.get("max_params")
    if max_params is not None and (not is_int(max_params) or max_params <= 0):
        raise UserError(f"{source}: constraints.max_params must be a positive integer, "
                        f"got {brief(max_params)}")
    return max_params


FINAL_KEYS = {"epochs": 100_000, "ensemble": 100}  # key: its largest value


def _final(raw: dict, source: str, haemsa: bool) -> dict[str, int]:
    """`final: {epochs: N, ensemble: K}`: this space's defaults for the final retraining, where
    the engine's (50 epochs with early stopping, an ensemble of 3) do not suit it; the CLI's
    --final-epochs / --ensemble override them. A space that fine-tunes a pretrained encoder
    says `epochs:` its fitness budget: its schedule (warm-up, then a few epochs) is the whole
    training, and a final model 10x longer would overfit and cost 10x."""
    final = _section(raw, "final", source)
    if final and not haemsa:
        raise UserError(f"{source}: final: a lookup table's space has no final retraining")
    for key, value in final.items():
        if key not in FINAL_KEYS:
            raise UserError(f"{source}: final: unknown key {brief(key)}"
                            f"{did_you_mean(str(key), FINAL_KEYS)} (expected epochs, ensemble)")
        low = 1 if key == "epochs" else 0
        if not is_int(value) or not low <= value <= FINAL_KEYS[key]:
            raise UserError(f"{source}: final.{key} must be an integer in "
                            f"{low}..{FINAL_KEYS[key]}, got {brief(value)}")
    return dict(final)


def _operators(raw: Any, source: str) -> dict:
    """`operators:` {ordered|unordered: {crossover: blend|uniform, mutation: gaussian|resample}},
    each key optional."""
    out = {k: dict(v) for k, v in DEFAULT_OPERATORS.items()}
    if raw is None:
        return out
    if not isinstance(raw, dict) or set(raw) - set(out):
        raise UserError(f"{source}: operators: expected a mapping with ordered and/or unordered "
                        f"(each {{crossover: blend|uniform, mutation: gaussian|resample}})")
    for kind, spec in raw.items():
        allowed = {"crossover": CROSSOVERS, "mutation": MUTATIONS}
        if not isinstance(spec, dict) or set(spec) - set(allowed):
            raise UserError(f"{source}: operators.{kind}: expected crossover and/or mutation")
        for op, value in spec.items():
            if value not in allowed[op]:
                raise UserError(f"{source}: operators.{kind}.{op} must be one of "
                                f"{', '.join(allowed[op])}, got {value!r:.40}")
            out[kind][op] = value
    return out


TABLE_SPEC = re.compile(r"[A-Za-z0-9_]+:[A-Za-z0-9_]+")


def _evaluator(raw: Any, source: str) -> dict:
    """`evaluator:` absent or `haemsa` (HAEMSA trainings), or `{table: BENCH:DATASET}` (a
    lookup table of recorded trainings, e.g. nb201:cifar10; checked when it is loaded)."""
    if raw is None or raw == "haemsa":
        return {"kind": "haemsa"}
    if (isinstance(raw, dict) and set(raw) == {"table"} and isinstance(raw["table"], str)
            and TABLE_SPEC.fullmatch(raw["table"])):
        return {"kind": "table", "table": raw["table"]}
    raise UserError(f"{source}: evaluator: expected haemsa or {{table: BENCH:DATASET}} "
                    f"(e.g. nb201:cifar10), got {raw!r:.60}")


def _check_decodes(space: SearchSpace) -> None:
    """Every gene must decode to valid configs: all genes at their low end, all at their high
    end (catches e.g. depth > 4), and every choice of every categorical gene."""
    trials = [([u] * space.size, f"decoding genes at their {'low' if u == 0 else 'high'} end")
              for u in (0.0, 1.0)]
    i = 0
    for g in space.genes:
        if g.type in ("categorical", "ordinal"):
            checked = set()
            for j, choice in enumerate(g.choices):
                if repr(choice) in checked:
                    continue
                checked.add(repr(choice))
                genome = [0.0] * space.size
                genome[i:i + g.size] = [(j + 0.5) / len(g.choices)] * g.size
                trials.append((genome, f"decoding gene {g.path!r} as {brief(choice)}"))
        i += g.size
    for genome, what in trials:
        try:
            space.to_config(genome)
        except UserError as exc:
            raise UserError(f"{exc} ({what})") from None
        except (TypeError, ValueError, OverflowError, ArithmeticError) as exc:
            detail = " ".join(str(exc).split())[:120]
            raise UserError(f"{space.source}: cannot decode the genes ({what}): "
                            f"{type(exc).__name__}: {detail}") from None


def _section(raw: dict, key: str, source: str) -> dict:
    """An optional mapping (absent or empty `key:` = {})."""
    value = raw.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise UserError(f"{source}: '{key}' must be a mapping, got {kind_of(value)}")
    return value


MAX_GENE_COUNT = 64  # slots of one list-valued gene (model.level_widths has 4 meaningful ones)
MAX_CHOICES = 256  # choices of a categorical or mask gene (each one is decoded once to check it)
_TYPE_KEYS = {"int": {"type", "low", "high", "log", "count"},
              "float": {"type", "low", "high", "count"},
              "log-float": {"type", "low", "high", "log", "count"},
              "categorical": {"type", "choices", "count"},
              "ordinal": {"type", "choices", "count"},
              "mask": {"type", "choices", "always"}}


def _bound(where: str, label: str, value: Any) -> float:
    """A gene bound: a finite number (not a bool, not a string)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise UserError(f"{where}: {label} must be a number, got {brief(value)} "
                        f"({type(value).__name__})")
    try:
        finite = math.isfinite(float(value))
    except OverflowError:
        finite = False
    if not finite:
        raise UserError(f"{where}: {label} must be a finite number, got {brief(value)}")
    return value


def _parse_gene(name: Any, spec: Any, defaults: dict | None, source: str) -> Gene:
    """`defaults`: the run config's fields (HAEMSA spaces); None: plain parameter names."""
    where = f"{source}: gene {brief(name)}"
    if defaults is None:
        if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.\-]*", name):
            raise UserError(f"{where}: expected a parameter name (letters, digits, _ . -)")
    elif not isinstance(name, str) or name.partition(".")[0] not in defaults or \
            name.partition(".")[2] not in defaults[name.partition(".")[0]]:
        raise UserError(f"{where}: not a config field{did_you_mean(name, config_paths(defaults))} "
                        "(expected section.field, e.g. model.depth)")
    if not isinstance(spec, dict):
        raise UserError(f"{where}: expected a mapping with 'type' and bounds or choices, "
                        f"got {kind_of(spec)}")
    unknown = [k for k in spec if k not in GENE_KEYS]
    if unknown:
        raise UserError(f"{where}: unknown key {brief(first_key(unknown))}"
                        f"{did_you_mean(first_key(unknown), GENE_KEYS)} "
                        f"(expected {', '.join(sorted(GENE_KEYS))})")
    kind = spec.get("type")
    if not isinstance(kind, str) or kind not in GENE_TYPES:
        raise UserError(f"{where}: type must be one of {', '.join(GENE_TYPES)}, "
                        f"got {brief(kind)}")
    extra = [k for k in spec if k not in _TYPE_KEYS[kind]]
    if extra:
        hint = " (a log-scaled float is type: log-float)" if extra == ["log"] else ""
        raise UserError(f"{where}: key {brief(first_key(extra))} does not apply to a {kind} gene "
                        f"(it takes {', '.join(sorted(_TYPE_KEYS[kind] - {'type'}))}){hint}")
    count = spec.get("count", 1)
    if not is_int(count) or not 1 <= count <= MAX_GENE_COUNT:
        raise UserError(f"{where}: count must be an integer in 1..{MAX_GENE_COUNT}, "
                        f"got {brief(count)}")
    section, _, key = name.partition(".")
    if count > 1 and defaults is not None and not isinstance(defaults[section][key], list):
        raise UserError(f"{where}: count > 1 needs a list field (e.g. model.level_widths), "
                        f"but {name} holds one value")
    if kind in ("categorical", "ordinal", "mask"):
        choices = _choices(where, kind, spec.get("choices"))
        always = []
        if "always" in spec:  # masks only: their choices are strings
            always = _choices(where, kind, spec["always"], "always")
            both = sorted(set(always) & set(choices))
            if both:
                raise UserError(f"{where}: {brief(both[0])} is both in 'always' and in "
                                "'choices' (a choice always on needs no slot)")
        return Gene(name, kind, choices=choices, count=count, always=always)
    return _ranged_gene(where, name, kind, spec, count)


def _choices(where: str, kind: str, choices: Any, key: str = "choices") -> list:
    """The choices of a categorical, ordinal or mask gene (or a mask's `always`), checked."""
    if not isinstance(choices, list) or not choices:
        raise UserError(f"{where}: {kind} needs a non-empty list '{key}', "
                        f"got {brief(choices)}")
    if len(choices) > MAX_CHOICES:
        raise UserError(f"{where}: at most {MAX_CHOICES} choices, got {len(choices)}")
    if kind == "mask":
        bad = [c for c in choices if not isinstance(c, str)]
        if bad:
            raise UserError(f"{where}: mask {key} must be strings, got {brief(bad[0])}")
        if len(set(choices)) < len(choices):
            raise UserError(f"{where}: mask {key} must be distinct, got {brief(choices)}")
    return list(choices)


def _ranged_gene(where: str, name: str, kind: str, spec: dict, count: int) -> Gene:
    """An int, float or log-float gene: its bounds and scale, checked."""
    low = _bound(where, "low", spec.get("low"))
    high = _bound(where, "high", spec.get("high"))
    if kind == "int" and (float(low) != int(low) or float(high) != int(high)):
        raise UserError(f"{where}: int bounds must be integers, got low={low}, high={high}")
    if low > high:
        raise UserError(f"{where}: low ({low}) > high ({high})")
    log = spec.get("log", False)
    if not isinstance(log, bool):
        raise UserError(f"{where}: log must be true or false, got {brief(log)}")
    log = log or kind == "log-float"
    if log and low <= 0:
        raise UserError(f"{where}: a log scale needs low > 0, got {low}")
    return Gene(name, kind, low=low, high=high, log=log and kind == "int", count=count)
