"""`evo-msa data`: a dataset described (splits, shapes, labels, missing values as stored), or
one line saying why it cannot be used."""
import json
import pickle

import numpy as np
import pytest

from evo_msa.cli import main
from evo_msa.data.describe import format_description, summary
from evo_msa.errors import UserError

SIZES = {"train": 6, "valid": 3, "test": 4}


def _raw(classification=False):
    """A small MMSA-layout dict: text stored as float64 (N, D), audio as (N, 3, 2) with
    lengths; train/text holds one NaN and one -inf, train/audio one zero-length sequence."""
    rng = np.random.default_rng(0)
    raw = {}
    for s, n in SIZES.items():
        part = {"id": [f"{s}_{i}" for i in range(n)], "raw_text": ["words"] * n,
                "annotations": ["Positive"] * n,
                "text": rng.normal(size=(n, 4)),
                "audio": rng.normal(size=(n, 3, 2)).astype(np.float32),
                "audio_lengths": np.full(n, 3)}
        if classification:
            part["classification_labels"] = np.arange(n) % 2  # class 2 never occurs
        else:
            part["regression_labels"] = np.linspace(-2, 1.5, n).astype(np.float32)
        raw[s] = part
    raw["train"]["text"][0, 1] = np.nan
    raw["train"]["text"][2, 0] = -np.inf
    raw["train"]["audio_lengths"][1] = 0
    if classification:
        raw["label_names"] = ["happy", "sad", "angry"]
    return raw


def _write(tmp_path, raw, name="d.pkl"):
    path = tmp_path / name
    path.write_bytes(pickle.dumps(raw, protocol=4))
    return path


def test_pickle_counts_missing_values_as_stored(tmp_path):
    info = summary(str(_write(tmp_path, _raw())))
    assert info["task"] == "regression" and info["scale"] == 3.0
    assert info["modalities"] == ["text", "audio"]
    assert {s: p["rows"] for s, p in info["splits"].items()} == SIZES
    text, audio = (info["splits"]["train"]["features"][m] for m in ("text", "audio"))
    assert text["shape"] == [6, 1, 4] and text["dtype"] == "float64"
    assert (text["nan"], text["inf"], text["zero_length"]) == (1, 1, 0)
    assert audio["shape"] == [6, 3, 2] and audio["dtype"] == "float32"
    assert (audio["nan"], audio["zero_length"], audio["length_min"]) == (0, 1, 0)
    assert info["splits"]["valid"]["features"]["text"]["nan"] == 0
    labels = info["splits"]["train"]["labels"]
    assert labels["min"] == pytest.approx(-2) and labels["max"] == pytest.approx(1.5)
    assert info["splits"]["train"]["not_read"] == ["annotations"]
    assert info["splits"]["train"]["text"] == {"source": "raw_text"}
    assert any("train/text: 1 NaN and 1 infinite" in n for n in info["notes"])
    assert any("train/audio: 1 of 6 sequences have length 0" in n for n in info["notes"])
    text_out = format_description(info)
    assert "not read    annotations" in text_out and "(6, 1, 4)" in text_out
    assert "train  raw_text" in text_out


def test_classification_counts_per_split(tmp_path):
    info = summary(str(_write(tmp_path, _raw(classification=True))))
    assert info["label_names"] == ["happy", "sad", "angry"]
    assert info["splits"]["train"]["labels"]["counts"] == {"happy": 3, "sad": 3, "angry": 0}
    assert info["splits"]["valid"]["labels"]["counts"] == {"happy": 2, "sad": 1, "angry": 0}
    assert "train: no sample of class 'angry'" in info["notes"]


def test_synthetic_spec():
    info = summary("synthetic:iemocap?n=40&seq=3")
    assert sum(p["rows"] for p in info["splits"].values()) == 40
    assert info["task"] == "classification" and len(info["label_names"]) == 6
    assert info["steps"] == {"text": 3, "audio": 3, "vision": 3}
    assert info["splits"]["test"]["features"]["vision"]["shape"][1:] == [3, 32]
    assert sum(info["splits"]["train"]["labels"]["counts"].values()) == info["splits"]["train"]["rows"]


def test_cli_table_and_json(tmp_path, capsys):
    path = _write(tmp_path, _raw())
    assert main(["data", str(path)]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].startswith(f"d  ({path})")
    assert "label min" in out and "zero-length" in out
    assert main(["data", str(path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["splits"]["test"]["rows"] == 4


@pytest.mark.parametrize("damage, message", [
    (lambda raw: raw.pop("test"), "missing split 'test'"),
    (lambda raw: raw["valid"].__setitem__("text", np.zeros((3, 5))), "valid/text has feature dim 5"),
    (lambda raw: raw["train"]["regression_labels"].__setitem__(0, 7.0), "must lie in [-3, 3]"),
])
def test_malformed_file_is_one_line_exit_2(tmp_path, capsys, damage, message):
    raw = _raw()
    damage(raw)
    path = _write(tmp_path, raw)
    with pytest.raises(UserError, match=None):
        summary(str(path))
    assert main(["data", str(path)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    err = captured.err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("evo-msa data: error:") and message in err[0]


def test_not_a_pickle(tmp_path, capsys):
    path = tmp_path / "notes.pkl"
    path.write_text("not a pickle at all")
    assert main(["data", str(path)]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1
