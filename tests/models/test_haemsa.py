import numpy as np
import pytest
import torch

from evo_msa.config import RunConfig
from evo_msa.data import DataInfo
from evo_msa.models import HAEMSA, build_model, count_parameters, member_parameters

DIMS = {"text": 12, "audio": 6, "vision": 5}


def info(task="regression", seq=1, modalities=("text", "audio", "vision")):
    return DataInfo(dims={m: DIMS[m] for m in modalities}, seq_lens={m: seq for m in modalities},
                    task=task, num_classes=4 if task == "classification" else 0,
                    modalities=tuple(modalities))


def cfg(coarse=3, **model):
    return RunConfig.from_dict({"model": model, "loss": {"coarse_classes": coarse}})


def batch(P=1, b=5, seq=1, modalities=DIMS, seed=0):
    g = torch.Generator().manual_seed(seed)
    one = {m: torch.randn(b, seq, DIMS[m], generator=g) for m in modalities}
    x = {m: v.expand(P, *v.shape).clone() for m, v in one.items()}
    lengths = {m: torch.full((P, b), seq) for m in modalities}
    return x, lengths


@pytest.mark.parametrize("model, data, expected", [
    # parameter counts of the single-network implementation this one replaced (919476c)
    ({}, {}, 62611),
    ({"depth": 3, "level_widths": [20, 10, 6, 99]}, {}, 26405),
    ({"modalities": ["text", "vision"]}, {}, 51087),
    ({"encoder": "gru", "expert_dim": 24}, {"seq": 6}, 48859),
    ({"encoder": "conv", "depth": 2}, {"seq": 6}, 94691),
    ({"depth": 4, "tower_dim": 7}, {"task": "classification"}, 90403),
    ({"modalities": ["audio"], "coarse": 7}, {}, 35575),
])
def test_a_population_of_one_is_the_single_network(model, data, expected):
    coarse = model.pop("coarse", 3)
    assert member_parameters(cfg(coarse, **model), info(**data)) == expected
    assert count_parameters(build_model(cfg(coarse, **model), info(**data))) == expected


def test_output_shapes_regression_and_classification():
    x, n = batch()
    out = build_model(cfg(depth=3), info()).eval()(x, n)
    assert out.main.shape == (1, 5)
    assert out.coarse.shape == (1, 5, 3)
    assert out.unimodal.shape == (1, 3, 5)
    assert out.expert_logits.shape == (1, 4, 5, 3)  # 3 specific experts + the unified one
    assert out.task_attention.shape == (1, 5, 2, 4)  # tasks main+coarse over the 4 experts
    assert torch.allclose(out.task_attention.sum(-1), torch.ones(1, 5, 2))

    out = build_model(cfg(), info("classification")).eval()(x, n)
    assert out.main.shape == (1, 5, 4) and out.coarse is None
    assert out.expert_logits.shape == (1, 4, 5, 4)


def test_masked_modality_removes_parameters_and_inputs():
    full = build_model(cfg(), info())
    masked = build_model(cfg(modalities=["text", "vision"]), info())
    assert count_parameters(masked) < count_parameters(full)
    assert not any("audio" in name for name in masked.params)
    assert masked.modalities == ["text", "vision"]

    masked.eval()
    x, n = batch()
    before = masked(x, n).main
    x["audio"] = x["audio"] * 100 + 7  # the masked input must not matter at all
    assert torch.equal(before, masked(x, n).main)
    del x["audio"], n["audio"]  # nor need to exist
    assert torch.equal(before, masked(x, n).main)


def test_missing_modality_in_data_acts_as_masked():
    model = build_model(cfg(), info(modalities=("text",)))
    assert model.modalities == ["text"]
    assert not bool(model.contrast_on.any())  # no second modality: no contrastive pairs
    x, n = batch(modalities=("text",))
    assert model.eval()(x, n).contrast is None
    with pytest.raises(ValueError, match="keeps none"):
        build_model(cfg(modalities=["audio"]), info(modalities=("text",)))


def test_ablations_are_config_settings():
    x, n = batch()
    base = member_parameters(cfg(), info())
    flat = build_model(cfg(depth=0), info()).eval()
    assert flat.levels == [] and flat(x, n).main.shape == (1, 5)
    no_unified = build_model(cfg(unified=False), info()).eval()
    assert member_parameters(cfg(unified=False), info()) < base
    assert not bool(no_unified.expert_mask[0, -1])  # the shared expert takes no attention
    with torch.no_grad():
        assert float(no_unified(x, n).task_attention[0, :, :, -1].abs().max()) == 0.0
    mean = build_model(cfg(task_attention=False), info()).eval()
    assert torch.allclose(mean(x, n).task_attention, torch.full((1, 5, 2, 4), 0.25))


