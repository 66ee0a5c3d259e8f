"""In-memory dataset types shared by every layer (loader, synthetic generator, trainer).

Features are always stored 3-D, (N, T, D); utterance-level vectors have T == 1.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np

MODALITIES = ("text", "audio", "vision")
SHORT_NAMES = {"t": "text", "a": "audio", "v": "vision"}
SPLITS = ("train", "valid", "test")


@dataclass
class Split:
    """One split (train/valid/test) of an MSA dataset."""

    features: dict[str, np.ndarray]  # modality -> float32 (N, T, D)
    lengths: dict[str, np.ndarray]  # modality -> int64 (N,), valid time steps (<= T)
    regression: np.ndarray | None = None  # float32 (N,), sentiment score
    classification: np.ndarray | None = None  # int64 (N,), emotion class
    unimodal: dict[str, np.ndarray] = field(default_factory=dict)  # modality -> float32 (N,)
    ids: list[str] = field(default_factory=list)
    # the utterances as text, for a pretrained text encoder (data.text checks them when used)
    raw_text: list | None = None
    # MMSA's `text_bert`: (N, 3, T) input ids, attention mask, segment ids of a BERT vocabulary
    text_bert: np.ndarray | None = None

    def __len__(self) -> int:
        return len(next(iter(self.features.values())))


@dataclass(frozen=True)
class DataInfo:
    """What a model (and a study) needs to know about the data (dims, task), not the data."""

    dims: dict[str, int]  # modality -> feature width
    seq_lens: dict[str, int]  # modality -> T
    task: str  # "regression" or "classification"
    num_classes: int = 0  # classification only
    modalities: tuple[str, ...] = field(default=())

    @classmethod
    def from_data(cls, data: "MSAData") -> "DataInfo":
        """What `data` is, without its arrays."""
        return cls(dims=dict(data.dims), seq_lens=dict(data.seq_lens), task=data.task,
                   num_classes=data.num_classes, modalities=tuple(data.modalities))


@dataclass
class MSAData:
    """A whole dataset: three splits plus what the model and the metrics need to know."""

    name: str
    splits: dict[str, Split]
    task: str  # "regression" (sentiment score) or "classification" (emotion class)
    label_names: list[str] | None = None  # classification only
    scale: float = 3.0  # regression only: labels lie in [-scale, scale] (3: MOSI/MOSEI, 1: SIMS)
    # modality -> (mean, std) per feature that z-scored the features (train statistics);
    # None while the features are raw. A saved model keeps them to read new data the same way.
    normalization: dict[str, tuple[np.ndarray, np.ndarray]] | None = None

    @property
    def modalities(self) -> tuple[str, ...]:
        """Modalities present in the data, in canonical order."""
        feats = self.splits["train"].features
        return tuple(m for m in MODALITIES if m in feats)

    @property
    def dims(self) -> dict[str, int]:
        """Feature width per modality."""
        return {m: int(x.shape[2]) for m, x in self.splits["train"].features.items()}

    @property
    def seq_lens(self) -> dict[str, int]:
        """Time steps per modality (1: one vector per sample)."""
        return {m: int(x.shape[1]) for m, x in self.splits["train"].features.items()}

    @property
    def num_classes(self) -> int:
        """Classes of the main task (1: regression)."""
        return len(self.label_names) if self.label_names else 0

    @property
    def has_unimodal_labels(self) -> bool:
        """Does the data hold a label per modality (SIMS)?"""
        return bool(self.splits["train"].unimodal)

    def signature(self) -> dict:
        """What a model trained on this data needs of any data it reads later."""
        return {"modalities": list(self.modalities), "dims": self.dims, "seq_lens": self.seq_lens,
                "task": self.task, "label_names": self.label_names, "scale": self.scale}

    def without_test(self) -> "MSAData":
        """The same data without its test split: what selection may see (a shallow copy)."""
        return dataclasses.replace(self, splits={k: v for k, v in self.splits.items()
                                                 if k != "test"})

    def describe(self) -> str:
        """One line: name, task, split sizes and modality widths."""
        present = [s for s in SPLITS if s in self.splits]
        sizes = "/".join(str(len(self.splits[s])) for s in present)
        mods = ", ".join(f"{m}{self.seq_lens[m]}x{self.dims[m]}" for m in self.modalities)
        kind = (f"regression [-{self.scale:g},{self.scale:g}]" if self.task == "regression"
                else f"{self.num_classes}-class")
        return f"{self.name}: {sizes} ({'/'.join(present)}), {mods}, {kind}"
