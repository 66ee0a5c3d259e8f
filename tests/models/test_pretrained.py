"""A pretrained text encoder: loading, tokens, cached frozen states, fine-tuned layers."""
import dataclasses
import json

import numpy as np
import pytest
import torch

from evo_msa.config import RunConfig
from evo_msa.data import make_synthetic
from evo_msa.data.dataset import Split
from evo_msa.data.text import tokenize
from evo_msa.errors import UserError

transformers = pytest.importorskip("transformers")

from evo_msa.models import pretrained  # noqa: E402
from evo_msa.models.finetuned import FineTunedLayers  # noqa: E402
from evo_msa.models.layers import ParamStore  # noqa: E402
from evo_msa.models.sequence import Steps  # noqa: E402


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("EVO_MSA_CACHE", str(tmp_path / "cache"))
    pretrained._MEMORY.clear()


def _split(texts):
    return Split(features={}, lengths={}, raw_text=list(texts))


# ---- loading ---------------------------------------------------------------------------------

def test_missing_or_non_encoder_directories_are_one_line_errors(tmp_path):
    with pytest.raises(UserError, match="pretrained.model: .* is not a directory"):
        pretrained.resolve(str(tmp_path / "nowhere"))
    with pytest.raises(UserError, match="not an encoder directory \\(no config.json\\)"):
        pretrained.resolve(str(tmp_path))
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "no-such-model"}))
    with pytest.raises(UserError, match="not a Hugging Face encoder directory"):
        pretrained.load(str(tmp_path))


def test_the_tiny_encoder_loads_and_its_layers_run_one_by_one(tiny_encoder):
    pre = pretrained.load(tiny_encoder)
    assert (pre.num_layers, pre.hidden) == (2, 16)
    assert pre.first_trained(1) == 1 and pre.first_trained(-1) == 0 and pre.first_trained(0) == 2
    with pytest.raises(UserError, match="finetune_layers: 3 is more than the 2 layers"):
        pre.first_trained(3)


# ---- tokens ----------------------------------------------------------------------------------

def test_raw_text_is_tokenised_cut_and_counted(tiny_encoder):
    tok = pretrained.load(tiny_encoder).tokenizer
    tokens = tokenize(_split(["good movie", "the plot was really boring and dull so"]), tok, 6,
                      "d: train")
    assert tokens.lengths.tolist() == [4, 6]  # [CLS] w w [SEP]; cut at 6 with its [SEP]
    assert tokens.truncated == 1
    assert tokens.ids[1, 5] == tok.sep_token_id and tokens.ids[0, 4:].tolist() == [0, 0]


@pytest.mark.parametrize("texts, message", [
    (["fine", ""], r"d: train: raw_text\[1\] is empty"),
    (["fine", 3], r"d: train: raw_text\[1\] must be a str \(an utterance\), got int"),
    (None, "d: train: has no raw_text"),
])
def test_bad_utterances_are_one_line_errors(tiny_encoder, texts, message):
    tok = pretrained.load(tiny_encoder).tokenizer
    split = Split(features={}, lengths={}, raw_text=texts)
    with pytest.raises(UserError, match=message):
        tokenize(split, tok, 8, "d: train")


def test_text_bert_ids_are_read_and_checked_against_the_vocabulary(tiny_encoder):
    tok = pretrained.load(tiny_encoder).tokenizer
    ids = np.zeros((2, 3, 5), dtype=np.int64)
    ids[0, 0, :3], ids[0, 1, :3] = [2, 10, 3], 1
    ids[1, 0, :5], ids[1, 1, :5] = [2, 11, 12, 13, 3], 1
    split = Split(features={}, lengths={}, text_bert=ids)
    tokens = tokenize(split, tok, 4, "d: test")
    assert tokens.lengths.tolist() == [3, 4] and tokens.truncated == 1
    assert tokens.ids[1].tolist() == [2, 11, 12, 3]  # cut, keeping its separator
    ids[1, 0, 2] = 30522  # bert-base-uncased's size: outside the tiny vocabulary
    with pytest.raises(UserError, match=r"d: test: text_bert\[1\] holds id 30522 outside"):
        tokenize(split, tok, 4, "d: test")


