"""HAEMSA: hierarchical adaptive experts for multimodal sentiment analysis.

Data flow of one forward pass (HAEMSA section 3.1, figure 2):

    x_m --f_m--> h_m^(0)                      modality-specific experts, eqs. 1-3
    [x_t; x_a; x_v] --f_s--> h_s^(0)          unified expert, eq. 4
    h_m^(i) = g_m^(i)([h_m^(i-1); h_s^(i-1)])  hierarchical fusion, eq. 5, i = 1..L
    h_s^(i) = g_s^(i)([h_s^(i-1); mean_m h_m^(i-1)])   the shared stream absorbs the specific ones
    experts {h_m^(L), h_s^(L)} --task-driven attention + feature gate--> towers --> heads

Only the experts of active modalities (the mask intersected with what the data has) are
built, so a masked modality has no parameters and its inputs are never read.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from evo_msa.config import ModelConfig
from evo_msa.data.dataset import MODALITIES


@dataclass(frozen=True)
class DataInfo:
    """What the model needs to know about the data (dims, tasks), not the data itself."""

    dims: dict[str, int]  # modality -> feature width
    seq_lens: dict[str, int]  # modality -> T
    task: str  # "regression" or "classification"
    num_classes: int = 0  # classification only
    coarse_classes: int = 3  # regression only: DMMSA coarse bins
    modalities: tuple[str, ...] = field(default=())

    @classmethod
    def from_data(cls, data, coarse_classes: int = 3) -> "DataInfo":
        return cls(dims=dict(data.dims), seq_lens=dict(data.seq_lens), task=data.task,
                   num_classes=data.num_classes, coarse_classes=coarse_classes,
                   modalities=tuple(data.modalities))


@dataclass
class ModelOutput:
    main: torch.Tensor  # (B,) sentiment score or (B, C) emotion logits
    coarse: torch.Tensor | None  # (B, n_coarse) coarse sentiment logits (regression only)
    unimodal: dict[str, torch.Tensor]  # modality -> (B,) or (B, C)
    expert_logits: dict[str, torch.Tensor]  # "shared" and each modality -> (B, K) class logits
    contrast: dict[str, tuple[torch.Tensor, torch.Tensor]]  # modality -> (similar, dissimilar)
    task_attention: torch.Tensor  # (B, n_tasks, n_experts) attention of each task over experts
    embedding: torch.Tensor  # (B, width) the main task's selected features


def active_modalities(cfg: ModelConfig, available) -> list[str]:
    """The modality mask intersected with the data's modalities: missing data acts as masked."""
    return [m for m in MODALITIES if m in cfg.modalities and m in available]


def _block(d_in: int, d_out: int, dropout: float) -> nn.Sequential:
    return nn.Sequential(nn.Linear(d_in, d_out), nn.LayerNorm(d_out), nn.GELU(), nn.Dropout(dropout))


