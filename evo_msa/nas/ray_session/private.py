"""Every private Ray API the project uses, here and nowhere else (tests/nas/test_ray_private.py
fails when the installed Ray changes one of them):

    ray._raylet.get_authentication_mode, AuthenticationMode   is token authentication on?
    ray._raylet.Config.initialize                              read RAY_AUTH_MODE again
    ray._private.worker._global_node.kill_all_processes        shutdown without the grace wait
    ray._private.ray_constants.ENABLE_RAY_CLUSTER              servers on the loopback only

Each has a fallback or a one-line error where Ray no longer has it.
"""
from __future__ import annotations

import contextlib
import sys
from typing import Callable


def token_auth_on() -> bool:
    """Does this process's Ray use token authentication?"""
    from ray._raylet import AuthenticationMode, get_authentication_mode

    return get_authentication_mode() == AuthenticationMode.TOKEN


def reread_auth_mode() -> None:
    """Ray caches its authentication mode on first read: make it read RAY_AUTH_MODE again."""
    from ray._raylet import Config

    Config.initialize("")


def ungraceful_kill() -> tuple[object, Callable] | None:
    """(Ray's node object, its kill_all_processes) of the Ray this process started, or None
    (no such node, or a Ray without that API: the graceful stop then)."""
    import ray

    try:
        node = ray._private.worker._global_node
        return node, node.kill_all_processes
    except AttributeError:
        return None


@contextlib.contextmanager
def without_grace(node, kill: Callable):
    """For the block, the node's processes are killed at once when Ray stops them (no second
    of grace each)."""
    node.kill_all_processes = lambda **kw: kill(**{**kw, "allow_graceful": False})
    try:
        yield
    finally:
        node.kill_all_processes = kill


@contextlib.contextmanager
def loopback_only(on: bool):
    """Ray reads RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER when it is first imported; in a process that
    imported it before (a notebook, a study), its constant is set for the block too."""
    constants = sys.modules.get("ray._private.ray_constants")
    if not on or constants is None:
        yield
        return
    saved = constants.ENABLE_RAY_CLUSTER
    constants.ENABLE_RAY_CLUSTER = False
    try:
        yield
    finally:
        constants.ENABLE_RAY_CLUSTER = saved
