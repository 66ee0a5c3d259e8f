"""Run configuration: what a genome decodes into and what `--arch ARCH.yaml` holds.

Four sections, one dataclass each:
  model:      the HAEMSA architecture (experts, hierarchy, widths, modality mask)
  loss:       the multi-task training loss (HAEMSA eq. 14 weights, DMMSA coarse/unimodal/
              contrast, weighting); `objective:` before, still read with a deprecation notice
  train:      the optimiser and the training budget
  pretrained: a pretrained text encoder and how much of it is fine-tuned

Search-space genes address fields by dotted path, e.g. ``model.depth`` or ``loss.gamma_kl``.
"""
from __future__ import annotations

import dataclasses
import math
import numbers
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from evo_msa.data.dataset import MODALITIES, SHORT_NAMES
from evo_msa.errors import UserError, brief, did_you_mean

MAX_DEPTH = 4
ENCODERS = ("mean", "gru", "conv", "attention")
WEIGHTINGS = ("fixed", "gdwg", "attention")
REGRESSION_LOSSES = ("l1", "smooth_l1")
ENCODER_SCHEDULES = ("constant", "linear")  # pretrained.schedule


@dataclass
class ModelConfig:
    """The `model` section: one member's HAEMSA architecture (see models.haemsa)."""

    modalities: list[str] = field(default_factory=lambda: list(MODALITIES))  # the modality mask
    encoder: str = "mean"  # sequence encoder of the specific experts when T > 1
    # per modality, where its sequences differ ("" = `encoder`); see `encoder_of`
    text_encoder: str = ""
    audio_encoder: str = ""
    vision_encoder: str = ""
    expert_dim: int = 64  # width of each modality-specific expert f_t, f_a, f_v (level 0)
    unified_dim: int = 32  # width of the unified expert f_s (level 0)
    depth: int = 1  # hierarchical fusion levels L (HAEMSA eq. 5); 0 = experts straight to towers
    level_widths: list[int] = field(default_factory=lambda: [64, 48, 32, 32])  # width per level
    tower_dim: int = 32  # hidden width of each task tower
    dropout: float = 0.4
    unified: bool = True  # the unified expert f_s (and with it the KL transfer); false = ablation
    task_attention: bool = True  # task-driven attention + feature gate; false = mean of experts
    input_dropout: float = 0.0  # dropout on the input features (small data)
    modality_dropout: float = 0.0  # chance that a whole modality is zeroed for a training sample
    # + a linear map of the text's mean token state straight to the main output (the plain
    # fine-tuned encoder's head, beside the experts' towers)
    text_skip: bool = False

    @property
    def widest(self) -> int:
        """The widest layer the network really has (levels past `depth` do not count): what a
        population pads its members to, and what `plan_populations` groups them by."""
        return max(self.expert_dim, self.unified_dim, *self.level_widths[:self.depth])

    def encoder_of(self, modality: str) -> str:
        """The sequence encoder of a modality's expert: its own field, else `encoder`. It
        matters only where the modality has T > 1 (on vectors every encoder is one MLP block)."""
        return getattr(self, f"{modality}_encoder") or self.encoder


@dataclass
class LossConfig:
    """The multi-task training loss: the weight of each term and how they are combined."""

    regression_loss: str = "l1"  # main regression loss: "l1" or "smooth_l1" (DMMSA eq. 7)
    smooth_beta: float = 1.0  # phi of the SmoothL1 loss
    coarse_classes: int = 3  # DMMSA coarse sentiment bins (2, 3, 5 or 7; SIMS: 2, 3 or 5)
    weighting: str = "fixed"  # "fixed" (genome lambdas), "gdwg" (DMMSA eqs. 13-14), "attention"
    lambda_main: float = 1.0  # lambda1: sentiment regression / emotion classification
    lambda_coarse: float = 0.3  # lambda2: coarse sentiment classification
    lambda_unimodal: float = 0.2  # lambda3: unimodal predictions from the specific experts
    lambda_unified: float = 0.2  # lambda4: the unified expert's own prediction
    gamma_kl: float = 0.1  # gamma: KL transfer unified -> specific experts (HAEMSA eqs. 11-14)
    lambda_contrast: float = 0.05  # Multi NT-Xent, text-anchored (DMMSA eqs. 3, 11, 12)
    contrast_tau: float = 0.5  # tau_m of the Multi NT-Xent loss
    gdwg_tau: float = 1.0  # GDWG temperature tau
    coarse_smoothing: float = 0.0  # label smoothing of the coarse classes
    corr_weight: float = 0.0  # regression: + w * (1 - Pearson r over the batch) in the main loss


