"""The search's Ray session: environment put back, trial slots from the resources."""
import os

from evo_msa.nas.ray_session import _with_this_checkout, environment


def test_environment_is_put_back(monkeypatch):
    monkeypatch.setenv("EVO_A", "user")
    monkeypatch.delenv("EVO_B", raising=False)
    monkeypatch.delenv("EVO_C", raising=False)
    with environment({"EVO_A": "ours", "EVO_B": "ours"}, {"EVO_C": "default", "EVO_A": "x"}):
        assert (os.environ["EVO_A"], os.environ["EVO_B"], os.environ["EVO_C"]) == \
            ("ours", "ours", "default")
    assert os.environ["EVO_A"] == "user"
    assert "EVO_B" not in os.environ and "EVO_C" not in os.environ


def test_a_default_never_overrides_the_user(monkeypatch):
    monkeypatch.setenv("EVO_D", "user")
    with environment({}, {"EVO_D": "default"}):
        assert os.environ["EVO_D"] == "user"
    assert os.environ["EVO_D"] == "user"


def test_workers_import_this_checkout_first():
    root = _with_this_checkout("")
    assert os.path.isdir(os.path.join(root, "evo_msa"))
    assert _with_this_checkout(os.pathsep.join(["/elsewhere", root])) == \
        os.pathsep.join(["/elsewhere", root])  # already there: left where the user put it
    assert _with_this_checkout("/elsewhere").split(os.pathsep) == [root, "/elsewhere"]
