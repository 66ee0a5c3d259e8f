"""The command line's parser: no prefix matching, and "did you mean" for a mistyped option,
command or choice; the same hint for unknown keys of the API, space and run-config files."""
import pytest

from evo_msa.cli import build_parser, main
from evo_msa.errors import UserError, did_you_mean


@pytest.mark.parametrize("argv, hint", [
    (["search", "--generation", "2"], "unknown option '--generation', did you mean '--generations'?"),
    (["search", "--popp", "3"], "did you mean '--pop'?"),
    (["leaderboard", "runs", "--topp", "3"], "did you mean '--top'?"),
    (["serch"], "did you mean 'search'?"),
    (["search", "--strategy", "rando"], "did you mean 'random'?"),
])
def test_a_mistyped_option_is_refused_with_the_closest_one(argv, hint, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2
    assert hint in capsys.readouterr().err


def test_no_prefix_matching_anywhere():
    parser = build_parser()
    assert not parser.allow_abbrev
    with pytest.raises(SystemExit):
        parser.parse_args(["search", "--space", "s.yaml", "--gen", "2"])
    assert parser.parse_args(["search", "--space", "s.yaml", "--generations", "2"]).generations == 2


def test_did_you_mean_only_for_a_close_word():
    assert did_you_mean("popp", ["pop", "seed"]) == ", did you mean 'pop'?"
    assert did_you_mean("zzz", ["pop", "seed"]) == ""


def test_api_search_names_the_option_not_the_class():
    from evo_msa import search

    with pytest.raises(UserError) as err:
        search("search_spaces/tiny.yaml", popp=6)
    assert str(err.value) == "search: unknown option 'popp', did you mean 'pop'?"


def test_space_and_run_config_keys_get_the_hint(tmp_path):
    from evo_msa.config import RunConfig
    from evo_msa.space.space import parse_space

    with pytest.raises(UserError, match=r"'model.dept'.*did you mean 'model.depth'\?"):
        parse_space({"genes": {"model.dept": {"type": "int", "low": 1, "high": 2}}}, "s.yaml")
    with pytest.raises(UserError, match=r"unknown key 'gens', did you mean 'genes'\?"):
        parse_space({"gens": {}}, "s.yaml")
    with pytest.raises(UserError, match=r"unknown field 'dropot', did you mean 'dropout'\?"):
        RunConfig.from_dict({"model": {"dropot": 0.1}}, "a.yaml")
    with pytest.raises(UserError, match=r"did you mean 'train.lr'\?"):
        RunConfig().with_overrides({"train.lrr": 0.1})