@dataclass
class TrainConfig:
    """The optimiser and the training budget."""

    epochs: int = 60
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 1e-4
    patience: int = 10  # early stopping: epochs without validation improvement
    select_metric: str = "loss"  # validation metric for early stopping ("loss" = main task loss)
    grad_clip: float = 1.0
    ema: float = 0.0  # decay of a moving average of the weights used for validation and test
    #                   (0 = off, e.g. 0.99): weight averaging for small, noisy data


@dataclass
class PretrainedConfig:
    """The `pretrained` section: a pretrained text encoder read from the utterances' text
    (models.pretrained), instead of the data's text features; `model: ""` = none."""

    model: str = ""  # a Hugging Face encoder directory, or an alias (all-MiniLM-L6-v2)
    finetune_layers: int = 0  # top layers trained: 0 = frozen, -1 = all
    lr: float = 3e-5  # learning rate of the top trained layer
    layer_decay: float = 1.0  # each layer further down trains at lr x layer_decay^depth
    warmup: float = 0.5  # epochs of linear warm-up of the encoder's learning rate
    # after the warm-up: "constant", or "linear": down to 0 at the end of train.epochs (BERT's
    # fine-tuning recipe)
    schedule: str = "constant"
    max_tokens: int = 50  # utterances are cut at this many tokens (special tokens included)

    @property
    def key(self) -> tuple:
        """What members sharing one population must share (the data they train on)."""
        if not self.model:
            return ()
        return (self.model, self.finetune_layers, self.max_tokens)


