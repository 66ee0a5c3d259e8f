"""The final trainer on a tiny synthetic run: finalists retrained, the final model chosen on
valid (single or greedy ensemble), test read once after the choice, final.json, the verdict;
predict and export of the ensemble it leaves."""
import json
import random
from pathlib import Path

import numpy as np
import pytest

from evo_msa import api
from evo_msa.nas import final as final_module
from evo_msa.nas.final import ensemble_size, final_config, final_trainer
from evo_msa.nas.options import SearchOptions, final_settings
from evo_msa.nas.references import fit_references
from evo_msa.record import rundir
from evo_msa.record.evaluation import Evaluation
from evo_msa.record.rundir import RunDir
from evo_msa.space import load_space
from evo_msa.training.ensemble import combine, load_predictor, write_ensemble

ROOT = Path(__file__).resolve().parents[2]
TINY = str(ROOT / "search_spaces" / "tiny.yaml")
DATA = "synthetic:mosi?n=160&seed=4"


def finalists(space, data, k):
    rng = random.Random(3)
    out = []
    for i in range(k):
        genome = space.sample(rng)
        cfg = space.to_config(genome, available=data.modalities)
        cfg.train.epochs = 1  # the final trainer raises it to final_epochs
        out.append(Evaluation(id=10 + i, generation=0, parents=[], genome=genome,
                              genes=space.decode(genome), config=cfg.to_dict(), key=str(i),
                              params=0, fitness=(1.0 + i / 100,)))
    return out


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A final training of 3 finalists x 2 seeds, with a spy on what is read when."""
    from evo_msa.data import load_data
    from evo_msa.data.loader import load_split as real_load_split
    from evo_msa.nas.ensemble import greedy_selection as real_selection

    space, data = load_space(TINY), load_data(DATA)
    out = RunDir.create(tmp_path_factory.mktemp("final") / "run")
    out.write_csv(rundir.BASELINES, fit_references(data, log=lambda _: None))
    events, lines = [], []

    def load_split(spec, split):
        events.append(split)
        return real_load_split(spec, split)

    def greedy_selection(candidates, score, objective, rounds):
        events.append("selection")
        return real_selection(candidates, score, objective, rounds)

    mlp = tmp_path_factory.mktemp("mlp")  # a seeded baseline given to --compare
    api.baseline(DATA, model="mlp", seeds=[0, 1], out=mlp, log=lambda _: None)
    opts = SearchOptions(space=TINY, data=DATA, final_seeds=[0, 1], final_epochs=2, ensemble=3,
                         compare=[str(mlp)])
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr("evo_msa.data.loader.load_split", load_split)
        mp.setattr(final_module, "greedy_selection", greedy_selection)
        final = final_trainer(out, space, data, finalists(space, data, 3), opts,
                              log=lines.append)
    return out.path, final, events, lines


def test_test_is_read_once_after_the_choice_on_valid(run):
    _, final, events, _ = run
    assert events == ["valid", "selection", "test"]
    sel = final["final_model"]["selection"]
    assert sel["metric"] == "mae"  # tiny's fitness is the loss: its L1 main-task part
    assert sel["candidates"] == [10, 11, 12] and sum(sel["counts"]) == 25
    assert not any("test" in k for k in sel)


def test_final_json_says_what_it_holds(run):
    path, final, _, _ = run
    assert json.loads((path / "final.json").read_text())["final_model"] == final["final_model"]
    fm = final["final_model"]
    sel = fm["selection"]
    better = sel["valid_ensemble"] < sel["valid_single"]
    assert sel["chosen"] == ("ensemble" if better else "single")
    weights = {m["id"]: m["weight"] for m in fm["members"]}
    assert sum(weights.values()) == pytest.approx(1.0)
    if better:  # greedy selection's outcome, weights = counts / rounds
        counts = dict(zip(sel["candidates"], sel["counts"]))
        assert weights == {i: pytest.approx(counts[i] / 25) for i in counts if counts[i]}
    else:
        assert weights == {10: 1.0}  # the search's pick
    assert fm["kind"] == ("ensemble" if len(weights) > 1 else "single")
    assert (path / fm["folder"]).is_dir()
    assert all(len(m["genome"]) == len(final["genomes"][0]["genome"]) for m in fm["members"])
    for split in ("valid", "test"):
        per_seed, pooled = fm[split]["per_seed"], fm[split]["seed_ensemble"]
        assert set(per_seed["mae"]) == {"mean", "std"} and isinstance(pooled["mae"], float)
    chosen_valid = sel["valid_ensemble"] if better else sel["valid_single"]
    assert fm["valid"]["seed_ensemble"]["mae"] == pytest.approx(chosen_valid)
    assert set(final["figures"]) == {"per_seed", "seed_ensemble"}
    for g in final["genomes"]:  # every finalist: both test figures, named apart
        assert "mean" in g["test"]["mae"] and isinstance(g["test_seed_ensemble"]["mae"], float)
        # the per-seed figures the training recorded are the saved models' own
        assert g["test"]["mae"]["std"] >= 0


def test_an_ensemble_that_wins_on_valid_is_saved_and_predicted(run, tmp_path):
    # two copies of one trained finalist, their output shifted +3 and -3: alone each is far
    # off, together they are the original model again, so the ensemble must win on valid
    import shutil

    import torch

    from evo_msa.data import load_data

    path, final, _, _ = run
    source = path / final["genomes"][0]["folder"]
    out = RunDir.create(tmp_path / "run")
    entries = []
    for rank, shift in ((1, 3.0), (2, -3.0)):
        folder = rundir.final_folder(rank, 20 + rank)
        shutil.copytree(source, out.file(folder))
        for weights in out.file(folder).glob("seed_*/model.pt"):
            state = torch.load(weights, weights_only=True)
            state["tower.main.out.bias"] += shift
            torch.save(state, weights)
        entries.append({"rank": rank, "id": 20 + rank, "folder": folder, "seeds": [0, 1],
                        "genome": final["genomes"][0]["genome"]})
    fm = final_module.choose_final_model(out, load_space(TINY), load_data(DATA), entries, 2,
                                         DATA, log=lambda _: None)
    sel = fm["selection"]
    assert fm["kind"] == "ensemble" and fm["folder"] == rundir.ENSEMBLE
    assert sel["chosen"] == "ensemble" and sel["valid_ensemble"] < sel["valid_single"] - 1
    assert all(sel["counts"]) and sum(sel["counts"]) == 25  # both, by valid MAE
    saved = json.loads(out.file(f"{rundir.ENSEMBLE}/ensemble.json").read_text())
    assert [m["folder"] for m in saved["members"]] == ["../rank1-id21", "../rank2-id22"]
    out.write_json(rundir.FINAL_JSON, {"final_model": fm})
    _, metrics = api.predict(out.path, DATA, log=lambda _: None)  # the run: its ensemble
    assert metrics["mae"] == pytest.approx(fm["test"]["seed_ensemble"]["mae"], abs=1e-6)
    assert load_predictor(out.path).kind == "ensemble"


def test_verdict_in_final_json_and_the_last_lines(run):
    _, final, _, lines = run
    v = final["verdict"]
    assert [x["metric"] for x in v] == ["mae", "corr", "non0_acc2"]
    bars = {b["name"]: b["test"] for b in final["baselines"]}
    assert set(bars) == {"ridge", "mlp"} and bars["ridge"]["mae"]["std"] is None
    assert bars["mlp"]["mae"]["std"] > 0  # two seeds: a real std, part of the band
    for x in v:  # against the better of the two on each metric
        best = (min if x["metric"] == "mae" else max)(
            bars, key=lambda name: bars[name][x["metric"]]["mean"])
        assert x["baseline"] == best
        assert (x["baseline_std"] is None) == (best == "ridge")
    assert all(x["outcome"] in ("beats", "ties", "loses") for x in v)
    assert lines[-3:] == [f"  {x['line']}" for x in v]
    assert lines[-4].startswith("verdict on test")
    assert any(line.startswith("ensemble greedy selection on valid mae over 3") for line in lines)
    assert any("ensemble candidate(s) beyond the best took" in line for line in lines)


def test_predict_on_the_run_gives_the_final_models_seed_ensemble(run):
    path, final, _, _ = run
    table, metrics = api.predict(path, DATA, log=lambda _: None)
    pooled = final["final_model"]["test"]["seed_ensemble"]
    assert metrics["mae"] == pytest.approx(pooled["mae"], abs=1e-6)
    assert metrics["corr"] == pytest.approx(pooled["corr"], abs=1e-6)
    assert len(table) == len(metrics and table["prediction"])


def test_a_saved_ensemble_predicts_and_exports_as_its_weighted_members(run, tmp_path):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    import onnxruntime as ort

    from evo_msa.data.loader import load_split

    path, final, _, _ = run
    # one seed of each of two finalists (every part costs the ONNX exporter seconds)
    a, b = (f"{g['folder']}/seed_0" for g in final["genomes"][:2])
    write_ensemble(RunDir(path), "final/by_hand", [{"folder": a, "weight": 0.75},
                                                   {"folder": b, "weight": 0.25}])
    ens = path / "final" / "by_hand"
    pred = api.predict(ens, DATA, log=lambda _: None)[0]["prediction"].to_numpy()
    singles = [api.predict(path / f, DATA, log=lambda _: None)[0]["prediction"].to_numpy()
               for f in (a, b)]
    np.testing.assert_allclose(pred, combine(singles, [0.75, 0.25]), atol=1e-6)

    onnx = tmp_path / "ens.onnx"
    side = api.export(ens, onnx, log=lambda _: None)
    assert side["kind"] == "ensemble" and side["max_abs_difference_vs_pytorch"] < 1e-4
    assert [m["weight"] for m in side["members"]] == [0.75, 0.25]
    part, _, _ = load_split(DATA, "test")
    session = ort.InferenceSession(str(onnx), providers=["CPUExecutionProvider"])
    feed = {i.name: (part.features[i.name] if not i.name.endswith("_lengths") else
                     part.lengths[i.name[:-len("_lengths")]].astype(np.int64))
            for i in session.get_inputs()}
    np.testing.assert_allclose(session.run(None, feed)[0], pred, atol=1e-4)


def test_ensemble_option_decides_the_candidates():
    space = load_space(TINY)
    assert ensemble_size(SearchOptions(ensemble=3), space) == 3
    assert ensemble_size(SearchOptions(ensemble=1), space) == 0
    assert ensemble_size(SearchOptions(ensemble=0), space) == 0
    assert ensemble_size(SearchOptions(), space) == 3  # the engine's default


def test_a_spaces_final_section_sets_the_defaults_the_options_override():
    import dataclasses

    from evo_msa.data import load_data

    space = dataclasses.replace(load_space(TINY), final={"epochs": 5, "ensemble": 1})
    assert final_settings(SearchOptions(), space) == (5, 1)
    assert ensemble_size(SearchOptions(), space) == 0
    assert final_settings(SearchOptions(final_epochs=7, ensemble=2), space) == (7, 2)
    assert final_settings(SearchOptions(), load_space(TINY)) == (50, 3)
    cfg = final_config(finalists(space, load_data(DATA), 1)[0], 5)
    assert cfg.train.epochs == 5  # not the engine's 50: a fine-tuning schedule is its budget
