"""Shared fixtures."""
import os
from pathlib import Path

import pytest


@pytest.fixture
def shared_data() -> Path:
    """The real-data folder: $EVO_MSA_DATA_DIR, else `shared/data` next to the checkout; skips
    the test when it is absent."""
    env = os.environ.get("EVO_MSA_DATA_DIR")
    path = Path(env) if env else Path(__file__).resolve().parents[1].parent / "shared" / "data"
    if not path.is_dir():
        pytest.skip(f"real data not found at {path}")
    return path


def run_config(base: dict, **sections):
    """A RunConfig of `base` (left untouched) with some fields of its sections replaced."""
    import copy

    from evo_msa.config import RunConfig

    raw = copy.deepcopy(base)
    for name, values in sections.items():
        raw.setdefault(name, {}).update(values)
    return RunConfig.from_dict(raw)


def write_mmsa_pickle(data, path: Path) -> Path:
    """Write a (raw, not normalised) MSAData in MMSA's pickle layout."""
    import pickle

    raw = {}
    for name, split in data.splits.items():
        part = {"id": list(split.ids)}
        for m, x in split.features.items():
            part[m], part[f"{m}_lengths"] = x, split.lengths[m]
        if split.raw_text is not None:
            part["raw_text"] = list(split.raw_text)
        if split.regression is not None:
            part["regression_labels"] = split.regression
        if split.classification is not None:
            part["classification_labels"] = split.classification
        raw[name] = part
    if data.label_names:
        raw["label_names"] = list(data.label_names)
    path.write_bytes(pickle.dumps(raw, protocol=4))
    return path


@pytest.fixture
def mosi_pickle(tmp_path) -> str:
    """A small synthetic MOSI-like dataset as an MMSA pickle."""
    from evo_msa.data import make_synthetic

    return str(write_mmsa_pickle(make_synthetic("mosi", seed=0, n=240), tmp_path / "mosi.pkl"))


def make_tiny_encoder(folder: Path, layers: int = 2, seed: int = 0) -> Path:
    """A random 2-layer BERT (hidden 16) and a word-level tokenizer of the synthetic data's
    words, saved as a Hugging Face directory: what tests fine-tune (no weights downloaded)."""
    import torch
    from transformers import BertConfig, BertModel, BertTokenizer

    from evo_msa.data import synthetic

    words = sorted({*synthetic._FILLER, *synthetic._POSITIVE, *synthetic._NEGATIVE,
                    *(w for group in synthetic._EMOTION_WORDS for w in group)})
    folder.mkdir(parents=True, exist_ok=True)
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", ",", ".", *words]
    BertTokenizer(vocab={w: i for i, w in enumerate(vocab)}).save_pretrained(folder)
    torch.manual_seed(seed)
    config = BertConfig(vocab_size=len(vocab), hidden_size=16,
                        num_hidden_layers=layers, num_attention_heads=2, intermediate_size=32,
                        max_position_embeddings=64)
    BertModel(config).save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_encoder(tmp_path_factory) -> str:
    """The directory of a tiny random BERT with its tokenizer (see make_tiny_encoder)."""
    pytest.importorskip("transformers")
    return str(make_tiny_encoder(tmp_path_factory.mktemp("tiny_bert")))
