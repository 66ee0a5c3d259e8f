"""What is written to file descriptor 2 (Ray's core, below Python's sys.stderr), held back."""
from __future__ import annotations

import contextlib
import os
import sys
import tempfile


@contextlib.contextmanager
def stderr_held(hold: bool):
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
