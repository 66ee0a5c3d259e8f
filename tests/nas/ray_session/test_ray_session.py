"""The search's Ray session: environment put back, trial slots from the resources."""
import os

from evo_msa.nas.ray_session.environment import environment, restored, with_this_checkout


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


def test_what_a_library_exports_inside_a_session_is_taken_back(monkeypatch):
    monkeypatch.setenv("EVO_E", "user")
    monkeypatch.setenv("EVO_F", "user")
    monkeypatch.delenv("EVO_G", raising=False)
    with restored():  # as ray.init does: set, change and remove variables of its own
        os.environ["EVO_G"] = "ray"
        os.environ["EVO_E"] = "ray"
        del os.environ["EVO_F"]
    assert (os.environ["EVO_E"], os.environ["EVO_F"]) == ("user", "user")
    assert "EVO_G" not in os.environ


def test_workers_import_this_checkout_first():
    root = with_this_checkout("")
    assert os.path.isdir(os.path.join(root, "evo_msa"))
    assert with_this_checkout(os.pathsep.join(["/elsewhere", root])) == \
        os.pathsep.join(["/elsewhere", root])  # already there: left where the user put it
    assert with_this_checkout("/elsewhere").split(os.pathsep) == [root, "/elsewhere"]


def test_a_missing_token_file_is_made_for_its_owner_only(tmp_path, monkeypatch):
    from evo_msa.nas.ray_session import private_token_file

    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("RAY_AUTH_TOKEN", raising=False)
    monkeypatch.delenv("RAY_AUTH_TOKEN_PATH", raising=False)
    lines = []
    path = private_token_file(lines.append)
    assert path == tmp_path / ".ray" / "auth_token"
    assert path.stat().st_mode & 0o777 == 0o600
    assert len(path.read_text()) == 64 and not lines  # 256 bits, as Ray makes them


def test_a_token_file_others_may_read_is_tightened_with_one_line(tmp_path, monkeypatch):
    from evo_msa.nas.ray_session import private_token_file

    token = tmp_path / "token"
    token.write_text("abc")
    token.chmod(0o644)
    monkeypatch.setenv("RAY_AUTH_TOKEN_PATH", str(token))
    monkeypatch.delenv("RAY_AUTH_TOKEN", raising=False)
    lines = []
    assert private_token_file(lines.append) == token
    assert token.stat().st_mode & 0o777 == 0o600 and token.read_text() == "abc"
    assert len(lines) == 1 and "readable by others (mode 644)" in lines[0]
    private_token_file(lines.append)
    assert len(lines) == 1  # already private: nothing to say
