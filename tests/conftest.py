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
