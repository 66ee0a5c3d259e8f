"""experiments/bench_throughput.py at toy size: ways (a) and (c0), no Ray, a few seconds."""
import csv
import importlib.util
import json
import math
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "experiments" / "bench_throughput.py"


@pytest.fixture
def bench(monkeypatch):
    spec = importlib.util.spec_from_file_location("bench_throughput", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    # tiny data of the utterance layout (T = 1) and a short sequence shape
    monkeypatch.setitem(module.SHAPES, "tiny", ({"text": 12, "audio": 5, "vision": 7}, 1,
                                                (96, 40, 40)))
    monkeypatch.setitem(module.SHAPES, "tiny-seq", ({"text": 12, "audio": 5, "vision": 7}, 4,
                                                    (96, 40, 40)))
    return module


def test_toy_benchmark_writes_tables_and_a_agrees_with_c0(bench, tmp_path, monkeypatch):
    monkeypatch.setattr(sys, "argv", [
        str(SCRIPT), "--shapes", "tiny,tiny-seq", "--genomes", "2", "--epochs", "1",
        "--batch", "32", "--ways", "a,c0", "--threads", "1", "--out", str(tmp_path)])
    bench.main()
    files = sorted(p.name for p in tmp_path.iterdir())
    assert any(f.endswith(".md") for f in files) and any(f.endswith(".json") for f in files)
    ways_csv = next(tmp_path.glob("*-ways.csv"))
    with open(ways_csv) as f:
        rows = list(csv.DictReader(f))
    assert set(bench.WAY_COLUMNS) <= set(rows[0])
    assert {(r["shape"], r["way"]) for r in rows} == {
        (s, w) for s in ("tiny", "tiny-seq") for w in ("a reference loop", "c0 in-process batch")}
    for r in rows:
        assert float(r["evaluations_per_minute"]) > 0 and float(r["wall"]) > 0
    fit_csv = next(tmp_path.glob("*-fitness.csv"))
    with open(fit_csv) as f:
        genomes = list(csv.DictReader(f))
    assert {"shape", "genome", "fitness_a", "fitness_c0"} <= set(genomes[0])
    assert len(genomes) == 4
    for g in genomes:
        a, c0 = float(g["fitness_a"]), float(g["fitness_c0"])
        assert math.isfinite(a) and math.isfinite(c0)
        # same genome, seed, epochs and batch; only shuffling and the optimiser's code differ
        assert abs(a - c0) < 0.05 * max(abs(c0), 1e-3)
    report = json.loads(next(tmp_path.glob("*.json")).read_text())
    assert report["torch"] and "CPU" in report["device"] and report["shapes"][0]["load_before"]
    md = next(tmp_path.glob("*.md")).read_text()
    assert "| a reference loop |" in md and "| c0 in-process batch |" in md


def test_a_package_with_gru_genomes_against_torch_gru(bench, tmp_path, monkeypatch):
    """--shapes data --encoder gru: (a) runs every GRU expert as torch.nn.GRU over packed
    sequences (its own weights), the batched path its own GRU; both train and are timed."""
    from evo_msa.data import make_synthetic
    from tests.conftest import write_mmsa_pickle

    pkl = write_mmsa_pickle(make_synthetic("mosi", seed=0, n=160, seq_len=6), tmp_path / "s.pkl")
    gru = []
    real = bench.torch_gru_experts
    monkeypatch.setattr(bench, "torch_gru_experts",
                        lambda model, data: gru.append(real(model, data)) or gru[-1])
    monkeypatch.setattr(sys, "argv", [
        str(SCRIPT), "--shapes", "data", "--data", str(pkl), "--encoder", "gru", "--genomes", "2",
        "--epochs", "1", "--batch", "32", "--ways", "a,c0", "--threads", "1",
        "--out", str(tmp_path / "out")])
    bench.main()
    assert len(gru) == 2 and all(len(g) >= 1 for g in gru)  # every genome has a GRU expert
    with open(next((tmp_path / "out").glob("*-ways.csv"))) as f:
        rows = list(csv.DictReader(f))
    assert {r["way"] for r in rows} == {"a reference loop", "c0 in-process batch"}
    assert {r["encoder"] for r in rows} == {"gru"} and rows[0]["shape"] == "s"
    with open(next((tmp_path / "out").glob("*-fitness.csv"))) as f:
        for g in csv.DictReader(f):
            assert math.isfinite(float(g["fitness_a"])) and math.isfinite(float(g["fitness_c0"]))
            assert "gru" in g["encoders"]
