"""HAEMSA: hierarchical adaptive experts for multimodal sentiment analysis, for a population.

One forward pass runs P networks (the members, each with its own run config) at once; a single
model is a population of one. Data flow of member p (HAEMSA section 3.1, figure 2):

    x_m --f_m--> h_m^(0)                      modality-specific experts, eqs. 1-3
    [x_t; x_a; x_v] --f_s--> h_s^(0)          unified expert, eq. 4
    h_m^(i) = g_m^(i)([h_m^(i-1); h_s^(i-1)])  hierarchical fusion, eq. 5, i = 1..L (L may be 0)
    h_s^(i) = g_s^(i)([h_s^(i-1); mean_m h_m^(i-1)])   the shared stream absorbs the specific ones
    experts {h_m^(L), h_s^(L)} --task-driven attention + feature gate--> towers --> heads

Ablations are plain config settings: `depth: 0` (no fusion levels), `unified: false` (no unified
expert, hence no KL transfer), `task_attention: false` (experts averaged, no gate).
`text_skip: true` adds a linear map of the text's mean token state to the main output: the plain
fine-tuned encoder's head, inside.

Members differ in widths, depth, modality mask, encoder and dropout; see `layers` for how the
padding works. A member's masked modality has no parameters and its inputs are never read.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from types import SimpleNamespace

import torch
import torch.nn.functional as F
from torch import nn

from evo_msa.config import ModelConfig, RunConfig
from evo_msa.data.dataset import MODALITIES, DataInfo
from evo_msa.models.finetuned import FineTunedLayers
from evo_msa.models.layers import Block, Linear, MemberNoise, ParamStore, dropout, keep_threshold
from evo_msa.models.sequence import SequenceExpert, Steps, pooled_mean

NEG = -1.0e4  # logit of a class a member does not have (finite: safe in bf16 and in KL)


@dataclass
class ModelOutput:
    """Everything has the population first. M = the population's modalities, K = M + 1 experts
    (the shared one last)."""

    main: torch.Tensor  # (P, B) sentiment score or (P, B, C) emotion logits
    coarse: torch.Tensor | None  # (P, B, C_coarse) coarse sentiment logits (regression only)
    unimodal: torch.Tensor  # (P, M, B) or (P, M, B, C)
    expert_logits: torch.Tensor  # (P, K, B, C_kt) class logits of every expert (KL transfer)
    contrast: tuple[torch.Tensor, torch.Tensor] | None  # similar, dissimilar (P, M, B, D)
    task_attention: torch.Tensor  # (P, B, n_tasks, K)
    embedding: torch.Tensor  # (P, B, W) the main task's selected features


def active_modalities(cfg: ModelConfig, available) -> list[str]:
    """The modality mask intersected with the data's modalities: missing data acts as masked."""
    return [m for m in MODALITIES if m in cfg.modalities and m in available]


def _units(width: int, pad: int) -> torch.Tensor:
    return torch.arange(pad) < width


def _stack(rows) -> torch.Tensor:
    return torch.stack([torch.as_tensor(r) for r in rows])


def _fit(x: torch.Tensor, width: int) -> torch.Tensor:
    """x with its last axis cut or zero-padded to `width` (what is cut is padding: units are
    a leading block of every member's row)."""
    d = x.shape[-1]
    if d == width:
        return x
    if d > width:
        return x[..., :width]
    return torch.cat([x, x.new_zeros(*x.shape[:-1], width - d)], -1)


def _state(runs: torch.Tensor, units: torch.Tensor, before: torch.Tensor,
           least: int = 1) -> torch.Tensor:
    """The units of a fusion state after a level: the level's where a member `runs` it, else
    the state it had, as wide as the widest member's (P, W), at least `least`."""
    width = max(units.shape[1], before.shape[1])
    state = torch.where(runs[:, None], _fit(units, width), _fit(before, width))
    return _fit(state, max(least, int(state.sum(1).max())))


def _text_layers(configs: list[RunConfig], store: ParamStore, has_text: bool
                 ) -> FineTunedLayers | None:
    """The encoder layers the members fine-tune (all members share the encoder and k)."""
    keys = {c.pretrained.key for c in configs}
    if len(keys) > 1:
        raise ValueError("members of one population share the pretrained encoder "
                         "(train_population groups them)")
    pc = configs[0].pretrained
    if not pc.model or pc.finetune_layers == 0 or not has_text:
        return None
    from evo_msa.models.pretrained import load  # transformers only where an encoder is used

    pre = load(pc.model)
    first = pre.first_trained(pc.finetune_layers)
    return FineTunedLayers(store, pre, first) if first < pre.num_layers else None


