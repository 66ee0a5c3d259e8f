import numpy as np
import pytest
import torch

from evo_msa.config import ModelConfig
from evo_msa.models import DataInfo, build_model, count_parameters

DIMS = {"text": 12, "audio": 6, "vision": 5}


def info(task="regression", seq=1, modalities=("text", "audio", "vision")):
    return DataInfo(dims={m: DIMS[m] for m in modalities}, seq_lens={m: seq for m in modalities},
                    task=task, num_classes=4 if task == "classification" else 0,
                    coarse_classes=3, modalities=tuple(modalities))


def batch(b=5, seq=1, modalities=DIMS, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = {m: torch.randn(b, seq, DIMS[m], generator=g) for m in modalities}
    lengths = {m: torch.full((b,), seq) for m in modalities}
    return x, lengths


def test_output_shapes_regression_and_classification():
    torch.manual_seed(0)
    x, n = batch()
    out = build_model(ModelConfig(depth=3), info()).eval()(x, n)
    assert out.main.shape == (5,)
    assert out.coarse.shape == (5, 3)
    assert set(out.unimodal) == {"text", "audio", "vision"}
    assert set(out.expert_logits) == {"text", "audio", "vision", "shared"}
    assert out.task_attention.shape == (5, 2, 4)  # tasks main+coarse over 3 specific + shared
    assert torch.allclose(out.task_attention.sum(-1), torch.ones(5, 2))

    out = build_model(ModelConfig(), info("classification")).eval()(x, n)
    assert out.main.shape == (5, 4) and out.coarse is None
    assert out.expert_logits["shared"].shape == (5, 4)


def test_masked_modality_removes_parameters_and_inputs():
    torch.manual_seed(0)
    full = build_model(ModelConfig(), info())
    masked = build_model(ModelConfig(modalities=["text", "vision"]), info())
    assert count_parameters(masked) < count_parameters(full)
    assert not any("audio" in name for name, _ in masked.named_parameters())
    assert masked.modalities == ["text", "vision"]

    masked.eval()
    x, n = batch()
    before = masked(x, n).main
    x["audio"] = x["audio"] * 100 + 7  # the masked input must not matter at all
    assert torch.equal(before, masked(x, n).main)
    del x["audio"], n["audio"]  # nor need to exist
    assert torch.equal(before, masked(x, n).main)


def test_missing_modality_in_data_acts_as_masked():
    model = build_model(ModelConfig(), info(modalities=("text",)))
    assert model.modalities == ["text"]
    assert not model.decompose  # no second modality: no contrastive pairs
    with pytest.raises(ValueError, match="keeps none"):
        build_model(ModelConfig(modalities=["audio"]), info(modalities=("text",)))


def test_depth_sets_the_number_of_fusion_levels_and_widths():
    m = build_model(ModelConfig(depth=3, level_widths=[20, 10, 6, 99]), info())
    assert len(m.specific_levels) == 3 and len(m.shared_levels) == 3
    assert m.specific_levels[2]["text"][0].out_features == 6  # level 4 width stays dormant


@pytest.mark.parametrize("encoder", ["mean", "gru", "conv"])
def test_sequence_encoders_respect_lengths(encoder):
    torch.manual_seed(0)
    model = build_model(ModelConfig(encoder=encoder, dropout=0.0), info(seq=6)).eval()
    x, n = batch(b=3, seq=6)
    for m in n:
        n[m] = torch.tensor([6, 3, 1])
    out = model(x, n).main
    for m in x:  # padding past each length must not change anything
        x[m][1, 3:] = 50.0
        x[m][2, 1:] = -50.0
    assert torch.allclose(out, model(x, n).main, atol=1e-5)
    assert np.isfinite(out.detach().numpy()).all()
