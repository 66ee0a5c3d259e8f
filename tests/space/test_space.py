import random
from pathlib import Path

import numpy as np
import pytest
import yaml

from evo_msa.config import RunConfig
from evo_msa.errors import UserError
from evo_msa.space import SearchSpace, load_space, parse_space

ROOT = Path(__file__).resolve().parents[2]


def test_shipped_spaces_load_and_decode_at_both_ends():
    for name in ("haemsa", "tiny"):
        space = load_space(ROOT / "search_spaces" / f"{name}.yaml")
        for u in (0.0, 0.3, 0.999, 1.0):
            cfg = space.to_config([u] * space.size)
            assert 1 <= cfg.model.depth <= 4 and cfg.model.modalities


def test_haemsa_space_covers_the_issue_genes():
    space = load_space(ROOT / "search_spaces" / "haemsa.yaml")
    paths = {g.path for g in space.genes}
    for path in ["model.depth", "model.level_widths", "model.unified_dim", "model.expert_dim",
                 "model.modalities", "loss.lambda_main", "loss.lambda_coarse",
                 "loss.lambda_unimodal", "loss.lambda_unified", "loss.gamma_kl",
                 "loss.lambda_contrast", "loss.weighting", "model.dropout", "train.lr",
                 "train.weight_decay"]:
        assert path in paths
    depth = next(g for g in space.genes if g.path == "model.depth")
    assert (depth.low, depth.high) == (1, 4)


def space(genes, **extra):
    return parse_space({"name": "t", "genes": genes, **extra}, "t.yaml")


def test_decoding_rules():
    s = space({"model.depth": {"type": "int", "low": 1, "high": 4},
               "train.lr": {"type": "log-float", "low": 1e-4, "high": 1e-2},
               "model.dropout": {"type": "float", "low": 0.0, "high": 0.5},
               "loss.weighting": {"type": "categorical", "choices": ["fixed", "gdwg", "attention"]},
               "model.modalities": {"type": "mask", "choices": ["text", "audio", "vision"]}})
    d = s.decode([0.0, 0.5, 0.5, 0.5, 0.9, 0.1, 0.6])
    assert d["model.depth"] == 1
    assert d["train.lr"] == pytest.approx(1e-3)  # geometric middle
    assert d["model.dropout"] == pytest.approx(0.25)
    assert d["loss.weighting"] == "gdwg"
    assert d["model.modalities"] == ["text", "vision"]
    # int bins have equal width: a quarter of [0,1] per depth
    assert [s.decode([u, 0, 0, 0, 1, 1, 1])["model.depth"] for u in (0.24, 0.26, 0.74, 1.0)] == [1, 2, 3, 4]
    # a mask is never empty: the strongest slot wins, among the data's modalities only
    assert s.decode([0, 0, 0, 0, 0.1, 0.4, 0.2])["model.modalities"] == ["audio"]
    assert s.decode([0, 0, 0, 0, 0.1, 0.4, 0.2], available=["text"])["model.modalities"] == ["text"]
    assert s.decode([0, 0, 0, 0, 0.9, 0.9, 0.9], available=["text"])["model.modalities"] == ["text"]


def test_a_mask_keeps_its_always_choices_on_without_slots():
    s = space({"model.modalities": {"type": "mask", "choices": ["audio", "vision"],
                                    "always": ["text"]}})
    assert s.size == 2  # a slot per optional choice only
    assert s.decode([0.1, 0.2])["model.modalities"] == ["text"]
    assert s.decode([0.9, 0.2])["model.modalities"] == ["text", "audio"]
    assert s.decode([0.9, 0.7])["model.modalities"] == ["text", "audio", "vision"]
    # data without text: the optional choices decide, and the mask is never empty
    assert s.decode([0.1, 0.2], available=["audio", "vision"])["model.modalities"] == ["vision"]
    assert s.decode([0.9, 0.9], available=["text"])["model.modalities"] == ["text"]


def test_final_section_of_a_space():
    s = space({"model.depth": DEPTH}, final={"epochs": 5, "ensemble": 1})
    assert s.final == {"epochs": 5, "ensemble": 1}
    assert space({"model.depth": DEPTH}).final == {}


