"""Every study in experiments/*.yaml runs end to end with --quick (toy size, synthetic data,
into a temporary folder): what CI runs; the full-size results are in experiments/results/."""
import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from evo_msa.studies import load_study, write_summary
from evo_msa.studies.spec import Layout


def main(argv):
    """`evo-msa study ...` (the CLI's error handling included)."""
    from evo_msa import cli

    return cli.main(argv)

ROOT = Path(__file__).resolve().parents[2]
STUDIES = sorted((ROOT / "experiments").glob("*.yaml"))


def test_there_are_studies():
    names = {p.stem for p in STUDIES}
    assert {"main_table", "ablations", "evo_vs_random", "pop_size", "missing",
            "quality"} <= names


@pytest.mark.parametrize("study", STUDIES, ids=lambda p: p.stem)
def test_study_quick(study, tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)  # study files name spaces and genomes relative to the checkout
    out = tmp_path / "results"
    environ = dict(os.environ)
    rc = main(["study", str(study), "--quick", "--out", str(out),
               "--scratch", str(tmp_path / "scratch")])
    assert rc == 0
    # no variable left changed (Ray's included, whether or not Ray ran before in this
    # process); scikit-learn sets two of its own when it is first imported (a t-SNE variant),
    # and torch's inductor its cache folder when transformers first loads an encoder
    changed = {k for k in {*environ, *os.environ} if environ.get(k) != os.environ.get(k)}
    assert not changed - {"KMP_DUPLICATE_LIB_OK", "KMP_INIT_AT_FORK",
                          "TORCHINDUCTOR_CACHE_DIR"}, changed
    spec = load_study(study)
    folders = list((out / spec.name).glob("*/*/metrics.json"))
    kinds = {v["kind"] for v in spec.variants}
    if kinds & {"train", "search", "baseline", "baselines"}:
        assert folders, "no variant wrote metrics.json"
    for metrics in folders:
        folder = metrics.parent
        assert (folder / "command.txt").read_text().startswith("evo-msa study")
        prov = json.loads((folder / "provenance.json").read_text())
        assert prov["quick"] is True and "git_commit" in prov
        test = json.loads(metrics.read_text())["test"]
        assert test, folder
    # only small files: no weights, no Ray folders
    assert not [p for p in out.rglob("*") if p.suffix in (".pt", ".pkl") or p.name == "ray"]
    summary = pd.read_csv(out / "summary.csv")
    assert set(summary["study"]) == {spec.name}
    assert {"study", "dataset", "variant", "seeds"} <= set(summary.columns)
    assert (out / "RESULTS.md").read_text().startswith("# Measured results")
    if "search" in kinds:
        assert list((out / spec.name).glob("*/best_so_far.png"))
        for fvf in (out / spec.name).glob("*/*/fitness_vs_final.csv"):
            assert {"search_fitness", "final_valid_loss_mean"} <= set(pd.read_csv(fvf).columns)
    if "missing" in kinds:
        table = pd.read_csv(next((out / spec.name).glob("*/*/missing.csv")))
        assert "none" in set(table["zeroed"])
    if "tsne" in kinds:
        assert list((out / spec.name).glob("*/*/tsne.png"))


def test_summarize_only_reads_results(tmp_path):
    folder = tmp_path / "s" / "d" / "v"
    folder.mkdir(parents=True)
    (folder / "metrics.json").write_text(json.dumps({
        "seeds": [0, 1], "kind": "train", "test": {"mae": {"mean": 0.9, "std": 0.01}}}))
    summary, md = write_summary(tmp_path)
    frame = pd.read_csv(summary)
    assert frame.loc[0, "test_mae_mean"] == 0.9 and frame.loc[0, "seeds"] == 2
    assert "0.900 ± 0.010" in md.read_text()


def test_a_deterministic_baseline_is_summarised_without_a_spread(tmp_path):
    folder = tmp_path / "s" / "d" / "ridge_t"
    folder.mkdir(parents=True)
    (folder / "metrics.json").write_text(json.dumps({
        "seeds": [0, 1], "kind": "baseline", "baseline": {"deterministic": True},
        "test": {"mae": {"mean": 0.868, "std": 0.0}}}))
    _, md = write_summary(tmp_path)
    assert "| 0.868 |" in md.read_text() and "± 0.000" not in md.read_text()


def test_layout_follows_the_study_file(tmp_path):
    experiments = ROOT / "experiments"
    assert Layout.of(experiments / "main_table.yaml") == Layout(experiments)
    # a study in a subfolder without its own RESULTS.md adds to the folder above
    assert Layout.of(experiments / "extra" / "missing_from_main_table.yaml") == Layout(experiments)
    assert Layout(experiments).results == experiments / "results"
    assert Layout(experiments).notes == experiments / "notes"
    assert Layout(Path("experiments")).data_dir == Path("../shared/data")
    assert Layout.of(tmp_path / "s.yaml").results_md == tmp_path / "RESULTS.md"


def test_study_writes_beside_its_file(tmp_path, monkeypatch):
    """From any working directory: results, RESULTS.md and notes beside the study file, its
    paths (here an --arch YAML) relative to the folder above it."""
    repo = tmp_path / "repo"
    (repo / "studies" / "notes").mkdir(parents=True)
    (repo / "studies" / "notes" / "tiny.md").write_text("Commentary of tiny.")
    (repo / "arch.yaml").write_text("train: {epochs: 1}\n")
    (repo / "studies" / "tiny.yaml").write_text(
        "name: tiny\nseeds: [0]\ndatasets: [{name: syn, path: 'synthetic:mosi?n=120'}]\n"
        "variants:\n  - {name: ridge, kind: baseline, model: ridge}\n"
        "  - {name: small, kind: train, arch: arch.yaml}\n")
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    assert main(["study", "../repo/studies/tiny.yaml", "--scratch",
                 str(tmp_path / "scratch")]) == 0
    results = repo / "studies" / "results"
    for variant in ("ridge", "small"):
        assert (results / "tiny" / "syn" / variant / "metrics.json").is_file()
    assert (results / "summary.csv").is_file()
    assert "Commentary of tiny." in (repo / "studies" / "RESULTS.md").read_text()
    assert json.loads((results / "tiny" / "syn" / "small" / "metrics.json").read_text())[
        "run_config"]["train"]["epochs"] == 1


