"""`evo-msa report`: one self-contained HTML page from a run directory's files (synthetic here,
written in the formats the search and the final trainer write)."""
import json
import re

import pandas as pd
import pytest

from evo_msa.cli import main
from evo_msa.errors import UserError
from evo_msa.metrics import Objective
from evo_msa.record.evaluation import Evaluation
from evo_msa.record.leaderboard import leaderboard_frame
from evo_msa.report.html import SECTIONS, render, write_report
from evo_msa.space.fitness import Fitness
from evo_msa.status import Status

TWO = Fitness((Objective("loss"), Objective("params")))
ONE = Fitness((Objective("loss"),))
# (id, generation, loss, params, modalities): #4 is the best loss, #1 the smallest network;
# #2 is dominated by #1 (worse loss, more parameters)
ROWS = [(0, 0, 1.50, 900, "text"), (1, 0, 1.40, 500, "text|audio"), (2, 0, 1.45, 950, "audio"),
        (3, 1, 1.60, 400, "vision"), (4, 1, 1.20, 2000, "text|audio|vision")]


def _evaluations(fitness: Fitness, modalities_of_1: str = "text|audio") -> list[Evaluation]:
    out = []
    for i, gen, loss, params, mods in ROWS:
        mods = modalities_of_1 if i == 1 else mods
        values = (loss, float(params)) if fitness.multi else (loss,)
        out.append(Evaluation(
            id=i, generation=gen, parents=[], genome=[0.1 * i, 0.5], key=f"arch{i}",
            genes={"model.depth": 1 + i % 2, "model.level_widths": [8 + i, 16],
                   "model.modalities": mods.split("|"), "train.lr": 10 ** -(2 + i / 4)},
            config={}, params=params, status=Status.OK, fitness=values,
            metrics={"loss": loss, "mae": loss}, seconds=1.5, epochs=3.0))
    out.append(Evaluation(id=5, generation=1, parents=[], genome=[0.0, 0.0], key="arch5",
                          genes={"model.depth": 1, "model.level_widths": [8, 8],
                                 "model.modalities": ["text"], "train.lr": 0.01},
                          config={}, params=100, status=Status.NAN,
                          fitness=fitness.penalty(), note="diverged"))
    return out


def _summary(mae: float) -> dict:
    metric = {"mae": {"mean": mae, "std": 0.01}, "corr": {"mean": 0.5, "std": 0.02}}
    return {"test": metric, "valid": metric, "seeds": [0, 1], "params": 2000,
            "epochs": [5, 6], "best_epochs": [4, 6]}


def _model_folder(folder, best_epoch=2):
    folder.mkdir(parents=True)
    pd.DataFrame({"epoch": [1, 2, 3], "train_total": [2.0, 1.5, 1.2],
                  "train_main": [1.1, 1.0, 0.9], "valid_loss": [1.4, 1.3, 1.35]}).to_csv(
        folder / "history.csv", index=False)
    (folder / "model.json").write_text(json.dumps({"best_epoch": best_epoch}))


def make_run(path, fitness=TWO, final=True, name="synthetic:mosi?n=100",
             modalities_of_1="text|audio"):
    path.mkdir()
    objectives = fitness.to_dict()["objectives"]
    (path / "search.json").write_text(json.dumps({
        "space": "tiny.yaml", "data": name, "pop": 3, "generations": 2, "strategy": "evolution",
        "mode": "generational", "seed": 0, "final_seeds": [0, 1], "final_top": 1,
        "final_epochs": 8, "provenance": {"data_sha256": None, "git_commit": "abc123",
                                          "versions": {"python": "3.11", "torch": "2"},
                                          "host": "h", "time": "2026-01-01 00:00:00"}}))
    evaluations = _evaluations(fitness, modalities_of_1)
    leaderboard_frame(evaluations, fitness).to_csv(path / "leaderboard.csv", index=False)
    (path / "best_genome.json").write_text(json.dumps({
        "id": 4, "generation": 1, "fitness": 1.2, "metric": "loss", "direction": "min",
        "objectives": objectives, "params": 2000}))
    (path / "state.json").write_text(json.dumps({"elapsed": 75.0, "evaluations": []}))
    if final:
        (path / "final.json").write_text(json.dumps({
            "objectives": objectives, "device": "cpu", "data": name,
            "genomes": [{"rank": 1, "id": 4, **_summary(0.875)},
                        {"rank": 2, "id": 1, **_summary(0.9)}]}))
        for rank, ident in ((1, 4), (2, 1)):
            for seed in (0, 1):
                _model_folder(path / f"final/rank{rank}-id{ident}/seed_{seed}")
    return path


def _section(page: str, key: str) -> str:
    match = re.search(rf'<section id="{key}">(.*?)</section>', page, re.S)
    assert match, f"no section {key}"
    return match.group(1)


