"""The session: join a cluster or start a Ray of our own, and stop it (see the package).

Ray runs any code a client sends it, so a Ray we start always has token authentication, and
joining a cluster that refuses our token fails in one line. Every environment variable set for
Ray is put back as it was when the session ends.
"""
from __future__ import annotations

import contextlib
import logging
import os
import socket
import sys
from typing import Callable

from evo_msa.errors import UserError
from evo_msa.nas.interrupt import signals_deferred
from evo_msa.nas.ray_session import private, processes
from evo_msa.nas.ray_session.environment import environment, restored, with_this_checkout
from evo_msa.nas.ray_session.stderr import stderr_held
from evo_msa.nas.ray_session.token_file import private_token_file

JOIN_WAIT_S = 5  # joining a cluster: Ray retries ~1 s apart for 20 s; a refused token never heals
REACH_TIMEOUT_S = 5  # the TCP check before that; Ray itself waits 30 s+ per try on a dead port


def trial_slots(opts) -> int:
    """Trials the cluster runs at once (a generation is split into that many batches, so that
    it fills every slot)."""
    import ray

    resources = ray.cluster_resources()
    if opts.gpus_per_trial > 0:
        slots = resources.get("GPU", 0) / opts.gpus_per_trial
    else:
        slots = resources.get("CPU", 1) / opts.cpus_per_trial
    return max(1, int(slots))


class SharedRay:
    """`with SharedRay():` the searches run inside share one Ray, started by the first and shut
    down at the block's end, instead of starting one each (a study of many small searches:
    starting Ray is most of their time)."""

    active: "SharedRay | None" = None

    def __enter__(self) -> "SharedRay":
        if SharedRay.active is not None:
            raise RuntimeError("SharedRay blocks do not nest")
        self.stack, SharedRay.active = contextlib.ExitStack(), self
        self.joined = False
        return self

    def __exit__(self, *exc) -> None:
        SharedRay.active = None
        self.stack.close()

    def join(self, opts, log: Callable[[str], None] = print):
        """This search's Ray: the first search of the block connects, the others reuse it."""
        if not self.joined:  # the first search connects as a search alone would
            self.stack.enter_context(connect_ray(opts, log))
            self.joined = True
        return contextlib.nullcontext()


def ray_session(opts, log: Callable[[str], None] = print):
    """This search's Ray: the enclosing SharedRay block's, or one of its own."""
    shared = SharedRay.active
    return shared.join(opts, log) if shared is not None else connect_ray(opts, log)