def test_summarize_a_study_folder_runs_nothing(tmp_path, capsys):
    variant = tmp_path / "results" / "s" / "d" / "v"
    variant.mkdir(parents=True)
    (variant / "metrics.json").write_text(json.dumps({
        "seeds": [0], "kind": "train", "test": {"mae": {"mean": 0.9, "std": 0.0}}}))
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "s.md").write_text("What s found.")
    study = tmp_path / "s.yaml"
    study.write_text("name: s\ndatasets: [{path: nowhere.pkl}]\nvariants: []\n")
    assert main(["study", "--summarize", str(study)]) == 0
    assert pd.read_csv(tmp_path / "results" / "summary.csv").loc[0, "test_mae_mean"] == 0.9
    assert "What s found." in (tmp_path / "RESULTS.md").read_text()
    assert "wrote" in capsys.readouterr().out


def test_bad_study_is_one_line(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\ndatasets: [{path: a.pkl}]\nvariants: [{name: a, kind: nope}]\n")
    assert main(["study", str(bad), "--quick", "--out", str(tmp_path / "o")]) == 2
    assert "kind" in capsys.readouterr().err


def test_a_benchmark_folder_gets_its_section(tmp_path):
    from evo_msa.studies.summary import write_summary

    bench = tmp_path / "results" / "strategy_bench"
    bench.mkdir(parents=True)
    (bench / "summary.md").write_text("| table | default |\n|---|---|\n| kc1 | 0.018 |\n")
    (bench / "regret_vs_trainings.png").write_bytes(b"png")
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "strategy_bench.md").write_text("What the benchmark measures.")
    _, md = write_summary(tmp_path / "results", notes=notes)
    text = md.read_text()
    assert "## strategy_bench" in text and "What the benchmark measures." in text
    assert "| kc1 | 0.018 |" in text and "(strategy_bench/regret_vs_trainings.png)" in text


def test_a_variant_run_alone_keeps_the_others_in_the_study_figures(tmp_path):
    """`--only default` redraws best_so_far.* with random's curves read back from its results."""
    from evo_msa.studies.analysis import study_figures
    from evo_msa.studies.spec import Context

    study_file = tmp_path / "s.yaml"
    study_file.write_text(
        "name: s\ndatasets: [{name: d, path: synthetic:mosi}]\nseeds: [0]\nvariants:\n"
        "  - {name: default, kind: search, space: search_spaces/tiny.yaml}\n"
        "  - {name: random, kind: search, space: search_spaces/tiny.yaml}\n")
    spec = load_study(study_file)
    out = tmp_path / "results"
    for name, best in (("default", 0.70), ("random", 0.80)):
        (out / name).mkdir(parents=True)
        pd.DataFrame({"search_seed0": [float("inf"), 0.9, best], "search_seed1": [1.0, best, best]}
                     ).rename_axis("evaluations").to_csv(out / name / "best_so_far.csv")
        pd.DataFrame({"search_fitness": [best], "final_valid_fitness_mean": [best + 0.01],
                      "final_valid_fitness_std": [0.01]}).to_csv(out / name / "fitness_vs_final.csv",
                                                                 index=False)
    ctx = Context(spec, spec.datasets[0], "synthetic:mosi", out, tmp_path / "scratch", False, "",
                  lambda line: None, tmp_path)
    curves = pd.read_csv(out / "default" / "best_so_far.csv", index_col=0)
    ctx.done["default"] = {"kind": "search", "folder": out / "default",
                           "curves": [curves[c].tolist() for c in curves]}  # run this time
    study_figures(ctx)
    table = pd.read_csv(out / "best_so_far.csv").set_index("variant")
    assert list(table.index) == ["default", "random"]
    assert table.loc["random", "final_best_mean"] == pytest.approx(0.80)
    assert table.loc["default", "final_best_mean"] == pytest.approx(0.70)
    assert (out / "best_so_far.png").is_file() and (out / "fitness_vs_final.png").is_file()


def test_the_curves_scale_leaves_out_the_first_trainings():
    """best_so_far.png's y-range: the first tenth's spike (and inf before any result) runs off
    the edge, in either direction of the fitness."""
    from evo_msa.studies.analysis import curve_scale

    falling = np.array([[np.inf] * 2 + [1.3] * 8 + list(np.linspace(0.80, 0.76, 90))])
    lo, hi = curve_scale([falling, falling + 0.01])
    assert 0.75 < lo < 0.76 and 0.81 < hi < 0.82  # the 0.76-0.81 band, padded; not 1.3
    rising = -falling  # an accuracy: the spike is at the bottom
    lo, hi = curve_scale([rising])
    assert -0.81 < lo < -0.80 and -0.76 < hi < -0.75
    assert curve_scale([np.full((2, 5), np.inf)]) is None


def test_experiment_is_the_deprecated_name_of_study(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\ndatasets: [{path: a.pkl}]\nvariants: [{name: a, kind: nope}]\n")
    assert main(["experiment", str(bad), "--quick", "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "the command is now `evo-msa study`" in err
    assert "evo-msa study: error:" in err