def masked_mean(x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Mean over the valid time steps of (B, T, D) -> (B, D)."""
    if x.shape[1] == 1:
        return x[:, 0]
    mask = step_mask(x, lengths)
    return (x * mask).sum(1) / mask.sum(1).clamp_min(1.0)


def step_mask(x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """(B, T, 1) mask, 1 on the valid time steps."""
    steps = torch.arange(x.shape[1], device=x.device)
    return (steps[None, :] < lengths[:, None]).to(x.dtype).unsqueeze(-1)


class SequenceEncoder(nn.Module):
    """A modality-specific expert f_m: (B, T, D) -> (B, width). For T == 1 every kind is an MLP."""

    def __init__(self, d_in: int, seq_len: int, width: int, kind: str, dropout: float):
        super().__init__()
        self.kind = kind if seq_len > 1 else "mean"
        if self.kind == "gru":
            self.rnn = nn.GRU(d_in, width, batch_first=True)
        elif self.kind == "conv":
            self.conv = nn.Conv1d(d_in, width, kernel_size=3, padding=1)
        self.out = _block(d_in if self.kind == "mean" else width, width, dropout)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        if self.kind == "gru":
            steps, _ = self.rnn(x)
            last = (lengths.clamp(1, x.shape[1]) - 1).long()
            pooled = steps[torch.arange(x.shape[0], device=x.device), last]
        elif self.kind == "conv":
            x = x * step_mask(x, lengths)  # padding must not leak into valid steps' windows
            pooled = masked_mean(torch.relu(self.conv(x.transpose(1, 2))).transpose(1, 2), lengths)
        else:
            pooled = masked_mean(x, lengths)
        return self.out(pooled)


class TaskTower(nn.Module):
    """Task-driven attention over the experts, a feature-selection gate, then a tower MLP."""

    def __init__(self, width: int, hidden: int, out_dim: int, dropout: float):
        super().__init__()
        self.query = nn.Parameter(torch.randn(width) / width**0.5)
        self.key = nn.Linear(width, width, bias=False)
        self.select = nn.Linear(width, width)
        self.tower = nn.Sequential(nn.Linear(width, hidden), nn.GELU(), nn.Dropout(dropout),
                                   nn.Linear(hidden, out_dim))

    def forward(self, experts: torch.Tensor):
        # experts: (B, K, width) -> scores (B, K): this task's gate over the experts
        scores = self.key(experts) @ self.query / experts.shape[-1] ** 0.5
        attn = torch.softmax(scores, dim=-1)
        mixed = (attn.unsqueeze(-1) * experts).sum(1)
        selected = torch.sigmoid(self.select(mixed)) * mixed
        return self.tower(selected), attn, selected


class HAEMSA(nn.Module):
    def __init__(self, cfg: ModelConfig, info: DataInfo):
        super().__init__()
        self.cfg, self.info = cfg, info
        self.modalities = active_modalities(cfg, info.modalities or info.dims.keys())
        if not self.modalities:
            raise ValueError(f"modality mask {cfg.modalities} keeps none of the data's "
                             f"modalities {sorted(info.dims)}")
        p, depth = cfg.dropout, cfg.depth
        widths = list(cfg.level_widths[:depth])
        classification = info.task == "classification"
        out_main = info.num_classes if classification else 1
        n_kt = info.num_classes if classification else info.coarse_classes  # KL/unified classes

        self.experts = nn.ModuleDict({
            m: SequenceEncoder(info.dims[m], info.seq_lens[m], cfg.expert_dim, cfg.encoder, p)
            for m in self.modalities})
        self.unified = _block(sum(info.dims[m] for m in self.modalities), cfg.unified_dim, p)

        self.specific_levels = nn.ModuleList()
        self.shared_levels = nn.ModuleList()
        prev_spec, prev_shared = cfg.expert_dim, cfg.unified_dim
        for w in widths:
            self.specific_levels.append(nn.ModuleDict({
                m: _block(prev_spec + prev_shared, w, p) for m in self.modalities}))
            self.shared_levels.append(_block(prev_shared + prev_spec, w, p))
            prev_spec = prev_shared = w
        top = widths[-1]

        self.task_names = ["main"] + ([] if classification else ["coarse"])
        outs = {"main": out_main, "coarse": info.coarse_classes}
        self.towers = nn.ModuleDict({t: TaskTower(top, cfg.tower_dim, outs[t], p)
                                     for t in self.task_names})
        self.unimodal_heads = nn.ModuleDict({m: nn.Linear(top, out_main) for m in self.modalities})
        self.expert_heads = nn.ModuleDict({e: nn.Linear(top, n_kt)
                                           for e in [*self.modalities, "shared"]})
        # DMMSA feature decomposition into similar/dissimilar parts, for the text-anchored contrast;
        # it needs a second modality to form positive pairs
        proj = max(8, cfg.expert_dim // 2)
        self.decompose = nn.ModuleDict({
            m: nn.ModuleDict({"similar": nn.Linear(cfg.expert_dim, proj),
                              "dissimilar": nn.Linear(cfg.expert_dim, proj)})
            for m in (self.modalities if len(self.modalities) > 1 else [])})

    def forward(self, inputs: dict[str, torch.Tensor], lengths: dict[str, torch.Tensor]) -> ModelOutput:
        mods = self.modalities
        spec = {m: self.experts[m](inputs[m], lengths[m]) for m in mods}
        shared = self.unified(torch.cat([masked_mean(inputs[m], lengths[m]) for m in mods], dim=-1))
        contrast = {m: (self.decompose[m]["similar"](spec[m]), self.decompose[m]["dissimilar"](spec[m]))
                    for m in self.decompose}

        for spec_level, shared_level in zip(self.specific_levels, self.shared_levels):
            spec_mean = torch.stack([spec[m] for m in mods]).mean(0)
            spec, shared = ({m: spec_level[m](torch.cat([spec[m], shared], -1)) for m in mods},
                            shared_level(torch.cat([shared, spec_mean], -1)))

        experts = torch.stack([spec[m] for m in mods] + [shared], dim=1)
        outputs, attentions, embedding = {}, [], None
        for name in self.task_names:
            outputs[name], attn, selected = self.towers[name](experts)
            attentions.append(attn)
            if name == "main":
                embedding = selected
        regression = self.info.task == "regression"
        main = outputs["main"].squeeze(-1) if regression else outputs["main"]
        unimodal = {m: self.unimodal_heads[m](spec[m]) for m in mods}
        if regression:
            unimodal = {m: u.squeeze(-1) for m, u in unimodal.items()}
        expert_logits = {m: self.expert_heads[m](spec[m]) for m in mods}
        expert_logits["shared"] = self.expert_heads["shared"](shared)
        return ModelOutput(main=main, coarse=outputs.get("coarse"), unimodal=unimodal,
                           expert_logits=expert_logits, contrast=contrast,
                           task_attention=torch.stack(attentions, 1), embedding=embedding)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def build_model(cfg: ModelConfig, info: DataInfo) -> HAEMSA:
    return HAEMSA(cfg, info)