# ---- frozen states ---------------------------------------------------------------------------

def test_states_are_the_models_hidden_states_and_are_cached_on_disk(tiny_encoder, tmp_path):
    pre = pretrained.load(tiny_encoder)
    tokens = tokenize(_split(["good movie", "the plot was boring"]), pre.tokenizer, 16, "d")
    states = pretrained.cached_states(pre, tokens, 1)
    with torch.no_grad():
        ref = pre.model(input_ids=torch.as_tensor(tokens.ids),
                        attention_mask=torch.as_tensor(tokens.ids != 0).long(),
                        output_hidden_states=True).hidden_states[1]
    mask = (tokens.ids != 0)[..., None]
    np.testing.assert_allclose(states, ref.numpy() * mask, atol=1e-5)
    files = list((tmp_path / "cache" / "text-states").glob("*.npy"))
    assert len(files) == 1
    pretrained._MEMORY.clear()
    np.save(files[0], states + 1.0)  # a second read comes from the disk, not a new pass
    np.testing.assert_allclose(pretrained.cached_states(pre, tokens, 1), states + 1.0)


def test_text_view_replaces_text_by_the_trained_layers_input(tiny_encoder):
    data = make_synthetic("mosi", seed=0, n=60)
    view = pretrained.text_view(data, tiny_encoder, 1, 12)
    train = view.splits["train"]
    assert train.features["text"].shape[1:] == (12, 16)
    assert train.lengths["text"].max() <= 12 and train.lengths["text"].min() >= 3
    assert view.splits["test"].features["text"].shape[1] == 12
    np.testing.assert_array_equal(train.features["audio"], data.splits["train"].features["audio"])


# ---- fine-tuned layers ----------------------------------------------------------------------

def test_finetuned_layers_compute_what_the_encoder_computes(tiny_encoder):
    pre = pretrained.load(tiny_encoder)
    tokens = tokenize(_split(["good movie", "the plot was really boring", "fun"]),
                      pre.tokenizer, 16, "d")
    below = torch.as_tensor(pretrained.cached_states(pre, tokens, 1))
    top = torch.as_tensor(pretrained.cached_states(pre, tokens, 2))
    store = ParamStore(2)
    layers = FineTunedLayers(store, pre, 1)
    params = store.materialise(torch.device("cpu"), [0, 1])
    layers.build(torch.device("cpu"), [0, 1])
    layers.eval()
    lengths = torch.as_tensor(tokens.lengths)
    batch = torch.stack([below, below[[2, 0, 1]]])  # each member its own batch
    out = layers(params, Steps.pack(batch, torch.stack([lengths, lengths[[2, 0, 1]]])), 0)
    want = Steps.pack(torch.stack([top, top[[2, 0, 1]]]),
                      torch.stack([lengths, lengths[[2, 0, 1]]]))
    torch.testing.assert_close(out.x, want.x, atol=1e-5, rtol=1e-4)
    # gradients reach each member's own copy of the layer, in the store's flat buffer
    out.x[0].sum().backward()
    grads = store.grad_flat
    assert grads[0].abs().sum() > 0 and grads[1].abs().sum() == 0
    assert layers.slices == [(0, store.size)]


def _ft_config(encoder, k, **train):
    return RunConfig.from_dict({
        "model": {"modalities": ["text", "audio"], "depth": 0, "expert_dim": 8,
                  "unified_dim": 8, "tower_dim": 8, "dropout": 0.1},
        "train": {"epochs": 2, "batch_size": 16, "lr": 1e-3, **train},
        "pretrained": {"model": encoder, "finetune_layers": k, "lr": 1e-3}})


def test_a_member_trains_the_same_alone_and_in_a_population(tiny_encoder):
    from evo_msa.training.trainer import train_population

    data = make_synthetic("mosi", seed=0, n=80)
    a, b = _ft_config(tiny_encoder, 1), _ft_config(tiny_encoder, 1, lr=3e-3)
    alone = train_population(data, [a], [5], device="cpu")[0]
    together = train_population(data, [b, a], [1, 5], device="cpu")[1]
    assert alone.status.value == "ok"
    assert alone.metrics["test"]["mae"] == pytest.approx(together.metrics["test"]["mae"],
                                                         rel=1e-5)
    assert alone.history[-1]["valid_mae"] == pytest.approx(together.history[-1]["valid_mae"],
                                                           rel=1e-5)


