"""Synthetic MSA data with planted structure, for fast CPU searches and tests.

Every sample has a shared sentiment latent `s` and, per modality, a modality-specific latent
`u_m`. Each modality sees `s` and its own `u_m` through a random linear map plus noise; the
label mixes `s` with every `u_m` (text strongest, then audio, then vision). So text alone is
informative, and fusing all modalities is better (they add their own `u_m` and average the noise
on `s`). A modality listed in `noise` is replaced by pure heavy-tailed noise (Student t, 3 dof,
like a faulty sensor): it carries no label information, and a model that uses it gets worse.

Labels are drawn before any feature, so for a given seed and size the labels are the same
whatever `noise` and `seq_len` are.
"""
from __future__ import annotations

import numpy as np

from evo_msa.data.dataset import MODALITIES, SHORT_NAMES, SPLITS, MSAData, Split
from evo_msa.errors import UserError

NAMES = ("mosi", "iemocap", "sims")
DIMS = {"text": 64, "audio": 32, "vision": 32}
IEMOCAP_LABELS = ["happy", "sad", "neutral", "angry", "excited", "frustrated"]

_LATENT = 8  # size of the shared latent and of each modality-specific latent
_WEIGHT = {"text": 0.8, "audio": 0.6, "vision": 0.5}  # label weight of each u_m (shared: 1.0)
_FEATURE_NOISE = {"text": 1.5, "audio": 1.8, "vision": 2.0}  # per-dimension noise std
_STEP_NOISE = 0.5  # per-time-step noise std around the utterance vector (seq_len > 1)
SPLIT_SIZES = {"mosi": (1284, 229, 686), "iemocap": (1050, 150, 300)}


def _split_sizes(name: str, n: int | None) -> tuple[int, int, int]:
    sizes = SPLIT_SIZES[name]
    if n is None:
        return sizes
    if n < 10:
        raise UserError(f"synthetic:{name}: n={n} is too small (need at least 10 samples)")
    total = sum(sizes)
    n_valid = max(1, round(n * sizes[1] / total))
    n_test = max(1, round(n * sizes[2] / total))
    return n - n_valid - n_test, n_valid, n_test


def _unit(rng: np.random.Generator, *shape: int) -> np.ndarray:
    """Random directions (unit columns) for reading a label out of a latent."""
    w = rng.standard_normal(shape)
    return w / np.linalg.norm(w, axis=0, keepdims=True)


def _regression_labels(rng, shared, specific, n, *, scale):
    """Sentiment score in [-scale, scale] plus, for SIMS-like data, per-modality scores."""
    core = shared @ _unit(rng, _LATENT)
    contrib = {m: _WEIGHT[m] * (specific[m] @ _unit(rng, _LATENT)) for m in MODALITIES}
    raw = core + sum(contrib.values()) + 0.3 * rng.standard_normal(n)
    # std ~ scale/2: most labels inside the range, a few clipped at the ends, as in MOSI.
    norm = 0.5 * scale / raw.std()
    label = np.clip(raw * norm, -scale, scale).astype(np.float32)
    # Unimodal labels: what an annotator sees through one modality (shared + that modality).
    unimodal = {m: np.clip((core + 2 * contrib[m] + 0.3 * rng.standard_normal(n)) * norm,
                           -scale, scale).astype(np.float32) for m in MODALITIES}
    return label, unimodal


def _class_labels(rng, shared, specific, n):
    """Emotion class = argmax of a linear readout of the latents (roughly balanced)."""
    k = len(IEMOCAP_LABELS)
    logits = shared @ _unit(rng, _LATENT, k)
    for m in MODALITIES:
        logits += _WEIGHT[m] * (specific[m] @ _unit(rng, _LATENT, k))
    logits += 0.3 * rng.standard_normal((n, k))
    return logits.argmax(axis=1).astype(np.int64)


def _sequences(rng, utt: np.ndarray, seq_len: int) -> tuple[np.ndarray, np.ndarray]:
    """Spread utterance vectors over time: per-step noise around them, zero padding past a
    random length in [1, seq_len]."""
    n, d = utt.shape
    lengths = rng.integers(1, seq_len + 1, size=n).astype(np.int64)
    steps = utt[:, None, :] + _STEP_NOISE * rng.standard_normal((n, seq_len, d))
    steps[np.arange(seq_len)[None, :] >= lengths[:, None]] = 0.0
    return steps.astype(np.float32), lengths


# words of the synthetic transcripts (all in BERT's lower-cased vocabulary): fillers, and words
# whose count follows the label, so a text encoder has something to find
_FILLER = ("the", "movie", "was", "it", "and", "i", "really", "this", "film", "plot", "just",
           "kind", "of", "a", "so", "um", "you", "know", "actors", "story")
_POSITIVE = ("good", "great", "love", "nice", "fun", "best", "enjoyed", "wonderful")
_NEGATIVE = ("bad", "awful", "hate", "boring", "worst", "poor", "terrible", "dull")
_EMOTION_WORDS = (("happy", "glad", "smile"), ("sad", "cry", "miss"), ("okay", "fine", "sure"),
                  ("angry", "mad", "furious"), ("excited", "wow", "amazing"),
                  ("annoyed", "tired", "ugh"))


