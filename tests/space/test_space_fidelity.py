"""The `fidelity:` section of a search space: successive halving's rungs and keep."""
import pytest
import yaml

from evo_msa.errors import UserError
from evo_msa.space import load_space, parse_space
from evo_msa.space.fidelity import Fidelity

GENES = {"model.depth": {"type": "int", "low": 1, "high": 2}}


def space(**raw):
    return parse_space({"genes": GENES, **raw}, "s.yaml")


def test_rungs_keep_and_off():
    halving = space(fidelity={"rungs": [2, 5, 15], "keep": "1/3"}).fidelity
    assert halving.rungs_for(15) == (2, 5)  # the budget itself stops nothing
    assert halving.rungs_for(4) == (2,) and halving.keep == pytest.approx(1 / 3)
    assert space(fidelity={"rungs": [3], "keep": 0.5}).fidelity.keep == 0.5
    for off in ("off", False):
        assert space(fidelity=off).fidelity.rungs_for(15) == ()
    default = space().fidelity
    assert default == Fidelity.default() and default.rungs_for(15)
    assert default.rungs_for(4) == ()  # a short budget trains whole by default
    assert all(r < 15 for r in default.rungs_for(15))


@pytest.mark.parametrize("fidelity, message", [
    ({"rungs": [5, 2]}, "fidelity.rungs: expected 1 to 16 increasing epochs"),
    ({"rungs": [0, 2]}, "fidelity.rungs"),
    ({"rungs": "2,5"}, "fidelity.rungs"),
    ({"rungs": [2], "keep": 1.5}, "fidelity.keep: expected a fraction in (0, 1)"),
    ({"rungs": [2], "keep": "a/3"}, "fidelity.keep"),
    ({"rungs": [2], "eta": 3}, "fidelity: unknown key 'eta'"),
    ("sometimes", "fidelity: expected off or a mapping"),
    ({"screen": "warm"}, "fidelity.screen: expected one of frozen, got 'warm'"),
    ({"screen": "frozen", "rungs": [2]}, "fidelity: screen and rungs are two schedules"),
    ({"screen": "frozen", "keep": 1}, "fidelity.keep: expected a fraction in (0, 1)"),
    ({"screen": "frozen"}, "fidelity.screen: frozen screens genomes that fine-tune"),
])
def test_errors_are_one_line_naming_the_file_and_key(tmp_path, fidelity, message):
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump({"genes": GENES, "fidelity": fidelity}))
    with pytest.raises(UserError) as err:
        load_space(path)
    assert message in str(err.value) and str(path) in str(err.value)
    assert "\n" not in str(err.value)


def test_a_lookup_table_has_no_epochs_to_halve():
    raw = {"evaluator": {"table": "nb201:cifar10"}, "genes": {"Op0": {
        "type": "categorical", "choices": ["none", "skip_connect"]}}, "fidelity": {"rungs": [2]}}
    with pytest.raises(UserError, match="t.yaml: fidelity: a lookup table"):
        parse_space(raw, "t.yaml")


def test_a_screen_on_a_fine_tuning_space_replaces_the_rungs():
    fine_tuning = {"genes": {"pretrained.finetune_layers": {"type": "categorical",
                                                            "choices": [1, -1]}},
                   "fixed": {"pretrained.model": "some/encoder"}}
    screen = parse_space({**fine_tuning, "fidelity": {"screen": "frozen", "keep": "1/2"}},
                         "f.yaml").fidelity
    assert screen.screen == "frozen" and screen.keep == 0.5 and screen.rungs_for(15) == ()
    assert "frozen encoder first, the best 1/2" in screen.describe(5)
    assert screen.to_dict() == {"screen": "frozen", "keep": 0.5}
    # a space whose encoder is always frozen has nothing to screen
    frozen = {"genes": GENES, "fixed": {"pretrained.model": "some/encoder"}}
    with pytest.raises(UserError, match="never do"):
        parse_space({**frozen, "fidelity": {"screen": "frozen"}}, "f.yaml")