@dataclass
class RunConfig:
    """What one training trains: `model`, `loss` and `train` (a genome decodes into one)."""

    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    pretrained: PretrainedConfig = field(default_factory=PretrainedConfig)

    def to_dict(self) -> dict[str, Any]:
        """The config as nested dicts (YAML and JSON ready)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, raw: dict[str, Any] | None, source: str = "config") -> "RunConfig":
        """Build from nested dicts; unknown sections or keys are errors, missing ones default.
        An empty file (None) is the default config; anything else but a mapping is an error."""
        if raw is None:
            raw = {}
        if not isinstance(raw, dict):
            raise UserError(f"{source}: expected a mapping with sections model/loss/train, "
                            f"got {kind_of(raw)}")
        raw = _renamed_section(raw, source)
        sections = {f.name: f.type for f in dataclasses.fields(cls)}
        unknown = [k for k in raw if k not in sections]
        if unknown:
            raise UserError(f"{source}: unknown section {brief(first_key(unknown))}"
                            f"{did_you_mean(first_key(unknown), sections)} "
                            f"(expected {', '.join(sections)})")
        parts = {name: _build(_SECTION_TYPES[name], raw.get(name), f"{source}: {name}")
                 for name in sections}
        cfg = cls(**parts)
        cfg.validate(source)
        return cfg

    def with_overrides(self, flat: dict[str, Any], source: str = "overrides") -> "RunConfig":
        """A copy with dotted-path values set, e.g. {"model.depth": 3}."""
        nested = self.to_dict()
        for path, value in flat.items():
            path = renamed_path(path, source)
            section, _, key = path.partition(".")
            if section not in nested or key not in nested[section]:
                raise UserError(f"{source}: {brief(path)} is not a config field"
                                f"{did_you_mean(path, config_paths(nested))} "
                                f"(expected section.field, e.g. model.depth)")
            nested[section][key] = value
        return RunConfig.from_dict(nested, source)

    def validate(self, source: str = "config") -> None:
        """Check every field's range and choice: a one-line UserError naming `source` and the field."""
        m, o, t, pc = self.model, self.loss, self.train, self.pretrained
        checks = [
            (lambda: bool(m.modalities) and all(x in MODALITIES for x in m.modalities),
             "model.modalities", f"a non-empty subset of {list(MODALITIES)}"),
            (lambda: m.encoder in ENCODERS, "model.encoder", f"one of {list(ENCODERS)}"),
            *[(lambda v=getattr(m, f"{x}_encoder"): v in ("", *ENCODERS), f"model.{x}_encoder",
               f"one of {list(ENCODERS)} or '' (= model.encoder)") for x in MODALITIES],
            (lambda: is_int(m.depth) and 0 <= m.depth <= MAX_DEPTH, "model.depth",
             f"an integer in 0..{MAX_DEPTH}"),
            (lambda: m.depth <= len(m.level_widths) <= MAX_LEVEL_WIDTHS
             and all(is_int(w) and 1 <= w <= MAX_WIDTH for w in m.level_widths),
             "model.level_widths", f"at least `depth` (at most {MAX_LEVEL_WIDTHS}) integer "
             f"widths in 1..{MAX_WIDTH}"),
        ]
        for name in ("expert_dim", "unified_dim", "tower_dim"):
            checks.append((lambda v=getattr(m, name): is_int(v) and 1 <= v <= MAX_WIDTH,
                           f"model.{name}", f"an integer in 1..{MAX_WIDTH}"))
        checks += [
            (lambda: _finite(m.dropout) and 0.0 <= m.dropout < 1.0, "model.dropout",
             "a value in [0, 1)"),
            (lambda: _finite(m.input_dropout) and 0.0 <= m.input_dropout < 1.0,
             "model.input_dropout", "a value in [0, 1)"),
            (lambda: _finite(m.modality_dropout) and 0.0 <= m.modality_dropout < 1.0,
             "model.modality_dropout", "a value in [0, 1)"),
            (lambda: _finite(o.coarse_smoothing) and 0.0 <= o.coarse_smoothing < 1.0,
             "loss.coarse_smoothing", "a value in [0, 1)"),
            (lambda: _finite(t.ema) and 0.0 <= t.ema < 1.0, "train.ema",
             "a decay in [0, 1) (0 = off)"),
            (lambda: o.regression_loss in REGRESSION_LOSSES, "loss.regression_loss",
             f"one of {list(REGRESSION_LOSSES)}"),
            (lambda: o.weighting in WEIGHTINGS, "loss.weighting",
             f"one of {list(WEIGHTINGS)}"),
            (lambda: o.coarse_classes in (2, 3, 5, 7), "loss.coarse_classes", "2, 3, 5 or 7"),
        ]
        for name in ("lambda_main", "lambda_coarse", "lambda_unimodal", "lambda_unified",
                     "gamma_kl", "lambda_contrast", "corr_weight"):
            checks.append((lambda v=getattr(o, name): _finite(v) and v >= 0, f"loss.{name}",
                           "a non-negative finite weight"))
        for name in ("contrast_tau", "gdwg_tau", "smooth_beta"):
            checks.append((lambda v=getattr(o, name): _finite(v) and v > 0, f"loss.{name}",
                           "a positive finite value"))
        for name, top in (("epochs", MAX_COUNT), ("patience", MAX_COUNT),
                          ("batch_size", MAX_BATCH)):
            checks.append((lambda v=getattr(t, name), top=top: is_int(v) and 1 <= v <= top,
                           f"train.{name}", f"an integer in 1..{top}"))
        checks += [
            (lambda: _finite(t.lr) and t.lr > 0, "train.lr", "a positive finite number"),
            (lambda: _finite(t.weight_decay) and t.weight_decay >= 0, "train.weight_decay",
             "a non-negative finite number"),
            (lambda: _finite(t.grad_clip), "train.grad_clip",
             "a finite number (<= 0: no clipping)"),
            (lambda: isinstance(t.select_metric, str) and t.select_metric.strip() != "",
             "train.select_metric", "a metric name such as 'loss' or 'mae'"),
            (lambda: is_int(pc.finetune_layers) and -1 <= pc.finetune_layers <= MAX_LAYERS,
             "pretrained.finetune_layers", f"an integer in -1..{MAX_LAYERS} (0 = frozen, -1 = all)"),
            (lambda: _finite(pc.lr) and pc.lr > 0, "pretrained.lr", "a positive finite number"),
            (lambda: _finite(pc.layer_decay) and 0 < pc.layer_decay <= 1,
             "pretrained.layer_decay", "a value in (0, 1] (1 = every layer at lr)"),
            (lambda: _finite(pc.warmup) and pc.warmup >= 0, "pretrained.warmup",
             "a non-negative number of epochs"),
            (lambda: pc.schedule in ENCODER_SCHEDULES, "pretrained.schedule",
             f"one of {list(ENCODER_SCHEDULES)}"),
            (lambda: is_int(pc.max_tokens) and 2 <= pc.max_tokens <= MAX_TOKENS,
             "pretrained.max_tokens", f"an integer in 2..{MAX_TOKENS}"),
        ]
        for ok, name, expected in checks:
            try:
                passed = bool(ok())
            except (TypeError, ValueError, OverflowError):  # a field set to a wrong type by hand
                passed = False
            if not passed:
                raise UserError(f"{source}: {name} must be {expected}")
        # canonical order, no duplicates: identical masks must decode to identical configs
        self.model.modalities = [x for x in MODALITIES if x in set(m.modalities)]


