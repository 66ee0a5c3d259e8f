"""Run configuration: what a genome decodes into and what `--arch ARCH.yaml` holds.

Three sections, one dataclass each:
  model:     the HAEMSA architecture (experts, hierarchy, widths, modality mask)
  objective: the multi-task loss (HAEMSA eq. 14 weights, DMMSA coarse/unimodal/contrast, weighting)
  train:     the optimiser and the training budget

Search-space genes address fields by dotted path, e.g. ``model.depth`` or ``objective.gamma_kl``.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from evo_msa.data.dataset import MODALITIES, SHORT_NAMES
from evo_msa.errors import UserError

MAX_DEPTH = 4
ENCODERS = ("mean", "gru", "conv")
WEIGHTINGS = ("fixed", "gdwg", "attention")
REGRESSION_LOSSES = ("l1", "smooth_l1")


@dataclass
class ModelConfig:
    modalities: list[str] = field(default_factory=lambda: list(MODALITIES))  # the modality mask
    encoder: str = "mean"  # sequence encoder of the specific experts when T > 1
    expert_dim: int = 64  # width of each modality-specific expert f_t, f_a, f_v (level 0)
    unified_dim: int = 32  # width of the unified expert f_s (level 0)
    depth: int = 1  # hierarchical fusion levels L (HAEMSA eq. 5)
    level_widths: list[int] = field(default_factory=lambda: [64, 48, 32, 32])  # width per level
    tower_dim: int = 32  # hidden width of each task tower
    dropout: float = 0.4


@dataclass
class ObjectiveConfig:
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


@dataclass
class TrainConfig:
    epochs: int = 60
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 1e-4
    patience: int = 10  # early stopping: epochs without validation improvement
    select_metric: str = "loss"  # validation metric for early stopping ("loss" = main task loss)
    grad_clip: float = 1.0


@dataclass
class RunConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    objective: ObjectiveConfig = field(default_factory=ObjectiveConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, raw: dict[str, Any] | None, source: str = "config") -> "RunConfig":
        """Build from nested dicts; unknown sections or keys are errors, missing ones default."""
        raw = raw or {}
        if not isinstance(raw, dict):
            raise UserError(f"{source}: expected a mapping with sections model/objective/train")
        sections = {f.name: f.type for f in dataclasses.fields(cls)}
        unknown = set(raw) - set(sections)
        if unknown:
            raise UserError(f"{source}: unknown section {sorted(unknown)[0]!r} "
                            f"(expected {', '.join(sections)})")
        parts = {name: _build(_SECTION_TYPES[name], raw.get(name) or {}, f"{source}: {name}")
                 for name in sections}
        cfg = cls(**parts)
        cfg.validate(source)
        return cfg

    def with_overrides(self, flat: dict[str, Any], source: str = "overrides") -> "RunConfig":
        """A copy with dotted-path values set, e.g. {"model.depth": 3}."""
        nested = self.to_dict()
        for path, value in flat.items():
            section, _, key = path.partition(".")
            if section not in nested or key not in nested[section]:
                raise UserError(f"{source}: {path!r} is not a config field "
                                f"(expected section.field, e.g. model.depth)")
            nested[section][key] = value
        return RunConfig.from_dict(nested, source)

    def validate(self, source: str = "config") -> None:
        m, o, t = self.model, self.objective, self.train
        checks = [
            (bool(m.modalities) and all(x in MODALITIES for x in m.modalities),
             "model.modalities", f"a non-empty subset of {list(MODALITIES)}"),
            (m.encoder in ENCODERS, "model.encoder", f"one of {list(ENCODERS)}"),
            (1 <= m.depth <= MAX_DEPTH, "model.depth", f"an integer in 1..{MAX_DEPTH}"),
            (len(m.level_widths) >= m.depth and all(w >= 1 for w in m.level_widths),
             "model.level_widths", "at least `depth` positive widths"),
            (min(m.expert_dim, m.unified_dim, m.tower_dim) >= 1,
             "model.expert_dim/unified_dim/tower_dim", "positive integers"),
            (0.0 <= m.dropout < 1.0, "model.dropout", "a value in [0, 1)"),
            (o.regression_loss in REGRESSION_LOSSES, "objective.regression_loss",
             f"one of {list(REGRESSION_LOSSES)}"),
            (o.weighting in WEIGHTINGS, "objective.weighting", f"one of {list(WEIGHTINGS)}"),
            (o.coarse_classes in (2, 3, 5, 7), "objective.coarse_classes", "2, 3, 5 or 7"),
            (min(o.lambda_main, o.lambda_coarse, o.lambda_unimodal, o.lambda_unified,
                 o.gamma_kl, o.lambda_contrast) >= 0, "objective.lambda_*/gamma_kl",
             "non-negative weights"),
            (o.contrast_tau > 0 and o.gdwg_tau > 0 and o.smooth_beta > 0,
             "objective.contrast_tau/gdwg_tau/smooth_beta", "positive values"),
            (t.epochs >= 1 and t.batch_size >= 1 and t.patience >= 1, "train.epochs/batch_size/"
             "patience", "positive integers"),
            (t.lr > 0 and t.weight_decay >= 0, "train.lr/weight_decay", "lr > 0, weight_decay >= 0"),
        ]
        for ok, name, expected in checks:
            if not ok:
                raise UserError(f"{source}: {name} must be {expected}")
        # canonical order, no duplicates: identical masks must decode to identical configs
        self.model.modalities = [x for x in MODALITIES if x in set(m.modalities)]


_SECTION_TYPES = {"model": ModelConfig, "objective": ObjectiveConfig, "train": TrainConfig}


def _build(kind: type, raw: dict[str, Any], source: str):
    if not isinstance(raw, dict):
        raise UserError(f"{source}: expected a mapping of fields")
    fields = {f.name: f for f in dataclasses.fields(kind)}
    unknown = set(raw) - set(fields)
    if unknown:
        raise UserError(f"{source}: unknown field {sorted(unknown)[0]!r} "
                        f"(expected one of {', '.join(fields)})")
    values = {}
    default = kind()
    for name, value in raw.items():
        want = getattr(default, name)
        values[name] = _coerce(value, want, f"{source}.{name}")
    return kind(**values)


def _coerce(value: Any, like: Any, where: str) -> Any:
    """Coerce a YAML/JSON value to the type of the default (`like`), or fail naming the field."""
    try:
        if isinstance(like, bool):
            if isinstance(value, bool):
                return value
            raise TypeError
        if isinstance(like, int):
            if isinstance(value, bool) or float(value) != int(float(value)):
                raise TypeError
            return int(float(value))
        if isinstance(like, float):
            if isinstance(value, bool):
                raise TypeError
            return float(value)
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
    except (TypeError, ValueError):
        pass
    raise UserError(f"{where}: got {value!r}, expected {type(like).__name__}"
                    + (f" like {like!r}" if isinstance(like, list) else ""))


def _parse_mask(text: str) -> list[str]:
    parts = [p.strip() for p in text.split(",")] if "," in text else list(text.strip())
    return [SHORT_NAMES.get(p, p) for p in parts if p]


def read_yaml(path: str | Path, what: str = "config") -> Any:
    """Parse a YAML file; a missing file or bad YAML is a one-line UserError naming it."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such {what} file")
    try:
        return yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise UserError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from None


def load_run_config(path: str | Path) -> RunConfig:
    return RunConfig.from_dict(read_yaml(path), str(path))
