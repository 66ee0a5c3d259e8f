"""Never silent for long: a long step (starting Ray, a generation of trainings, the final
training) says where it stands whenever the console has been quiet for a while.

    with Heartbeat(print) as beat:
        beat.doing("starting Ray")            # until something else is said
        beat.log("...")                       # every line goes through it (resets the clock)
        beat.status = lambda: engine.progress_line()

The heartbeat's thread only reads `status()` (plain attributes a step keeps up to date): the
step's own objects are never touched from two threads.
"""
from __future__ import annotations

import threading
import time
from typing import Callable

# a line after this many quiet seconds (the bar: never silent for 15 s; on a machine loaded 7x
# over its cores the heartbeat's thread was measured waiting up to 6 s for its turn)
QUIET_S = 8.0


def clock(seconds: float) -> str:
    """0m07s, 12m30s: elapsed times and ETAs on the console."""
    m, s = divmod(int(max(0.0, seconds)), 60)
    return f"{m}m{s:02d}s"


class Heartbeat:
    """Wraps a log function; a background thread logs `status()` when nothing was logged for
    `quiet` seconds (nothing when `status()` returns '' or None). `Heartbeat.active`: the one
    in use in this process, for a step deep below that has its own status (the final
    training's epochs)."""

    active: "Heartbeat | None" = None

    def __init__(self, log: Callable[[str], None], quiet: float = QUIET_S):
        self._log, self.quiet = log, quiet
        self.status: Callable[[], str | None] = lambda: None
        self._last = time.monotonic()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __getstate__(self) -> dict:
        # Tune pickles the searcher, and with it the engine's log: a copy logs, never beats
        return {"_log": self._log, "quiet": self.quiet}

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["_log"], state["quiet"])

    def log(self, line: str) -> None:
        """Say `line` (the quiet clock starts again)."""
        with self._lock:
            self._last = time.monotonic()
            self._log(line)

    def doing(self, what: str) -> None:
        """A step without counts of its own: 'starting Ray (0m12s)' while it is quiet."""
        start = time.monotonic()
        self.status = lambda: f"       {what} ({clock(time.monotonic() - start)})"

    @classmethod
    def around(cls, log: Callable[[str], None]) -> "Heartbeat":
        """The heartbeat `log` belongs to (a caller started it, e.g. the CLI before its slow
        imports), else a new one around `log`: never two beating on one console."""
        owner = getattr(log, "__self__", None)
        return owner if isinstance(owner, Heartbeat) else cls(log)

    def __enter__(self) -> "Heartbeat":
        if self._thread is not None:  # already beating (see `around`): nothing to start
            self._nested = getattr(self, "_nested", 0) + 1
            return self
        self._outer, Heartbeat.active = Heartbeat.active, self
        self._thread = threading.Thread(target=self._run, name="evo-msa-heartbeat", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        if getattr(self, "_nested", 0):
            self._nested -= 1
            return
        Heartbeat.active = self._outer
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2.0)

    def _run(self) -> None:
        while not self._stop.wait(min(0.5, self.quiet / 4)):
            if time.monotonic() - self._last < self.quiet:
                continue
            try:
                line = self.status()
            except Exception:  # noqa: BLE001 - a progress line must never stop a search
                line = None
            if line and not self._stop.is_set():
                self.log(line)
