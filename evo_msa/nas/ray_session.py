"""The search's Ray: join a cluster or start one of our own, never without token authentication.

    with ray_session(opts):       this search's Ray (the enclosing SharedRay's, or its own)
    with SharedRay():             several searches in the block share one Ray (studies)
    trial_slots(opts)             trials the cluster runs at once

Ray runs any code a client sends it, so a Ray we start always has token authentication, and
joining a cluster that refuses our token fails in one line. Every environment variable set for
Ray is put back as it was when the session ends.
"""
from __future__ import annotations

import contextlib
import logging
import os
import secrets
import signal
import socket
import sys
import tempfile
from pathlib import Path
from typing import Callable

from evo_msa.errors import UserError
from evo_msa.nas.interrupt import signals_deferred

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
        env["PYTHONPATH"] = _with_this_checkout(os.environ.get("PYTHONPATH", ""))
        # Ray binds its servers to the node's address, which it takes to be the loopback one
        # when "clusters" are off (its macOS/Windows default): no other machine can connect
        env["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
        private_token_file(log)
    with environment(env, defaults), _loopback_only(not joining):
        yield from _session(opts, address, joining)


def _session(opts, address: str, joining: bool):
    import ray
    from ray._raylet import AuthenticationMode, Config, get_authentication_mode

    if not joining and get_authentication_mode() != AuthenticationMode.TOKEN:
        Config.initialize("")  # Ray caches the mode on first read: read RAY_AUTH_MODE again
    wait = {"RAY_gcs_server_port_wait_time_s": str(JOIN_WAIT_S)} if joining else {}
    captured = ""
    try:
        # a local Ray's processes inherit this signal mask: a SIGTERM sent to the whole process
        # group then stops only this driver, which shuts them down in order (Ray already shields
        # them from SIGINT; they still die with the driver, by Ray's fate sharing)
        with signals_deferred(), environment({}, wait), _stderr_held(joining) as held:
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
        if not joining and get_authentication_mode() != AuthenticationMode.TOKEN:
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

    try:  # Ray's own node object (not a public API: without it, the graceful stop)
        node = ray._private.worker._global_node
        kill = node.kill_all_processes
    except AttributeError:
        node = kill = None
    if not owned or kill is None or not Path("/proc/self/stat").exists():
        ray.shutdown()
        return
    ours = _ray_descendants()
    node.kill_all_processes = lambda **kw: kill(**{**kw, "allow_graceful": False})
    try:
        ray.shutdown()
    finally:
        for pid in ours:
            with contextlib.suppress(OSError):  # gone already
                os.kill(pid, signal.SIGKILL)


def _ray_descendants() -> list[int]:
    """Pids of this process's descendants that are Ray's (Linux: read from /proc)."""
    parent: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            # "pid (comm) state ppid ...": comm may hold spaces and parentheses
            text = stat.read_text()
            parent[int(text.split(" ", 1)[0])] = int(text.rsplit(")", 1)[1].split()[1])
    me, ours = os.getpid(), []
    for pid in parent:
        p, seen = parent.get(pid), 0
        while p and p != me and seen < 64:
            p, seen = parent.get(p), seen + 1
        if p == me:
            with contextlib.suppress(OSError):
                cmd = Path(f"/proc/{pid}/cmdline").read_bytes()
                if b"ray" in cmd:
                    ours.append(pid)
    return ours


@contextlib.contextmanager
def _loopback_only(on: bool):
    """The environment variable is read when Ray is first imported; in a process that imported
    it before (a notebook, a study), its constant is set for the session too."""
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


def private_token_file(log: Callable[[str], None] = print) -> Path | None:
    """The token file a local Ray reads (RAY_AUTH_TOKEN_PATH, else ~/.ray/auth_token), readable
    by its owner only: made with mode 0600 when missing (Ray would write it world-readable), and
    tightened, with a line saying so, when others may read it. None when the token comes from
    RAY_AUTH_TOKEN itself."""
    if os.environ.get("RAY_AUTH_TOKEN"):
        return None
    path = Path(os.environ.get("RAY_AUTH_TOKEN_PATH") or Path.home() / ".ray" / "auth_token")
    path = path.expanduser()
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_hex(32))  # what Ray makes: 256 random bits
        return path
    mode = path.stat().st_mode & 0o777
    if mode & 0o077:
        try:
            os.chmod(path, 0o600)
            log(f"note   {path} (the Ray token) was readable by others (mode {mode:o}); "
                f"it is now readable by its owner only (0600)")
        except OSError:
            log(f"note   {path} (the Ray token) is readable by others (mode {mode:o}) and "
                f"cannot be changed by this user: anyone who reads it can run code as you "
                f"through Ray; make it 0600")
    return path


def _with_this_checkout(pythonpath: str) -> str:
    """A local Ray's workers inherit our environment: the folder evo_msa was imported from goes
    first on their PYTHONPATH, so trials run this code even when it is not installed (a checkout
    run with `python -m evo_msa`) or another version is. A cluster's nodes install it themselves."""
    root = str(Path(__file__).resolve().parents[2])
    paths = [p for p in pythonpath.split(os.pathsep) if p]
    return os.pathsep.join(paths if root in paths else [root, *paths])


@contextlib.contextmanager
def environment(values: dict[str, str], defaults: dict[str, str] | None = None):
    """Set `values`, and `defaults` where the user has not set them, for the block only: every
    variable is back as it was afterwards."""
    defaults = {k: v for k, v in (defaults or {}).items() if k not in os.environ}
    changes = {**defaults, **values}
    saved = {k: os.environ.get(k) for k in changes}
    os.environ.update(changes)
    try:
        yield
    finally:
        for k, old in saved.items():
            if old is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = old


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


@contextlib.contextmanager
def _stderr_held(hold: bool):
    """Hold back what is written to file descriptor 2 (Ray's core logs a warning per retry of
    a failing join there); the block gets a function that ends the hold and returns the text."""
    if not hold:
        yield lambda: ""
        return
    sys.stderr.flush()
    saved = os.dup(2)
    buf = tempfile.TemporaryFile()
    os.dup2(buf.fileno(), 2)
    done: list[str] = []

    def release() -> str:
        if not done:
            os.dup2(saved, 2)
            buf.seek(0)
            done.append(buf.read().decode(errors="replace"))
        return done[0]

    try:
        yield release
    finally:
        release()
        os.close(saved)
        buf.close()