@contextlib.contextmanager
def connect_ray(opts, log: Callable[[str], None] = print):
    """Join `opts.address`, or `RAY_ADDRESS` (a job's entrypoint has it), or start a Ray of our
    own: never one that a `ray start` happened to leave on this machine (that is `--address
    auto`), never without token authentication, listening on the loopback interface only, with
    a token file only its owner can read."""
    address = opts.address or os.environ.get("RAY_ADDRESS") or "local"
    joining = address != "local"
    if joining:
        why = _unreachable(address)
        if why:
            raise UserError(f"cannot reach the Ray cluster at {address}: {why} (check the "
                            f"address and port, that `ray start --head` runs there, and that "
                            f"this machine may connect to that port)")
    env = {"TUNE_DISABLE_SIGINT_HANDLER": "1"}  # our handler: stop, keep the checkpoint
    defaults = {"TUNE_DISABLE_AUTO_CALLBACK_LOGGERS": "1",  # no per-trial CSV/TBX files
                "RAY_AIR_NEW_OUTPUT": "0"}
    if not joining:
        # Ray >= 2.59 turns token auth on for a Ray that ray.init starts, unless RAY_AUTH_MODE
        # says otherwise; ours is on whatever the shell exports (the token: ~/.ray/auth_token)
        env["RAY_AUTH_MODE"] = "token"
        env["PYTHONPATH"] = with_this_checkout(os.environ.get("PYTHONPATH", ""))
        # Ray binds its servers to the node's address, which it takes to be the loopback one
        # when "clusters" are off (its macOS/Windows default): no other machine can connect
        env["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
        private_token_file(log)
    with restored(), environment(env, defaults), private.loopback_only(not joining):
        yield from _session(opts, address, joining)


def _session(opts, address: str, joining: bool):
    import ray

    if not joining and not private.token_auth_on():
        private.reread_auth_mode()
    wait = {"RAY_gcs_server_port_wait_time_s": str(JOIN_WAIT_S)} if joining else {}
    captured = ""
    try:
        # a local Ray's processes inherit this signal mask: a SIGTERM sent to the whole process
        # group then stops only this driver, which shuts them down in order (Ray already shields
        # them from SIGINT; they still die with the driver, by Ray's fate sharing)
        with signals_deferred(), environment({}, wait), stderr_held(joining) as held:
            try:
                ray.init(address=address, include_dashboard=False, log_to_driver=False,
                         logging_level=logging.ERROR, ignore_reinit_error=True,
                         configure_logging=True)
            finally:
                captured = held()
    except (ConnectionError, RuntimeError, ValueError, ray.exceptions.RayError) as exc:
        raise UserError(_join_failure(address, exc, captured)) from None
    if captured:  # joined after all: what Ray's core printed on the way is not hidden
        sys.stderr.write(captured)
    try:
        if not joining and not private.token_auth_on():
            raise UserError("the local Ray started without token authentication; refusing to "
                            "run on it (needs ray >= 2.59; unset RAY_AUTH_MODE)")
        # Tune's default for a custom searcher is one trial starting at a time: with a trial
        # actor taking seconds to start, a cluster's slots would fill one by one
        with environment({}, {"TUNE_MAX_PENDING_TRIALS_PG": str(trial_slots(opts))}):
            yield
    finally:
        _shutdown(owned=not joining)


def _shutdown(owned: bool) -> None:
    """ray.shutdown(). The processes of a Ray we started were born with SIGTERM blocked (see
    above), so Ray's graceful stop (SIGTERM, then SIGKILL after a second) waits a second for
    each of them in vain: ~5 s at the end of every search. They get the SIGKILL at once, and
    so do the agents the raylet started (which a graceful stop gave time to exit by
    themselves)."""
    import ray

    found = private.ungraceful_kill()
    if not owned or found is None or not processes.can_list():
        ray.shutdown()
        return
    ours = processes.ray_descendants()
    try:
        with private.without_grace(*found):
            ray.shutdown()
    finally:
        processes.kill_all(ours)


def _unreachable(address: str) -> str | None:
    """Why no TCP connection to ADDRESS opens within REACH_TIMEOUT_S; None if one does (or the
    address is Ray's to resolve: "auto")."""
    host, colon, port = address.rpartition("://")[2].rpartition(":")
    if not colon or not port.isdigit():
        return None
    try:
        socket.create_connection((host.strip("[]"), int(port)), REACH_TIMEOUT_S).close()
    except OSError as exc:
        return exc.strerror or str(exc) or type(exc).__name__
    return None


def _join_failure(address: str, exc: BaseException, captured: str) -> str:
    text, e = captured, exc
    while e is not None:
        text += f" {type(e).__name__} {e}"
        e = e.__cause__ or e.__context__
    if any(k in text for k in ("InvalidAuthToken", "Unauthenticated", "AuthenticationError")):
        return (f"the Ray cluster at {address} refused this client's token (check that "
                f"RAY_AUTH_MODE=token is set here and RAY_AUTH_TOKEN_PATH names a copy of the "
                f"cluster's token file)")
    detail = " ".join(str(exc).split())[:200]
    return (f"cannot join the Ray cluster at {address}: {detail} (check that `ray start --head` "
            f"runs there and that its port is reachable)")