def test_dormant_levels_keep_genes_but_not_identity():
    s = space({"model.depth": {"type": "int", "low": 1, "high": 4},
               "model.level_widths": {"type": "int", "low": 8, "high": 64, "count": 4}})
    assert s.size == 5
    a = s.to_config([0.0, 0.5, 0.1, 0.2, 0.3])
    b = s.to_config([0.0, 0.5, 0.9, 0.8, 0.7])
    assert a.model.depth == 1 and a.model.level_widths != b.model.level_widths
    assert s.architecture_key(a) == s.architecture_key(b)  # the deeper widths are dormant
    c = s.to_config([0.3, 0.5, 0.1, 0.2, 0.3])
    d = s.to_config([0.3, 0.5, 0.9, 0.2, 0.3])
    assert c.model.depth == 2 and s.architecture_key(c) != s.architecture_key(d)


def test_settings_without_effect_leave_the_identity():
    """What the network cannot tell apart is one architecture: dropout rates within one step of
    1/256 (the model keeps rates as bytes), the contrast weight and modality dropout of a single
    modality, SmoothL1's beta under L1, the label smoothing of an unweighted coarse task."""
    key = SearchSpace.architecture_key
    model_fields = {"modalities", "dropout", "input_dropout", "modality_dropout"}

    def conf(**fields):
        return RunConfig.from_dict({
            "model": {k: v for k, v in fields.items() if k in model_fields},
            "loss": {k: v for k, v in fields.items() if k not in model_fields}})

    assert key(conf(dropout=0.5736)) == key(conf(dropout=0.5745))  # both round to 147 / 256
    assert key(conf(dropout=0.45)) != key(conf(dropout=0.50))
    assert key(conf(input_dropout=0.001)) == key(conf(input_dropout=0.0))
    one = dict(modalities=["text"])
    assert key(conf(**one, lambda_contrast=0.1, contrast_tau=0.3, modality_dropout=0.2)) == \
        key(conf(**one, lambda_contrast=0.4, contrast_tau=0.9, modality_dropout=0.4))
    two = dict(modalities=["text", "audio"])
    assert key(conf(**two, lambda_contrast=0.1)) != key(conf(**two, lambda_contrast=0.4))
    assert key(conf(**two, modality_dropout=0.2)) != key(conf(**two, modality_dropout=0.4))
    assert key(conf(regression_loss="l1", smooth_beta=0.5)) == \
        key(conf(regression_loss="l1", smooth_beta=2.0))
    assert key(conf(regression_loss="smooth_l1", smooth_beta=0.5)) != \
        key(conf(regression_loss="smooth_l1", smooth_beta=2.0))
    assert key(conf(lambda_coarse=0, coarse_smoothing=0.1)) == \
        key(conf(lambda_coarse=0, coarse_smoothing=0.2))
    assert key(conf(lambda_coarse=0.5, coarse_smoothing=0.1)) != \
        key(conf(lambda_coarse=0.5, coarse_smoothing=0.2))


def test_a_dropout_rate_becomes_the_models_byte():
    import torch

    from evo_msa.models.layers import keep_threshold
    from evo_msa.space.space import _rate_byte

    rates = [0.0, 1e-9, 1 / 512, 3 / 512, 0.5, 0.5736, 0.5745, 0.99, 0.999, 1.0,
             *np.random.default_rng(0).uniform(0, 1, 500)]
    assert [_rate_byte(r) for r in rates] == \
        keep_threshold(torch.tensor(rates, dtype=torch.float32)).tolist()