class HAEMSA(nn.Module):
    """A population of HAEMSA networks. Declare with the members' run configs, then `build`."""

    def __init__(self, configs: list[RunConfig], info: DataInfo):
        super().__init__()
        self.configs, self.info = list(configs), info
        self.P = len(configs)
        per_member = self._member_modalities(configs, info)
        self.classification = info.task == "classification"
        self.store = ParamStore(self.P)
        # the fine-tuned encoder layers first: each is one slice of a member's row (optimiser)
        self.text_layers = _text_layers(configs, self.store, "text" in self.modalities)
        # the parameters are declared in this order (the store's layout, saved models' too)
        lay = self._declare_layout(configs, per_member)
        spec_units, shared_units = self._declare_experts(lay)
        spec_in, shared_in = self._declare_levels(lay, spec_units, shared_units)
        top = self._declare_towers(lay, spec_in, shared_in)
        self._declare_heads(lay, spec_in, shared_in, top.shape[1])
        self._declare_contrast(lay, spec_units)
        self.device = torch.device("cpu")
        self.noise: MemberNoise | None = None  # the members' own dropout noise (training)
        self._runtime(modality_ids=torch.tensor([MODALITIES.index(m) for m in self.modalities]))

    def _member_modalities(self, configs: list[RunConfig], info: DataInfo) -> list[list[str]]:
        """Each member's modalities (its mask over the data's); sets the population's."""
        avail = info.modalities or tuple(info.dims)
        per_member = [active_modalities(c.model, avail) for c in configs]
        for c, mods in zip(configs, per_member):
            if not mods:
                raise ValueError(f"modality mask {c.model.modalities} keeps none of the data's "
                                 f"modalities {sorted(info.dims)}")
        self.modalities = [m for m in MODALITIES if any(m in mods for mods in per_member)]
        return per_member

    def _declare_layout(self, configs: list[RunConfig], per_member: list[list[str]]
                        ) -> SimpleNamespace:
        """The members' masks and rates as buffers; the widths every later part is cut to."""
        info, P = self.info, self.P
        mc = [c.model for c in configs]
        active = _stack([[m in mods for m in self.modalities] for mods in per_member])  # (P, M)
        unified = torch.tensor([m.unified for m in mc])
        depth = torch.tensor([m.depth for m in mc])
        expert_dim = torch.tensor([m.expert_dim for m in mc])
        self.pad = max(m.widest for m in mc)  # the widest layer of any member
        # every dimension is padded to its own widest member (experts E, unified expert U,
        # each level, the top), not all to the widest layer of the population; one network
        # keeps one width for every layer (`least`): the layout saved models (model.pt) have
        least = self.pad if P == 1 else 1
        n_coarse = [0 if self.classification else c.loss.coarse_classes for c in configs]
        kt = [info.num_classes if self.classification else k for k in n_coarse]
        self._runtime(
            modality_mask=active,
            expert_mask=torch.cat([active, unified[:, None]], 1),  # (P, K)
            unified=unified,
            depth=depth,
            attention_on=torch.tensor([m.task_attention for m in mc]),
            rate=torch.tensor([m.dropout for m in mc]).view(P, 1, 1),
            input_rate=torch.tensor([m.input_dropout for m in mc]).view(P, 1, 1, 1),
            modality_rate=torch.tensor([m.modality_dropout for m in mc]).view(P, 1),
            kt_mask=_stack([_units(k, max(kt)) for k in kt]),  # (P, C_kt)
            coarse_mask=(_stack([_units(k, max(n_coarse)) for k in n_coarse])
                         if not self.classification else None),
            contrast_on=active.sum(1) >= 2)  # Multi NT-Xent needs a second modality
        # what some member uses, decided here on the host (no device sync in forward)
        self.uses_contrast = bool(self.contrast_on.any())
        self.uses_dropout = any(m.dropout > 0 for m in mc)
        self.uses_input_dropout = any(m.input_dropout > 0 for m in mc)
        self.input_rates = [m.input_dropout for m in mc]  # on the host
        self.uses_modality_dropout = any(m.modality_dropout > 0 for m in mc)
        # the contrast's anchor: text where a member has it, else its first modality
        self._runtime(anchor_index=torch.tensor([
            self.modalities.index("text") if "text" in mods else self.modalities.index(mods[0])
            for mods in per_member]))
        return SimpleNamespace(
            mc=mc, P=P, M=len(self.modalities), active=active, unified=unified, depth=depth,
            expert_dim=expert_dim, unified_dim=torch.tensor([m.unified_dim for m in mc]),
            least=least, E=max(int(expert_dim.max()), least),
            U=max([m.unified_dim for m in mc if m.unified] + [least]),
            out_main=info.num_classes if self.classification else 1)

    def _declare_experts(self, lay: SimpleNamespace) -> tuple[torch.Tensor, torch.Tensor]:
        """Level 0: the specific experts f_m and the unified expert f_s; their units."""
        info, P, active, unified = self.info, lay.P, lay.active, lay.unified
        spec_units = _stack([_units(int(w), lay.E) for w in lay.expert_dim])  # (P, E)
        shared_units = _stack([_units(int(w), lay.U) for w in lay.unified_dim]) & unified[:, None]
        self.experts = nn.ModuleDict({
            m: SequenceExpert(self.store, f"expert.{m}", info.dims[m], info.seq_lens[m],
                              [c.encoder_of(m) for c in lay.mc], active[:, j], lay.expert_dim,
                              lay.E)
            for j, m in enumerate(self.modalities)})
        in_dims = torch.cat([active[:, j:j + 1].expand(P, info.dims[m])
                             for j, m in enumerate(self.modalities)], 1)
        self._runtime(unified_in=in_dims & unified[:, None])  # the inputs f_s of a member reads
        self.unified_expert = Block(self.store, "unified", self.unified_in, shared_units)
        return spec_units, shared_units

    def _declare_levels(self, lay: SimpleNamespace, spec_in: torch.Tensor,
                        shared_in: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The fusion levels (eq. 5); a member shallower than level i passes its state through.
        Returns the units of h_m and h_s after the last level."""
        active, unified, depth, least = lay.active, lay.unified, lay.depth, lay.least
        self.levels: list[tuple[Block, Block]] = []
        self.level_state: list[tuple[int, int]] = []  # widths of h_m, h_s after each level
        for i in range(1, int(depth.max()) + 1):
            live = depth >= i
            # who runs level i (None: everyone)
            self._runtime(**{f"level{i}_members": None if bool(live.all())
                             else torch.nonzero(live).flatten()})
            width = torch.tensor([m.level_widths[i - 1] if m.depth >= i else 0 for m in lay.mc])
            units = _stack([_units(int(w), max(int(width.max()), least)) for w in width])
            units = units & live[:, None]
            cat_in = torch.cat([spec_in, shared_in], 1)  # [h_m; h_s]
            spec_block = Block(self.store, f"level{i}.specific",
                               (cat_in & live[:, None])[:, None, :] & active[:, :, None],
                               units[:, None, :] & active[:, :, None])
            shared_block = Block(self.store, f"level{i}.shared",
                                 torch.cat([shared_in, spec_in], 1) & (live & unified)[:, None],
                                 units & unified[:, None])
            self.levels.append((spec_block, shared_block))
            self.add_module(f"level{i}_specific", spec_block)  # so .to() reaches their buffers
            self.add_module(f"level{i}_shared", shared_block)
            spec_in = _state(live, units, spec_in, least)
            shared_in = _state(live & unified, units, shared_in, least)
            self.level_state.append((spec_in.shape[1], shared_in.shape[1]))
        return spec_in, shared_in

    def _declare_towers(self, lay: SimpleNamespace, spec_in: torch.Tensor,
                        shared_in: torch.Tensor) -> torch.Tensor:
        """Task-driven attention, feature gate and tower per task (HAEMSA 3.1), over the
        experts side by side at the top; returns the top's units (P, T)."""
        P, M, mc, store = lay.P, lay.M, lay.mc, self.store
        T = max(spec_in.shape[1], shared_in.shape[1])  # experts side by side at the top
        top = _fit(spec_in, T) | _fit(shared_in, T)  # a member's expert width at the top
        self._runtime(
            top_units=top,
            score_scale=top.sum(1).float().clamp_min(1).rsqrt().view(P, 1, 1),
            # each expert's own units at the top (they differ at depth 0: expert_dim, unified_dim)
            expert_units=torch.cat([_fit(spec_in, T)[:, None, :].expand(P, M, T),
                                    _fit(shared_in, T)[:, None, :]], 1))  # (P, K, T)
        self.task_names = ["main"] + ([] if self.classification else ["coarse"])
        outs = {"main": torch.ones(P, lay.out_main, dtype=torch.bool)}
        if not self.classification:
            outs["coarse"] = self.coarse_mask
        tower_units = _stack([_units(m.tower_dim, max(x.tower_dim for x in mc)) for m in mc])
        fan_top = top.sum(1).float()
        self.towers = {}
        for t in self.task_names:
            q = store.declare(f"tower.{t}.query", (T,), top, "normal", fan_top)
            self.towers[t] = (q, Linear(store, f"tower.{t}.key", top, top, bias=False),
                              Linear(store, f"tower.{t}.select", top, top),
                              Linear(store, f"tower.{t}.hidden", top, tower_units),
                              Linear(store, f"tower.{t}.out", tower_units, outs[t]))
        return top

    def _declare_heads(self, lay: SimpleNamespace, spec_in: torch.Tensor,
                       shared_in: torch.Tensor, T: int) -> None:
        """Unimodal predictions and every expert's classes (the KL transfer's p_m, p_s)."""
        P, M, active = lay.P, lay.M, lay.active
        self.unimodal_heads = Linear(
            self.store, "unimodal", spec_in[:, None, :] & active[:, :, None],
            torch.ones(P, M, lay.out_main, dtype=torch.bool) & active[:, :, None])
        head_in = torch.cat([_fit(spec_in, T)[:, None, :] & active[:, :, None],
                             _fit(shared_in & lay.unified[:, None], T)[:, None, :]], 1)
        self.expert_heads = Linear(self.store, "expert_heads", head_in,
                                   self.kt_mask[:, None, :] & self.expert_mask[:, :, None])
        # the text skip: declared only where a member has it (saved models without it load)
        has_text = (active[:, self.modalities.index("text")] if "text" in self.modalities
                    else torch.zeros(P, dtype=torch.bool))
        skip = torch.tensor([m.text_skip for m in lay.mc]) & has_text
        self.text_skip = None
        self._runtime(skip_on=skip.view(P, 1, 1))
        if bool(skip.any()):
            self.text_skip = Linear(self.store, "text_skip",
                                    skip[:, None].expand(P, self.info.dims["text"]),
                                    skip[:, None].expand(P, lay.out_main))

    def _declare_contrast(self, lay: SimpleNamespace, spec_units: torch.Tensor) -> None:
        """DMMSA's decomposition into similar and dissimilar parts (the text-anchored
        contrast)."""
        proj = torch.tensor([max(8, m.expert_dim // 2) for m in lay.mc])
        proj_units = _stack([_units(int(w), int(proj.max())) for w in proj])
        has = lay.active & self.contrast_on[:, None]
        dec_in = spec_units[:, None, :] & has[:, :, None]
        dec_out = proj_units[:, None, :] & has[:, :, None]
        self._runtime(contrast_units=dec_out)  # (P, M, proj)
        self.similar = Linear(self.store, "decompose.similar", dec_in, dec_out)
        self.dissimilar = Linear(self.store, "decompose.dissimilar", dec_in, dec_out)

    def _runtime(self, **tensors: torch.Tensor | None) -> None:
        """The population's layout (masks, rates, member indices; None: not used) as buffers,
        so `.to()` moves them; non-persistent: they are no weights, no state dict holds them."""
        for name, value in tensors.items():
            self.register_buffer(name, value, persistent=False)

    # ---- construction ----------------------------------------------------------------------
    def build(self, device: torch.device | str = "cpu", seeds: list[int] | None = None) -> "HAEMSA":
        """Allocate and initialise the parameters (member p from seeds[p]) on `device`."""
        self.device = torch.device(device)
        seeds = list(seeds) if seeds is not None else list(range(self.P))
        # the buffers, before any parameter exists: parameters are views of the store's flat
        # buffer, allocated on the device below (moving them would break the views)
        self.to(self.device)
        params = self.store.materialise(self.device, seeds)
        self.noise = MemberNoise(seeds, self.device)
        if self.text_layers is not None:
            self.text_layers.build(self.device, seeds)
        for name, p in params.items():
            self.register_parameter(name.replace(".", "__"), p)
        return self

    @property
    def params(self) -> dict[str, nn.Parameter]:
        """The population's parameters by name (one tensor per parameter, every member in it)."""
        return self.store.params

    def member_parameter_counts(self) -> list[int]:
        """Each member's own parameter count (its units only, not the padding)."""
        return self.store.member_counts()

    # ---- forward ---------------------------------------------------------------------------
    def forward(self, inputs: dict[str, torch.Tensor | Steps], lengths: dict[str, torch.Tensor]
                ) -> ModelOutput:
        """inputs[m] (P, B, T, D), or for a sequence modality its packed valid steps (Steps,
        what the trainer gives), and lengths[m] (P, B) for every modality of the population.
        In training mode each member draws its own dropout noise (self.noise; the trainer
        advances its step)."""
        params = self.params
        noise = self.noise if self.training and self.uses_dropout else None
        rate, mods = self.rate, self.modalities
        inputs = {m: (Steps.pack(inputs[m], lengths[m])
                      if self.info.seq_lens[m] > 1 and not isinstance(inputs[m], Steps)
                      else inputs[m]) for m in mods}
        if self.text_layers is not None:
            inputs["text"] = self.text_layers(params, inputs["text"],
                                              self.noise.step if self.noise is not None else 0)
        inputs = self._drop_inputs(inputs, self.noise if self.training else None)
        means = {m: pooled_mean(inputs[m], lengths[m]) for m in mods}
        spec0 = torch.stack([self.experts[m](params, inputs[m], lengths[m], rate, noise,
                                             mean=means[m]) for m in mods], 1)  # (P, M, B, W)
        pooled = torch.cat([means[m] for m in mods], -1)
        pooled = pooled * self.unified_in[:, None, :]  # a masked modality is never read
        shared = self.unified_expert(params, pooled, rate, noise, "unified")  # (P, B, W)
        contrast = None
        if self.uses_contrast:
            # normalize() couples every unit: padded ones must be exactly cut off
            has = self.contrast_units[:, :, None, :]
            contrast = (self.similar(params, spec0) * has, self.dissimilar(params, spec0) * has)

        spec = spec0
        act = self.modality_mask.to(spec.dtype)[:, :, None, None]
        for i, (spec_block, shared_block) in enumerate(self.levels, 1):
            # only the members at least i levels deep run level i; the others keep their state
            sel = getattr(self, f"level{i}_members")
            s_spec, s_shared, s_act, s_rate = (spec, shared, act, rate) if sel is None else (
                spec[sel], shared[sel], act[sel], rate[sel])
            spec_mean = (s_spec * s_act).sum(1) / s_act.sum(1).clamp_min(1)
            together = s_shared[:, None].expand(-1, s_spec.shape[1], -1, -1)
            new_spec = spec_block(params, torch.cat([s_spec, together], -1), s_rate[:, None],
                                  noise, f"level{i}.specific", self.modality_ids, sel)
            new_shared = shared_block(params, torch.cat([s_shared, spec_mean], -1), s_rate, noise,
                                      f"level{i}.shared", sel=sel)
            ws, wh = self.level_state[i - 1]
            new_spec, new_shared = _fit(new_spec, ws), _fit(new_shared, wh)
            if sel is None:
                spec, shared = new_spec, new_shared
            else:
                spec = _fit(spec, ws).index_copy(0, sel, new_spec)
                shared = _fit(shared, wh).index_copy(0, sel, new_shared)

        T = self.top_units.shape[1]
        top_spec, top_shared = _fit(spec, T), _fit(shared, T)
        experts = torch.cat([top_spec.transpose(1, 2), top_shared[:, :, None]], 2)  # (P, B, K, T)
        experts = experts * self.expert_units[:, None]  # padding between expert kinds stays 0
        outputs, attentions, embedding = {}, [], None
        for name in self.task_names:
            outputs[name], attn, selected = self._tower(params, name, experts, noise)
            attentions.append(attn)
            if name == "main":
                embedding = selected
        if self.text_skip is not None:  # cut off where a member has none: no gradient there
            skip = self.text_skip(params, means["text"])
            outputs["main"] = outputs["main"] + skip * self.skip_on.to(skip.dtype)
        main = outputs["main"].squeeze(-1) if not self.classification else outputs["main"]
        coarse = outputs.get("coarse")
        if coarse is not None:
            coarse = coarse.masked_fill(~self.coarse_mask[:, None, :], NEG)
        # outputs a member does not have are cut off here, so no loss can ever reach them
        unimodal = self.unimodal_heads(params, spec) * self.modality_mask[:, :, None, None]
        if not self.classification:
            unimodal = unimodal.squeeze(-1)
        heads = self.expert_heads(params, torch.cat([top_spec, top_shared[:, None]], 1))
        heads = heads.masked_fill(~self.kt_mask[:, None, None, :], NEG)
        heads = heads * self.expert_mask[:, :, None, None]
        return ModelOutput(main=main, coarse=coarse, unimodal=unimodal, expert_logits=heads,
                           contrast=contrast, task_attention=torch.stack(attentions, 2),
                           embedding=embedding)

    def _drop_inputs(self, inputs, noise):
        """Feature dropout and modality dropout (a whole modality zeroed per sample; never all
        of a member's modalities): regularisers for small data, genes of the search."""
        if noise is None:
            return inputs
        mods = self.modalities
        if self.uses_input_dropout:
            inputs = {m: self._input_dropout(inputs[m], m, noise) for m in mods}
        if self.uses_modality_dropout:
            B = self._batch(inputs)
            u = torch.cat([noise.draws(f"modality_dropout.{m}", (self.P, B, 1)) for m in mods],
                          -1)
            drop = (u < keep_threshold(self.modality_rate[:, :, None])) & \
                self.modality_mask[:, None, :]
            kept_any = ((~drop) & self.modality_mask[:, None, :]).any(-1, keepdim=True)
            drop = drop & kept_any  # a sample that would lose every modality keeps them all
            keep = (~drop).float()
            inputs = {m: (inputs[m].scaled(torch.gather(keep[:, :, j], 1,
                                                        inputs[m].layout.batch_rows))
                          if isinstance(inputs[m], Steps)
                          else inputs[m] * keep[:, :, j, None, None].to(inputs[m].dtype))
                      for j, m in enumerate(mods)}
        return inputs

    @staticmethod
    def _batch(inputs) -> int:
        x = next(iter(inputs.values()))
        return x.layout.perm.shape[1] if isinstance(x, Steps) else x.shape[1]

    def _input_dropout(self, x, m: str, noise: MemberNoise):
        if isinstance(x, Steps):
            return x.dropout(noise, f"input.{m}", self.input_rates)
        return dropout(x, self.input_rate, noise, f"input.{m}")

    def _tower(self, params, name, experts, noise):
        query, key, select, hidden, out = self.towers[name]
        P, B, K, W = experts.shape
        keys = key(params, experts.reshape(P, B * K, W)).reshape(P, B, K, W)
        scores = (keys * params[query][:, None, None, :]).sum(-1) * self.score_scale
        scores = scores.masked_fill(~self.expert_mask[:, None, :], float("-inf"))
        uniform = self.expert_mask.to(experts.dtype) / self.expert_mask.sum(1, keepdim=True)
        attn = torch.where(self.attention_on.view(P, 1, 1), torch.softmax(scores.float(), -1)
                           .to(experts.dtype), uniform[:, None, :])
        mixed = (attn.unsqueeze(-1) * experts).sum(2)  # (P, B, W)
        gated = torch.sigmoid(select(params, mixed)) * mixed
        selected = torch.where(self.attention_on.view(P, 1, 1), gated, mixed)
        h = dropout(F.gelu(hidden(params, selected)), self.rate, noise, f"tower.{name}")
        return out(params, h), attn, selected


def count_parameters(model) -> int:
    """Parameters of a single model (a population of one) or of any nn.Module."""
    if isinstance(model, HAEMSA):
        return sum(model.member_parameter_counts())
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def member_parameters(cfg: RunConfig, info: DataInfo) -> int:
    """Parameter count of one config, without allocating any weights (cheap constraint); the
    layers of a pretrained text encoder it fine-tunes count."""
    return HAEMSA([cfg], model_info(cfg, info)).member_parameter_counts()[0]


def model_info(cfg: RunConfig, info: DataInfo) -> DataInfo:
    """What the network of `cfg` reads of data described by `info`: with a pretrained text
    encoder, text is its token states (models.pretrained.text_view), else `info` itself."""
    if not cfg.pretrained.model or "text" not in info.dims:
        return info
    from evo_msa.models.pretrained import load

    return dataclasses.replace(info, dims={**info.dims, "text": load(cfg.pretrained.model).hidden},
                               seq_lens={**info.seq_lens, "text": cfg.pretrained.max_tokens})


def build_model(cfg: RunConfig, info: DataInfo, *, seed: int = 0, device="cpu") -> HAEMSA:
    """A single HAEMSA network: a population of one."""
    return HAEMSA([cfg], info).build(device, [seed])