def test_members_of_different_encoders_or_depths_train_apart(tiny_encoder):
    from evo_msa.training.trainer import plan_populations, train_population

    data = make_synthetic("mosi", seed=0, n=80)
    configs = [_ft_config(tiny_encoder, 1), _ft_config(tiny_encoder, 0),
               _ft_config(tiny_encoder, -1), _ft_config("", 0)]
    plan = plan_populations(configs, torch.device("cuda"))  # one group per key on a GPU
    assert sorted(map(sorted, plan)) == [[0], [1], [2], [3]]
    results = train_population(data, configs, [0, 0, 0, 0], device="cpu")
    assert [r.status.value for r in results] == ["ok"] * 4
    assert results[0].params < results[2].params  # one layer of two trained, against both
    assert results[1].params < results[0].params


def test_encoder_layers_train_at_their_own_rates_with_warm_up(tiny_encoder):
    from evo_msa.training.trainer import PopulationTrainer

    data = make_synthetic("mosi", seed=0, n=80)
    cfg = _ft_config(tiny_encoder, -1)
    cfg.pretrained.layer_decay, cfg.pretrained.warmup = 0.5, 1.0
    trainer = PopulationTrainer(data, [cfg], [0], device="cpu")
    slices = trainer.optimizer.slices
    assert [rates[0] for _, _, rates in slices] == [5e-4, 1e-3]  # the lower layer decayed
    start = trainer.model.store.flat.clone()
    trainer.train_epoch()
    assert trainer.optimizer.slice_scale == [1.0]  # warmed up after one epoch
    moved = (trainer.model.store.flat - start).abs()[0]
    assert moved[slices[0][0]:slices[0][1]].sum() > 0 and moved[slices[1][1]:].sum() > 0


def test_encoder_schedule_warms_up_then_stays_or_decays_to_zero():
    from evo_msa.training.trainer import EncoderSchedule

    cfg = RunConfig.from_dict({"pretrained": {"warmup": 1.0}, "train": {"epochs": 3}})
    constant = EncoderSchedule.of(cfg, 10)
    assert [constant.scale(k) for k in (1, 5, 10, 20, 30)] == [0.1, 0.5, 1.0, 1.0, 1.0]
    cfg.pretrained.schedule = "linear"
    linear = EncoderSchedule.of(cfg, 10)
    scales = [linear.scale(k) for k in range(1, 31)]
    assert scales[:10] == [constant.scale(k) for k in range(1, 11)]  # the same warm-up
    assert all(a > b for a, b in zip(scales[10:], scales[11:]))  # then strictly down
    assert scales[-1] == pytest.approx(1 / 20) and linear.scale(31) == 0.0
    cfg.pretrained.warmup = 0.0
    assert EncoderSchedule.of(cfg, 10).scale(1) == 1.0  # no warm-up: full rate at once


def test_members_of_a_population_keep_their_own_encoder_schedules(tiny_encoder):
    from evo_msa.training.trainer import PopulationTrainer

    data = make_synthetic("mosi", seed=0, n=80)
    a, b = _ft_config(tiny_encoder, -1), _ft_config(tiny_encoder, -1)
    a.pretrained.warmup, b.pretrained.warmup = 0.0, 100.0
    b.pretrained.schedule = "linear"
    trainer = PopulationTrainer(data, [a, b], [0, 1], device="cpu")
    trainer.train_epoch()
    steps = trainer.model.noise.step  # one epoch's
    assert trainer.optimizer.slice_scale == [1.0, pytest.approx(1 / 100)]
    assert trainer.encoder_schedules[1].total_steps == steps * b.train.epochs