# `objective:` named the training loss until the word was kept for the search's objectives
OLD_LOSS_SECTION = "objective"


def _deprecated(source: str, old: str, new: str) -> None:
    warnings.warn(f"{source}: {old!r} is now {new!r} (the training loss; 'objective' names the "
                  f"search's fitness objectives): read as {new!r}, rename it", FutureWarning,
                  stacklevel=3)


def _renamed_section(raw: dict, source: str) -> dict:
    """A run config with the old `objective:` section read as `loss:` (one notice)."""
    if OLD_LOSS_SECTION not in raw:
        return raw
    if "loss" in raw:
        raise UserError(f"{source}: both 'loss' and its old name 'objective' are given; keep 'loss'")
    _deprecated(source, OLD_LOSS_SECTION, "loss")
    return {("loss" if k == OLD_LOSS_SECTION else k): v for k, v in raw.items()}


def renamed_path(path: Any, source: str) -> Any:
    """A dotted config path with the old section name (`objective.gamma_kl`) read as its new
    one (`loss.gamma_kl`), with a one-line deprecation notice; any other value unchanged."""
    if isinstance(path, str) and path.startswith(OLD_LOSS_SECTION + "."):
        new = "loss." + path[len(OLD_LOSS_SECTION) + 1:]
        _deprecated(source, path, new)
        return new
    return path


_SECTION_TYPES = {"model": ModelConfig, "loss": LossConfig, "train": TrainConfig,
                  "pretrained": PretrainedConfig}


# Upper bounds: a typo such as epochs: 1e9 fails here, not after hours or out of memory.
MAX_WIDTH = 8192  # any layer width
MAX_LEVEL_WIDTHS = 64  # entries of model.level_widths
MAX_COUNT = 100_000  # train.epochs, train.patience
MAX_BATCH = 1 << 20  # train.batch_size
MAX_LAYERS = 256  # pretrained.finetune_layers
MAX_TOKENS = 8192  # pretrained.max_tokens

# What PyYAML (YAML 1.1) leaves as a string although it is a number: 1e-3, 5E+4 (no dot).
_YAML11_EXPONENT = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+")


def kind_of(value: Any) -> str:
    """What a value is, in words for an error message: 'a list', 'nothing (null)'."""
    if value is None:
        return "nothing (null)"
    name = type(value).__name__
    return f"{'an' if name[0] in 'aeiou' else 'a'} {name}"


def config_paths(nested: dict[str, Any]) -> list[str]:
    """Every dotted path (section.field) of a config as nested dicts."""
    return [f"{s}.{k}" for s, fields in nested.items() if isinstance(fields, dict) for k in fields]


def first_key(keys: list) -> Any:
    """The first of some mapping keys in a stable order, whatever their types."""
    return sorted(keys, key=lambda k: (type(k).__name__, repr(k)))[0]


def is_int(value: Any) -> bool:
    """An int, not a bool."""
    return isinstance(value, int) and not isinstance(value, bool)


def _finite(value: Any) -> bool:
    return (isinstance(value, (int, float)) and not isinstance(value, bool)
            and math.isfinite(value))


def _build(kind: type, raw: dict[str, Any] | None, source: str):
    if raw is None:  # `model:` with nothing under it
        raw = {}
    if not isinstance(raw, dict):
        raise UserError(f"{source}: expected a mapping of fields, got {kind_of(raw)}")
    fields = {f.name: f for f in dataclasses.fields(kind)}
    unknown = [k for k in raw if k not in fields]
    if unknown:
        raise UserError(f"{source}: unknown field {brief(first_key(unknown))}"
                        f"{did_you_mean(first_key(unknown), fields)} "
                        f"(expected one of {', '.join(fields)})")
    values = {}
    default = kind()
    for name, value in raw.items():
        want = getattr(default, name)
        values[name] = _coerce(value, want, f"{source}.{name}")
    return kind(**values)


def _number(value: Any) -> Any:
    """A YAML-1.1 exponent string ("1e-3") as the float it means; anything else unchanged."""
    if isinstance(value, str) and _YAML11_EXPONENT.fullmatch(value.strip()):
        return float(value)
    return value


