"""The Ray processes this one started (Linux: read from /proc), to be killed at once."""
from __future__ import annotations

import contextlib
import os
import signal
from pathlib import Path


def can_list() -> bool:
    """Is there a /proc to read them from?"""
    return Path("/proc/self/stat").exists()


def ray_descendants() -> list[int]:
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


def kill_all(pids: list[int]) -> None:
    """SIGKILL each (one already gone is skipped)."""
    for pid in pids:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