def _transcripts(rng: np.random.Generator, scores: np.ndarray | None,
                 classes: np.ndarray | None, scale: float) -> list[str]:
    """One lower-cased utterance per sample: 3-20 filler words, with sentiment words (as many
    as the score's size, of its sign) or emotion words of the class mixed in."""
    out = []
    for i in range(len(scores if scores is not None else classes)):
        words = list(rng.choice(_FILLER, size=int(rng.integers(3, 21))))
        if scores is not None:
            pool = _POSITIVE if scores[i] >= 0 else _NEGATIVE
            cue = list(rng.choice(pool, size=int(round(3 * abs(float(scores[i])) / scale))))
        else:
            cue = list(rng.choice(_EMOTION_WORDS[int(classes[i])], size=int(rng.integers(1, 3))))
        for w in cue:
            words.insert(int(rng.integers(0, len(words) + 1)), w)
        out.append(" ".join(str(w) for w in words))
    return out


def noise_modalities(names, where: str) -> tuple[str, ...]:
    """Canonical modality names (short names t/a/v accepted); UserError on an unknown one."""
    mods = tuple(SHORT_NAMES.get(m, m) for m in names)
    bad = [m for m in mods if m not in MODALITIES]
    if bad:
        raise UserError(f"{where}: unknown noise modality {bad[0]!r} "
                        f"(choose from {', '.join(MODALITIES)})")
    return mods


def make_synthetic(name: str, *, seed: int = 0, n: int | None = None, noise: tuple[str, ...] = (),
                   seq_len: int = 1, unimodal: bool = False) -> MSAData:
    """Synthetic "mosi" (regression in [-3, 3]), "iemocap" (6 classes) or "sims" (= mosi with
    `unimodal=True`: regression in [-1, 1] with unimodal labels). Deterministic per seed."""
    if name not in NAMES:
        raise UserError(f"unknown synthetic data set {name!r} (choose from {', '.join(NAMES)})")
    if name == "sims":
        name, unimodal = "mosi", True
    if unimodal and name != "mosi":
        raise UserError(f"synthetic:{name}: unimodal labels exist only for regression (mosi, sims)")
    noise = noise_modalities(noise, f"synthetic:{name}")
    if seq_len < 1:
        raise UserError(f"synthetic:{name}: seq_len must be >= 1, got {seq_len}")

    sizes = _split_sizes(name, n)
    total = sum(sizes)
    rng = np.random.default_rng(seed)
    shared = rng.standard_normal((total, _LATENT))
    specific = {m: rng.standard_normal((total, _LATENT)) for m in MODALITIES}

    scale = 1.0 if unimodal else 3.0
    if name == "mosi":
        regression, uni = _regression_labels(rng, shared, specific, total, scale=scale)
    else:
        classification = _class_labels(rng, shared, specific, total)

    features, lengths = {}, {}
    for m in MODALITIES:
        d = DIMS[m]
        maps = rng.standard_normal((2 * _LATENT, d)) / np.sqrt(2 * _LATENT)  # unit signal variance
        utt = np.hstack([shared, specific[m]]) @ maps
        utt += _FEATURE_NOISE[m] * rng.standard_normal((total, d))
        if seq_len == 1:
            features[m], lengths[m] = utt[:, None, :].astype(np.float32), np.ones(total, np.int64)
        else:
            features[m], lengths[m] = _sequences(rng, utt, seq_len)
    # Noise modalities last, so they leave every other array unchanged.
    for m in noise:
        x = rng.standard_t(3, features[m].shape).astype(np.float32)
        x[np.arange(seq_len)[None, :] >= lengths[m][:, None]] = 0.0
        features[m] = x

    ids = [f"syn_{i:06d}" for i in range(total)]
    text = _transcripts(np.random.default_rng([seed, 7]),  # its own stream: arrays unchanged
                        regression if name == "mosi" else None,
                        classification if name != "mosi" else None, scale)
    bounds = np.cumsum((0,) + sizes)
    splits = {}
    for split, lo, hi in zip(SPLITS, bounds[:-1], bounds[1:]):
        part = Split(features={m: features[m][lo:hi] for m in MODALITIES},
                     lengths={m: lengths[m][lo:hi] for m in MODALITIES}, ids=ids[lo:hi],
                     raw_text=text[lo:hi])
        if name == "mosi":
            part.regression = regression[lo:hi]
            if unimodal:
                part.unimodal = {m: uni[m][lo:hi] for m in MODALITIES}
        else:
            part.classification = classification[lo:hi]
        splits[split] = part

    label = "sims" if unimodal else name
    if name == "mosi":
        return MSAData(name=f"synthetic:{label}", splits=splits, task="regression", scale=scale)
    return MSAData(name=f"synthetic:{label}", splits=splits, task="classification",
                   label_names=list(IEMOCAP_LABELS))