def test_pretrained_config_fields_are_checked():
    with pytest.raises(UserError, match="pretrained.finetune_layers must be an integer in -1"):
        RunConfig.from_dict({"pretrained": {"finetune_layers": -2}})
    with pytest.raises(UserError, match="pretrained.schedule must be one of"):
        RunConfig.from_dict({"pretrained": {"schedule": "cosine"}})
    with pytest.raises(UserError, match=r"pretrained.layer_decay must be a value in \(0, 1\]"):
        RunConfig.from_dict({"pretrained": {"layer_decay": 0}})
    with pytest.raises(UserError, match="pretrained.max_tokens must be an integer in 2"):
        RunConfig.from_dict({"pretrained": {"max_tokens": 1}})
    assert RunConfig().pretrained.key == ()
    cfg = dataclasses.replace(RunConfig().pretrained, model="x", finetune_layers=2)
    assert cfg.key == ("x", 2, 50)


def test_bf16_autocast_trains_fine_tuned_layers_on_a_cpu(tiny_encoder):
    """The CUDA path (bf16 autocast of the training steps), run on the CPU."""
    from evo_msa.training.trainer import PopulationTrainer

    data = make_synthetic("mosi", seed=0, n=60)
    trainer = PopulationTrainer(data, [_ft_config(tiny_encoder, 1)], [0], device="cpu",
                                mixed_precision=True)
    start = trainer.model.store.flat.clone()
    losses = trainer.train_epoch()
    assert torch.isfinite(losses).all()
    assert (trainer.model.store.flat - start).abs().sum() > 0


def test_data_command_counts_the_utterances_cut(tmp_path, tiny_encoder, capsys):
    from evo_msa.cli import main
    from tests.conftest import write_mmsa_pickle

    path = write_mmsa_pickle(make_synthetic("mosi", seed=0, n=60), tmp_path / "d.pkl")
    assert main(["data", str(path), "--text-model", tiny_encoder, "--max-tokens", "8"]) == 0
    out = capsys.readouterr().out
    assert "cut at 8" in out and "utterances are longer than 8 tokens" in out


def test_a_search_with_a_missing_encoder_fails_before_its_run_directory(tmp_path, capsys):
    from evo_msa.cli import main

    space = tmp_path / "space.yaml"
    space.write_text("genes:\n  pretrained.finetune_layers: {type: int, low: 0, high: 1}\n"
                     f"fixed:\n  pretrained.model: {tmp_path / 'no_encoder'}\n"
                     "  train.epochs: 1\n")
    out = tmp_path / "run"
    code = main(["search", "--space", str(space), "--data", "synthetic:mosi?n=60", "--pop", "4",
                 "--generations", "1", "--out", str(out)])
    assert code == 2 and not out.exists()
    assert "pretrained.model" in capsys.readouterr().err


def test_the_pooling_of_token_states_is_part_of_the_architecture():
    """On utterance vectors (T = 1) the text encoder is dormant; read by a pretrained encoder,
    text is a sequence of token states and its pooling matters."""
    from evo_msa.space.space import SearchSpace

    base = RunConfig.from_dict({"model": {"modalities": ["text"]}})
    mean = base.with_overrides({"model.text_encoder": "mean"})
    attention = base.with_overrides({"model.text_encoder": "attention"})
    key = SearchSpace.architecture_key
    assert key(mean, {"text": 1}) == key(attention, {"text": 1})
    tuned = {"pretrained.model": "enc", "pretrained.finetune_layers": 1}
    assert key(mean.with_overrides(tuned), {"text": 1}) != \
        key(attention.with_overrides(tuned), {"text": 1})
    frozen = {"pretrained.model": "enc", "pretrained.finetune_layers": 0}
    assert key(mean.with_overrides({**frozen, "pretrained.lr": 1e-4}), {"text": 1}) == \
        key(mean.with_overrides(frozen), {"text": 1})  # no layer trains at that rate


def test_train_on_data_with_an_empty_utterance_fails_before_writing(tmp_path, tiny_encoder):
    from evo_msa import api
    from tests.conftest import write_mmsa_pickle

    data = make_synthetic("mosi", seed=0, n=60)
    data.splits["test"].raw_text[3] = "   "
    path = write_mmsa_pickle(data, tmp_path / "d.pkl")
    out = tmp_path / "run"
    with pytest.raises(UserError, match=r"d: test: raw_text\[3\] is empty"):
        api.train(str(path), config={"pretrained": {"model": tiny_encoder}}, seeds=[0],
                  out=out, log=lambda _: None)
    assert not out.exists()
