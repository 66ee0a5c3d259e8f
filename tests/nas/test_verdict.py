"""The verdict against the baselines: beats / ties / loses per headline metric, with direction."""
import math
from pathlib import Path

import pandas as pd
import pytest

from evo_msa.nas.verdict import (
    Baseline,
    baseline_from_summary,
    baselines_from_frame,
    verdict,
    verdict_line,
)

TINY = Path(__file__).resolve().parents[2] / "search_spaces" / "tiny.yaml"
RIDGE = Baseline("ridge", {"mae": (0.868, None), "corr": (0.681, None), "non0_acc2": (0.807, None),
                           "acc7": (0.30, None)})


def ours(**metrics):
    return {m: {"mean": mean, "std": std} for m, (mean, std) in metrics.items()}


def by_metric(entries):
    return {v["metric"]: v for v in entries}


def test_beats_ties_and_loses_in_words():
    final = ours(mae=(0.828, 0.012), corr=(0.685, 0.010), non0_acc2=(0.787, 0.005),
                 acc7=(0.35, 0.01))
    v = by_metric(verdict(final, [RIDGE], "regression"))
    assert list(v) == ["mae", "corr", "non0_acc2"]  # headline metrics only
    assert v["mae"]["outcome"] == "beats"
    assert v["mae"]["line"] == "beats ridge on MAE by 0.040 (0.828 vs 0.868; > std 0.012)"
    assert v["corr"]["outcome"] == "ties"
    assert v["corr"]["line"] == "ties ridge on Corr (+0.004: 0.685 vs 0.681; within std 0.010)"
    assert v["non0_acc2"]["outcome"] == "loses"
    assert v["non0_acc2"]["line"] == \
        "loses to ridge on Non0-Acc2 by 0.020 (0.787 vs 0.807; > std 0.005)"


def test_mae_is_lower_is_better():
    # a higher MAE is a loss, a higher Corr a win: the same +0.05 both ways
    v = by_metric(verdict(ours(mae=(0.918, 0.01), corr=(0.731, 0.01)), [RIDGE], "regression"))
    assert v["mae"]["outcome"] == "loses" and v["mae"]["difference"] == pytest.approx(0.05)
    assert v["corr"]["outcome"] == "beats" and v["corr"]["difference"] == pytest.approx(0.05)


def test_the_best_baseline_per_metric_and_the_combined_band():
    finetune = Baseline("finetune", {"mae": (0.740, 0.020), "corr": (0.660, 0.030)})
    final = ours(mae=(0.760, 0.015), corr=(0.700, 0.010))
    v = by_metric(verdict(final, [RIDGE, finetune], "regression"))
    # MAE: finetune is the bar (0.740 < 0.868); Corr: ridge is (0.681 > 0.660)
    assert v["mae"]["baseline"] == "finetune" and v["corr"]["baseline"] == "ridge"
    assert v["mae"]["band"] == pytest.approx(math.hypot(0.015, 0.020))  # 0.025
    assert v["mae"]["outcome"] == "ties" and "within combined std 0.025" in v["mae"]["line"]
    assert v["corr"]["band"] == pytest.approx(0.010)  # ridge is deterministic: ours alone
    assert v["corr"]["outcome"] == "beats"


def test_one_seed_against_a_deterministic_baseline_says_the_band_is_0():
    v = verdict(ours(mae=(0.850, 0.0)), [RIDGE], "regression")[0]
    assert v["outcome"] == "beats" and "std 0: no spread over seeds" in v["line"]


def test_classification_headline_and_missing_metrics():
    softmax = Baseline("softmax", {"weighted_f1": (0.548, None), "acc": (0.55, None)})
    v = by_metric(verdict(ours(weighted_f1=(0.546, 0.004), acc=(0.60, 0.01), mae=(1.0, 0.1)),
                          [softmax], "classification"))
    assert list(v) == ["weighted_f1", "acc"]
    assert v["weighted_f1"]["line"].startswith("ties softmax on weighted F1 (-0.002")
    assert verdict(ours(mae=(0.8, 0.01)), [], "regression") == []


def test_baselines_from_the_runs_csv_and_from_a_summary():
    frame = pd.DataFrame([
        {"model": "ridge", "modalities": "text", "reference": True, "valid_loss": 0.8,
         "test_mae": 0.868, "test_corr": 0.681},
        {"model": "ridge", "modalities": "audio", "reference": False, "valid_loss": 1.2,
         "test_mae": 0.700, "test_corr": 0.9},  # better on test, not chosen on valid: ignored
        {"model": "finetune", "modalities": "text", "reference": False, "valid_loss": 0.7,
         "test_mae": 0.734, "test_mae_std": 0.011, "test_corr": 0.759, "test_corr_std": None},
    ])
    ridge, finetune = baselines_from_frame(frame)
    assert ridge == Baseline("ridge", {"mae": (0.868, None), "corr": (0.681, None)})
    assert finetune.test == {"mae": (0.734, 0.011), "corr": (0.759, None)}
    seeded = baseline_from_summary("mlp", {"seeds": [0, 1], "test": {"mae": {"mean": 0.9,
                                                                            "std": 0.02}}})
    fitted = baseline_from_summary("ridge", {"seeds": [0, 1], "baseline": {"deterministic": True},
                                             "test": {"mae": {"mean": 0.868, "std": 0.0}}})
    assert seeded.test == {"mae": (0.9, 0.02)} and fitted.test == {"mae": (0.868, None)}


def test_line_of_a_loss_with_a_seeded_baseline():
    line = verdict_line({"metric": "corr", "baseline": "finetune", "outcome": "loses",
                         "final": 0.70, "baseline_value": 0.76, "baseline_std": 0.01,
                         "difference": -0.06, "band": 0.02})
    assert line == "loses to finetune on Corr by 0.060 (0.700 vs 0.760; > combined std 0.020)"


def test_compared_baseline_folders(tmp_path):
    from evo_msa import api
    from evo_msa.errors import UserError
    from evo_msa.nas.verdict import read_compared

    data = "synthetic:mosi?n=120"
    api.baseline(data, model="ridge", seeds=[0, 1], out=tmp_path / "ridge", log=lambda _: None)
    ridge = read_compared(tmp_path / "ridge", data)
    assert ridge.name == "ridge" and ridge.test["mae"][1] is None  # deterministic: no std
    with pytest.raises(UserError, match="other data"):
        read_compared(tmp_path / "ridge", "synthetic:mosi?n=130")
    with pytest.raises(UserError, match="no metrics.json there"):
        read_compared(tmp_path / "nowhere", data)
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "metrics.json").write_text('{"test": {"mae": 1}}')
    with pytest.raises(UserError, match="'test' must map metrics"):
        read_compared(tmp_path / "bad", data)
    # a wrong --compare folder fails the search before its run directory exists
    with pytest.raises(UserError, match="no metrics.json there"):
        api.search(str(TINY), data, out=tmp_path / "run", compare=[str(tmp_path / "nowhere")],
                   log=lambda _: None)
    assert not (tmp_path / "run").exists()
