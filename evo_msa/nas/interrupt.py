"""Ctrl-C and SIGTERM during a search: stop in order, keep the last checkpoint, say how to resume.

    StopGuard(on_stuck).catching()  the first SIGINT/SIGTERM raises Interrupted; a second one
                                    exits at once; a stop that hangs is cut after STOP_GRACE_S
    with signals_deferred():        a block (a checkpoint write) that no signal cuts in half
    interruption(exc)               the Interrupted behind an exception, if any
"""
from __future__ import annotations

import contextlib
import os
import signal
import threading
from typing import Callable

STOP_GRACE_S = 15.0  # an orderly stop that takes longer than this is cut short

# signals_deferred blocks SIGINT/SIGTERM for this thread, but the kernel may hand a signal to
# another thread (Ray's), whose C handler makes ours run in the main thread anyway: a handler
# called inside a deferred block records the signal here and the block's end raises it.
_deferred = {"depth": 0, "pending": []}


class Interrupted(BaseException):
    """SIGINT/SIGTERM during a run (a BaseException: no `except Exception` swallows it)."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.exit_code = 128 + signum  # 130 for SIGINT, 143 for SIGTERM


def interruption(exc: BaseException | None) -> Interrupted | None:
    """The Ctrl-C/SIGTERM behind `exc`: a signal that lands inside Ray's compiled code comes
    back wrapped (SystemError "returned a result with an exception set")."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, Interrupted):
            return exc
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return None


class StopGuard:
    """SIGINT/SIGTERM inside `catching()` raise Interrupted once; a second signal exits at once.
    Should the orderly stop hang (e.g. a cluster that died under it, or Ray's shutdown after
    the block), a watchdog calls `on_stuck(exit code)` and exits after `grace_s`, unless
    `disarm()` is called once the stop is over."""

    def __init__(self, on_stuck: Callable[[int], None] = lambda code: None,
                 grace_s: float = STOP_GRACE_S):
        self.on_stuck, self.grace_s = on_stuck, grace_s
        self.hits: list[int] = []
        self.watchdog: threading.Timer | None = None

    def _handler(self, signum, frame):
        code = 128 + signum
        if self.hits or _deferred["pending"]:  # the second signal: exit at once
            os._exit(code)
        if _deferred["depth"]:
            _deferred["pending"].append((self, signum))
            return
        self.hits.append(signum)

        def force():
            self.on_stuck(code)
            os._exit(code)

        self.watchdog = threading.Timer(self.grace_s, force)
        self.watchdog.daemon = True
        self.watchdog.start()
        raise Interrupted(signum)

    @contextlib.contextmanager
    def catching(self):
        """Our handlers for the block; the previous ones are back after it."""
        previous = {s: signal.signal(s, self._handler) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield self
        finally:
            for s, h in previous.items():
                signal.signal(s, h)

    def disarm(self) -> None:
        """Cancel the watchdog (the search stopped in time)."""
        if self.watchdog is not None:
            self.watchdog.cancel()


@contextlib.contextmanager
def signals_deferred():
    """SIGINT/SIGTERM wait until the block ends (processes started inside inherit the mask)."""
    blocked = {signal.SIGINT, signal.SIGTERM}
    old = signal.pthread_sigmask(signal.SIG_BLOCK, blocked)
    _deferred["depth"] += 1
    try:
        yield
    finally:
        _deferred["depth"] -= 1
        signal.pthread_sigmask(signal.SIG_SETMASK, old)  # a blocked signal is handled here
        if not _deferred["depth"] and _deferred["pending"]:
            guard, signum = _deferred["pending"].pop()
            _deferred["pending"].clear()
            guard._handler(signum, None)
