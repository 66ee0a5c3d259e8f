"""The private Ray APIs of nas/ray_session/private.py, as the installed Ray has them: each test
fails when a Ray upgrade moves, renames or changes one (then private.py needs a look), and
`grep -rn "ray\\._" evo_msa` finds no other module."""
import inspect
import re
import sys
from pathlib import Path

import pytest

from evo_msa.nas.ray_session import private

ROOT = Path(__file__).resolve().parents[3]


def test_the_authentication_mode_is_readable_and_token_is_one_of_its_values():
    from ray._raylet import AuthenticationMode, get_authentication_mode

    assert {"DISABLED", "TOKEN"} <= set(dir(AuthenticationMode))
    assert get_authentication_mode() in (AuthenticationMode.DISABLED, AuthenticationMode.TOKEN)
    assert private.token_auth_on() in (True, False)


def test_the_config_can_be_read_again():
    from ray._raylet import Config

    assert callable(Config.initialize)
    assert "config_list" in (Config.initialize.__doc__ or "")  # initialize(string config_list)


def test_the_global_node_can_be_killed_without_grace():
    import ray._private.worker as worker
    from ray._private.node import Node

    assert hasattr(worker, "_global_node")  # None until this process starts a Ray
    params = inspect.signature(Node.kill_all_processes).parameters
    assert "allow_graceful" in params and params["allow_graceful"].default is False


def test_without_grace_swaps_the_kill_for_the_block_only():
    calls = []

    class Node:
        def kill_all_processes(self, **kw):
            calls.append(kw)

    node = Node()
    kill = node.kill_all_processes
    with private.without_grace(node, kill):
        node.kill_all_processes(check_alive=False, allow_graceful=True)
    assert calls == [{"check_alive": False, "allow_graceful": False}]
    assert node.kill_all_processes == kill


def test_the_cluster_constant_exists_and_is_put_back():
    import ray._private.ray_constants as constants

    before = constants.ENABLE_RAY_CLUSTER
    assert isinstance(before, bool)
    with private.loopback_only(True):
        assert sys.modules["ray._private.ray_constants"].ENABLE_RAY_CLUSTER is False
    assert constants.ENABLE_RAY_CLUSTER == before


@pytest.mark.parametrize("folder", ["evo_msa"])
def test_no_other_module_touches_a_private_ray_name(folder):
    offenders = sorted({str(p.relative_to(ROOT)) for p in (ROOT / folder).rglob("*.py")
                        if re.search(r"ray\._", p.read_text())})
    assert offenders == ["evo_msa/nas/ray_session/private.py"]