@pytest.mark.parametrize("task", ["regression", "classification"])
def test_text_skip_adds_a_linear_map_of_the_mean_text_state_to_the_main_output(task):
    out_dim = 4 if task == "classification" else 1
    base = member_parameters(cfg(), info(task))
    assert member_parameters(cfg(text_skip=True), info(task)) == base + (DIMS["text"] + 1) * out_dim
    # without text (masked, or absent from the data) it has nothing to read: no weights
    assert (member_parameters(cfg(text_skip=True, modalities=["audio"]), info(task))
            == member_parameters(cfg(modalities=["audio"]), info(task)))
    x, n = batch(seq=6)
    model = build_model(cfg(text_skip=True), info(task, seq=6)).eval()
    with torch.no_grad():
        with_skip = model(x, n).main
        w = model.params["text_skip.weight"][0].clone()
        b = model.params["text_skip.bias"][0].clone()
        model.params["text_skip.weight"].zero_()
        model.params["text_skip.bias"].zero_()
        towers = model(x, n).main
    skip = x["text"][0].mean(1) @ w + b  # every step valid: the plain mean
    assert torch.allclose(with_skip[0], towers[0] + (skip[:, 0] if out_dim == 1 else skip),
                          atol=1e-5)


def test_depth_sets_the_number_of_fusion_levels_and_widths():
    m = build_model(cfg(depth=3, level_widths=[20, 10, 6, 99]), info())
    assert len(m.levels) == 3
    assert int(m.top_units.sum()) == 6  # level 4's width stays dormant
    assert m.pad == 64  # expert_dim: the widest layer


MIXED = [dict(encoder="gru", depth=2, expert_dim=24, level_widths=[16, 8, 8, 8], text_skip=True),
         dict(encoder="conv", depth=0, modalities=["text", "audio"], dropout=0.0),
         dict(encoder="mean", depth=4, unified=False, task_attention=False, tower_dim=5),
         dict(encoder="gru", depth=1, modalities=["vision"], unified_dim=40, text_skip=True)]


@pytest.mark.parametrize("task", ["regression", "classification"])
def test_a_member_computes_the_same_in_a_population_as_alone(task):
    """Padding to the widest member and masking must not change what a member computes."""
    configs = [cfg(coarse=[3, 7, 2, 5][i], **m) for i, m in enumerate(MIXED)]
    data = info(task, seq=6)
    pop = HAEMSA(configs, data).build("cpu", [10, 11, 12, 13]).eval()
    x, n = batch(P=4, seq=6)
    for m in n:
        n[m] = torch.tensor([6, 3, 1, 5, 2]).expand(4, 5)
    out = pop(x, n)
    for p, c in enumerate(configs):
        alone = HAEMSA([c], data).build("cpu", [10 + p]).eval()
        mods = alone.modalities
        mine = alone({m: x[m][p:p + 1] for m in mods}, {m: n[m][p:p + 1] for m in mods})
        assert torch.allclose(out.main[p], mine.main[0], atol=1e-5), p
        assert alone.member_parameter_counts()[0] == pop.member_parameter_counts()[p]
        if task == "regression":
            k = c.loss.coarse_classes
            assert torch.allclose(out.coarse[p, :, :k], mine.coarse[0, :, :k], atol=1e-5)


def test_no_gradient_reaches_a_padded_entry():
    """Padding is inert: every loss the model can feed sends exactly zero gradient to entries a
    member does not have (so its function is that of its own, unpadded network)."""
    configs = [cfg(**m) for m in MIXED]
    model = HAEMSA(configs, info(seq=6)).build("cpu", [0, 1, 2, 3]).train()
    x, n = batch(P=4, seq=6)
    model.noise.step = 1
    out = model(x, n)
    (out.main.sum() + out.coarse.float().logsumexp(-1).sum() + out.unimodal.sum()
     + out.expert_logits.float().logsumexp(-1).sum() + out.contrast[0].sum()
     + out.contrast[1].pow(2).sum() + out.embedding.sum()).backward()
    checked = 0
    for e in model.store.entries:
        g = model.params[e.name].grad
        if g is not None and (~e.mask).any():
            assert float(g[~e.mask].abs().max()) == 0.0, e.name
            checked += 1
    assert checked > 20


@pytest.mark.parametrize("encoder", ["mean", "gru", "conv"])
def test_sequence_encoders_respect_lengths(encoder):
    model = build_model(cfg(encoder=encoder, dropout=0.0), info(seq=6)).eval()
    x, n = batch(b=3, seq=6)
    for m in n:
        n[m] = torch.tensor([[6, 3, 1]])
    out = model(x, n).main
    for m in x:  # padding past each length must not change anything
        x[m][0, 1, 3:] = 50.0
        x[m][0, 2, 1:] = -50.0
    assert torch.allclose(out, model(x, n).main, atol=1e-5)
    assert np.isfinite(out.detach().numpy()).all()


def test_initial_weights_depend_on_the_member_seed_only():
    a = build_model(cfg(), info(), seed=5)
    b = HAEMSA([cfg(depth=3), cfg()], info()).build("cpu", [1, 5])
    name = "expert.text.mean.out.linear.weight"
    mask = b.store.entries[[e.name for e in b.store.entries].index(name)].mask[1]
    assert torch.equal(a.params[name][0][mask[:12, :64]], b.params[name][1][mask])