def test_search_report_is_complete_and_self_contained(tmp_path):
    run = make_run(tmp_path / "run")
    out = write_report(run)
    assert out == run / "report.html"
    page = out.read_text()
    for key, title in SECTIONS.items():
        assert f"<h2>{title}</h2>" in _section(page, key)
    # self-contained: every resource inline, no script, nothing fetched over the network
    sources = re.findall(r'\b(?:src|href)="([^"]*)"', page)
    assert sources and all(s.startswith(("data:image/png;base64,", "#")) for s in sources)
    assert not re.search(r"https?://", page) and "<script" not in page
    imgs = re.findall(r'<img src="([^"]*)"', page)
    # progress, genes, pareto, and 4 learning curves
    assert len(imgs) == 7
    summary = _section(page, "summary")
    assert "1 min 15 s" in summary and "6 (5 ok, 1 nan)" in summary
    # the top-k table starts with the best row (#4, loss 1.2) and leaves out the diverged one
    top = _section(page, "top")
    first = re.search(r'<tr class="best">(.*?)</tr>', top, re.S).group(1)
    assert re.findall(r"<td>(.*?)</td>", first)[:4] == ["1", "4", "1", "1.2000"]
    assert top.count("<tr") == 1 + 5  # header + the five usable evaluations
    pareto = _section(page, "pareto")
    assert "<img" in pareto and "3 non-dominated of 5 usable evaluations" in pareto
    assert "0.8750 ± 0.0100" in _section(page, "final")
    assert _section(page, "curves").count("<img") == 4


def test_single_objective_without_final_says_so(tmp_path):
    page = render(make_run(tmp_path / "run", fitness=ONE, final=False))
    assert 'id="pareto"' not in page and 'href="#pareto"' not in page  # no empty section
    assert "No final training yet" in _section(page, "final")
    assert "No learning curves" in _section(page, "curves")
    assert "<img" in _section(page, "progress")


def test_the_top_table_shows_the_seeds_spread_where_there_is_one(tmp_path):
    run = make_run(tmp_path / "run", fitness=ONE, final=False)
    assert "fitness_std" not in _section(render(run), "top")  # one seed each: no column
    board = pd.read_csv(run / "leaderboard.csv")
    board.loc[board["id"] == 4, "fitness_std"] = 0.0123
    board.to_csv(run / "leaderboard.csv", index=False)
    top = _section(render(run), "top")
    first = re.search(r'<tr class="best">(.*?)</tr>', top, re.S).group(1)
    assert "<th>fitness_std</th>" in top
    assert re.findall(r"<td>(.*?)</td>", first)[3:5] == ["1.2000", "0.0123"]


def test_text_from_the_run_is_escaped(tmp_path):
    run = make_run(tmp_path / "run", name="<b>data</b>", modalities_of_1="<script>x</script>",
                   final=False)
    page = render(run)
    assert "<b>data" not in page and "&lt;b&gt;data&lt;/b&gt;" in page
    assert "<script" not in page and "&lt;script&gt;x&lt;/script&gt;" in page


def test_training_run(tmp_path):
    run = tmp_path / "train"
    run.mkdir()
    (run / "metrics.json").write_text(json.dumps({**_summary(0.7), "data": "synthetic:mosi",
                                                  "run_config": {"model": {"depth": 2}}}))
    _model_folder(run / "seed_0", best_epoch=3)
    page = render(run)
    assert "0.7000 ± 0.0100" in _section(page, "final")
    assert _section(page, "curves").count("<img") == 1
    for key in ("progress", "top", "genes", "pareto"):  # nothing of a search to show
        assert f'id="{key}"' not in page and f'href="#{key}"' not in page


def test_a_deterministic_baseline_shows_no_spread(tmp_path):
    run = make_run(tmp_path / "run", fitness=ONE)
    final = json.loads((run / "final.json").read_text())
    final["baseline"] = {"model": "ridge", "modalities": "text", "test_mae": 0.8206,
                         "valid_loss": 0.75}
    (run / "final.json").write_text(json.dumps(final))
    section = _section(render(run), "final")
    assert "0.8206<" in section and "0.8206 ±" not in section and "0.8750 ± 0.0100" in section
    train = tmp_path / "ridge"
    train.mkdir()
    summary = {**_summary(0.7), "baseline": {"model": "ridge", "deterministic": True}}
    (train / "metrics.json").write_text(json.dumps(summary))
    section = _section(render(train), "final")
    assert "deterministic" in section and "0.7000<" in section and "±" not in section.split(
        "</p>", 1)[1]


def test_cli_writes_out_and_refuses_other_folders(tmp_path, capsys):
    run = make_run(tmp_path / "run", fitness=ONE, final=False)
    assert main(["report", str(run), "--out", str(tmp_path / "r.html"), "--top", "2"]) == 0
    assert _section((tmp_path / "r.html").read_text(), "top").count('<tr') == 3
    with pytest.raises(UserError, match="not a run directory"):
        render(tmp_path)
    (run / "final.json").write_text("{broken")
    assert main(["report", str(run)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "final.json: damaged, not valid JSON" in err[0]


def test_pareto_figure_from_the_search_frame():
    """What the search passes when it writes pareto.png: leaderboard_frame, bool `pareto`."""
    from evo_msa.report.plots import pareto_figure

    fig = pareto_figure(leaderboard_frame(_evaluations(TWO), TWO), TWO.objectives)
    front = [line for line in fig.axes[0].lines if line.get_label().startswith("Pareto")][0]
    assert sorted(zip(front.get_xdata(), front.get_ydata())) == [
        (1.2, 2000.0), (1.4, 500.0), (1.6, 400.0)]