def test_an_encoder_gene_counts_only_for_a_sequence_in_the_mask():
    """On vectors (T = 1) every encoder is the same network; so is a masked modality's."""
    s = space({"model.text_encoder": {"type": "categorical",
                                      "choices": ["mean", "attention", "gru", "conv"]},
               "model.modalities": {"type": "mask", "choices": ["text", "audio", "vision"]}})
    gru, mean = s.to_config([0.6, 1, 1, 0]), s.to_config([0.1, 1, 1, 0])
    assert (gru.model.encoder_of("text"), mean.model.encoder_of("text")) == ("gru", "mean")
    tokens = {"text": 50, "audio": 1, "vision": 1}
    assert s.architecture_key(gru, tokens) != s.architecture_key(mean, tokens)
    vectors = {"text": 1, "audio": 1, "vision": 1}
    assert s.architecture_key(gru, vectors) == s.architecture_key(mean, vectors)
    no_text = [s.to_config([u, 0, 1, 1]) for u in (0.6, 0.1)]  # audio + vision only
    assert s.architecture_key(no_text[0], tokens) == s.architecture_key(no_text[1], tokens)
    # model.encoder and a modality's own field that say the same thing are the same network
    own = RunConfig.from_dict({"model": {"text_encoder": "gru"}})
    shared = RunConfig.from_dict({"model": {"encoder": "gru", "audio_encoder": "mean",
                                            "vision_encoder": "mean"}})
    assert s.architecture_key(own) == s.architecture_key(shared)
    every = RunConfig.from_dict({"model": {"encoder": "gru"}})  # audio and vision too
    assert s.architecture_key(own, tokens) == s.architecture_key(every, tokens)
    assert s.architecture_key(own) != s.architecture_key(every)  # T unknown: they may matter


def test_clip_and_sample_stay_in_the_unit_cube():
    s = load_space(ROOT / "search_spaces" / "tiny.yaml")
    g = s.sample(random.Random(0))
    assert len(g) == s.size and all(0 <= x <= 1 for x in g)
    assert s.clip([-0.5, 1.5, 0.5] + [0.2] * (s.size - 3))[:3] == [0.0, 1.0, 0.5]


DEPTH = {"type": "int", "low": 1, "high": 2}


@pytest.mark.parametrize("raw, message", [
    ({"genes": {"model.depth": {"type": "int", "low": 5, "high": 1}}},
     "gene 'model.depth': low (5) > high (1)"),
    ({"genes": {"model.depth": {**DEPTH, "type": "integer"}}}, "gene 'model.depth': type must be"),
    ({"genes": {"model.depth": {"type": "int", "low": 1, "hi": 2}}},
     "gene 'model.depth': unknown key 'hi'"),
    ({"genes": {"model.deep": DEPTH}}, "gene 'model.deep': not a config field"),
    ({"genes": {"model.depth": {"type": "int", "low": "a", "high": 2}}}, "low must be a number"),
    ({"genes": {"model.depth": {"type": "int", "low": 1, "high": 9}}}, "model.depth must be an integer in"),
    ({"genes": {"train.lr": {"type": "log-float", "low": 0, "high": 1}}}, "log scale needs low > 0"),
    ({"genes": {"model.modalities": {"type": "mask"}}}, "needs a non-empty list 'choices'"),
    ({"genes": {"model.depth": DEPTH}, "extra": 1}, "unknown key 'extra'"),
    ({"genes": {"model.depth": DEPTH}, "fixed": {"train.epochs": "many"}}, "train.epochs"),
    ({"genes": {"model.depth": DEPTH}, "fitness": {"direction": "up"}}, "direction must be"),
    ({"genes": {}}, "'genes' must be a non-empty mapping"),
    ({"genes": {"model.modalities": {"type": "mask", "choices": ["audio"], "always": "text"}}},
     "mask needs a non-empty list 'always'"),
    ({"genes": {"model.modalities": {"type": "mask", "choices": ["text"], "always": ["text"]}}},
     "'text' is both in 'always' and in 'choices'"),
    ({"genes": {"model.depth": {**DEPTH, "always": [1]}}}, "key 'always' does not apply"),
    ({"genes": {"model.depth": DEPTH}, "final": {"epoch": 5}}, "final: unknown key 'epoch'"),
    ({"genes": {"model.depth": DEPTH}, "final": {"ensemble": -1}}, "final.ensemble must be"),
    ({"genes": {"model.depth": DEPTH}, "final": [5]}, "'final' must be a mapping"),
])
def test_schema_errors_are_one_line_and_name_file_and_gene(tmp_path, raw, message):
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(UserError) as err:
        load_space(path)
    text = str(err.value)
    assert message in text and str(path) in text and "\n" not in text


def test_unreadable_yaml_and_missing_file(tmp_path):
    bad = tmp_path / "broken.yaml"
    bad.write_text("genes: [unclosed\n")
    with pytest.raises(UserError, match="not valid YAML"):
        load_space(bad)
    with pytest.raises(UserError, match="no such search-space file"):
        load_space(tmp_path / "nope.yaml")
