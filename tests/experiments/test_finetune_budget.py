"""experiments/finetune_budget.py: the policies on hand-made curves, and a toy recording."""
import importlib
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

EXPERIMENTS = Path(__file__).resolve().parents[2] / "experiments"
SPACE = Path(__file__).resolve().parents[2] / "search_spaces" / "haemsa_finetune.yaml"


@pytest.fixture
def script(monkeypatch):
    monkeypatch.syspath_prepend(str(EXPERIMENTS))
    monkeypatch.delitem(sys.modules, "finetune_budget", raising=False)
    return importlib.import_module("finetune_budget")


def recorded(script):
    """8 genomes, 3 epochs: genome g's fine-tuned fitness is 1 + g/10 at the end, but at epoch 1
    the order of the odd ones is reversed; frozen fitness ranks genome 7 best; each fine-tuned
    epoch costs 10 s (depth -1) or 2 s (depth 1), each frozen epoch 1 s."""
    curves, genomes = [], []
    for g in range(8):
        depth = -1 if g % 2 == 0 else 1
        first = 1 + (g if g % 2 == 0 else 8 - g) / 10
        fit = [first + 1.0, 1 + g / 10 + 0.2, 1 + g / 10]
        for e in range(3):
            curves.append({"genome": g, "mode": "finetuned", "epoch": e + 1, "value": fit[e],
                           "select": fit[e], "seconds": 10.0 if depth == -1 else 2.0})
            frozen = 2 + (7 - g) / 10
            curves.append({"genome": g, "mode": "frozen", "epoch": e + 1, "value": frozen,
                           "select": frozen, "seconds": 1.0})
        genomes += [{"genome": g, "mode": "finetuned", "depth": depth, "test_mae": 0.7 + g / 100,
                     "test_corr": 0.8 - g / 100},
                    {"genome": g, "mode": "frozen", "depth": 0, "test_mae": 0.9,
                     "test_corr": 0.6}]
    return script.Recorded(pd.DataFrame(curves), pd.DataFrame(genomes))


def test_each_policy_spends_within_its_budget_and_finishes_what_its_rule_says(script):
    rec = recorded(script)
    order = list(range(8))
    assert rec.headline == ["mae", "corr"] and rec.truth[3] == pytest.approx(1.3)
    # whole: 30 + 6 + 30 s buys genomes 0, 1, 2; genome 3 (6 s) no longer fits in 70
    spend = script.whole(rec, order, 70.0)
    assert spend.done == [0, 1, 2] and spend.spent == 66.0 and spend.pick() == 0
    # rungs at epoch 1, keep 1/2: the 4 best at epoch 1 (genomes 7, 0, 5, 2) finish
    spend = script.rungs(rec, order, 1e9, (1,), 0.5)
    assert sorted(spend.done) == [0, 2, 5, 7]
    assert spend.spent == 4 * 10 + 4 * 2 + 2 * 20 + 2 * 4
    # frozen first: all 8 trained frozen (24 s), then the 2 best frozen (7, 6) fine-tuned
    spend = script.frozen_first(rec, order, 1e9, 2)
    assert spend.done == [7, 6] and spend.spent == 24 + 6 + 30 and spend.pick() == 6
    assert script.frozen_first(rec, order, 30.0, 2).done == [7]  # 24 + 6 fits, then 30 does not
    # cost-aware: each depth once (0, then 1); genome 1 (fitness 1.1) is 5 of its own stds
    # (floored at 0.02) behind the incumbent (1.0), so every all-layer genome goes first
    spend = script.cost_aware(rec, order, 1e9)
    assert spend.done == [0, 1, 2, 4, 6, 3, 5, 7]
    assert script.cost_aware(rec, order, 60.0).done == [0, 1]


def test_the_summary_scores_every_policy_at_every_budget(script):
    rec = recorded(script)
    summary = script.simulate(rec, [40.0, 1e9], draws=20)
    names = [name for name, _ in script.policies(rec)]
    assert list(summary["policy"].unique()) == names and len(summary) == 2 * len(names)
    unlimited = summary[summary["cpu_minutes"] > 1].set_index("policy")
    # with no limit, training everything whole holds the best genome in every draw
    assert unlimited.loc["whole", "valid_fitness"] == pytest.approx(1.0)
    assert unlimited.loc["whole", "test_mae"] == pytest.approx(0.7)
    assert (summary["valid_fitness"].dropna() >= 1.0).all()


def test_a_toy_recording_trains_every_genome_fine_tuned_and_frozen(script, tmp_path,
                                                                   mosi_pickle, tiny_encoder):
    raw = yaml.safe_load(SPACE.read_text())
    raw["genes"][script.DEPTH] = {"type": "categorical", "choices": [1, -1]}
    raw["fixed"].update({"pretrained.model": tiny_encoder, "pretrained.max_tokens": 16,
                         "train.epochs": 2, "train.patience": 2})
    space = tmp_path / "tiny.yaml"
    space.write_text(yaml.safe_dump(raw))
    out = tmp_path / "out"
    script.main(["--data", mosi_pickle, "--space", str(space), "--genomes", "3", "--shards", "2",
                 "--draws", "5", "--out", str(out)])
    curves = pd.read_csv(out / "curves.csv")
    genomes = pd.read_csv(out / "genomes.csv")
    assert sorted(genomes["genome"].unique()) == [0, 1, 2]
    assert (genomes.groupby("genome")["mode"].apply(sorted) == [["finetuned", "frozen"]] * 3).all()
    assert set(genomes[genomes["mode"] == "frozen"]["depth"]) == {0}
    assert (curves.groupby(["genome", "mode"])["epoch"].max() == 2).all()
    assert (curves["seconds"] > 0).all() and np.isfinite(genomes["test_mae"]).all()
    for name in ("summary.csv", "per_depth.csv", "ranks.csv", "README.md"):
        assert (out / name).is_file()
    assert not list(out.glob("*.[01].csv"))  # the shards' parts, merged