def _coerce(value: Any, like: Any, where: str) -> Any:
    """Coerce a YAML/JSON value to the type of the default (`like`), or fail naming the field.
    Numbers must be finite; strings are not numbers (except "1e-3", which YAML 1.1 reads as
    a string); booleans are neither ints nor floats."""
    given = value
    try:
        if isinstance(like, bool):
            if isinstance(value, bool):
                return value
            raise TypeError
        if isinstance(like, int):
            value = _number(value)
            if isinstance(value, bool) or not isinstance(value, numbers.Real):
                raise TypeError
            if isinstance(value, numbers.Integral):
                return int(value)
            number = float(value)
            if not math.isfinite(number) or not number.is_integer():
                raise ValueError
            return int(number)
        if isinstance(like, float):
            value = _number(value)
            if isinstance(value, bool) or not isinstance(value, numbers.Real):
                raise TypeError
            number = float(value)  # OverflowError for ints beyond float range
            if not math.isfinite(number):
                raise ValueError
            return number
        if isinstance(like, str):
            if not isinstance(value, str):
                raise TypeError
            return value
        if isinstance(like, list):
            if isinstance(value, str):  # "tav" or "text,audio" mask shorthand
                value = _parse_mask(value)
            if not isinstance(value, (list, tuple)):
                raise TypeError
            return [_coerce(v, like[0], where) for v in value] if like else list(value)
    except (TypeError, ValueError, OverflowError):
        pass
    expected = type(like).__name__
    if isinstance(like, (int, float)) and not isinstance(like, bool):
        expected = f"a finite {'integer' if isinstance(like, int) else 'number'}"
    raise UserError(f"{where}: got {brief(given)} ({type(given).__name__}), expected {expected}"
                    + (f" like {like!r}" if isinstance(like, list) else ""))


def _parse_mask(text: str) -> list[str]:
    parts = [p.strip() for p in text.split(",")] if "," in text else list(text.strip())
    return [SHORT_NAMES.get(p, p) for p in parts if p]


# Run configs, search spaces and study files are a few KB: these limits only stop abuse.
MAX_YAML_BYTES = 4 << 20
MAX_YAML_NODES = 200_000  # values after expanding aliases ("billion laughs" expands to 1e9)


class _TooBig(yaml.YAMLError):
    pass


class _BoundedLoader(yaml.SafeLoader):
    """yaml.safe_load that refuses documents whose aliases expand to more than MAX_YAML_NODES
    values, or refer to themselves: whatever reads the result may walk all of it."""

    def compose_document(self):
        node = super().compose_document()
        _expanded_size(node, {}, set())
        return node


def _expanded_size(node, sizes: dict[int, int], open_: set[int]) -> int:
    """Values `node` stands for once every alias is expanded (each distinct node once)."""
    key = id(node)
    if key in sizes:
        return sizes[key]
    if key in open_:
        raise _TooBig("an alias refers to the collection that holds it (a recursive anchor)")
    open_.add(key)
    total = 1
    if isinstance(node, yaml.SequenceNode):
        total += sum(_expanded_size(child, sizes, open_) for child in node.value)
    elif isinstance(node, yaml.MappingNode):
        total += sum(_expanded_size(k, sizes, open_) + _expanded_size(v, sizes, open_)
                     for k, v in node.value)
    if total > MAX_YAML_NODES:
        raise _TooBig(f"its aliases expand to more than {MAX_YAML_NODES:,} values")
    open_.discard(key)
    sizes[key] = total
    return total


def read_yaml(path: str | Path, what: str = "config") -> Any:
    """Parse a YAML file; a missing file, bad YAML or an alias bomb is a one-line UserError
    naming it."""
    from evo_msa.io import read_text

    text = read_text(path, what, MAX_YAML_BYTES)
    try:
        return yaml.load(text, Loader=_BoundedLoader)  # noqa: S506 - a SafeLoader subclass
    except _TooBig as exc:
        raise UserError(f"{path}: refused: {exc}") from None
    except yaml.YAMLError as exc:
        raise UserError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from None
    except RecursionError:
        raise UserError(f"{path}: not a usable {what} file (nested too deeply)") from None
    except ValueError as exc:  # e.g. an integer of more than 4300 digits
        raise UserError(f"{path}: not a usable {what} file "
                        f"({str(exc).splitlines()[0].split(':')[0][:100]})") from None


def load_run_config(path: str | Path) -> RunConfig:
    """The run config of a YAML file (`--arch`); a bad one is a one-line UserError naming it."""
    return RunConfig.from_dict(read_yaml(path), str(path))
