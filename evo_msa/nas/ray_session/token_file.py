"""The token file a local Ray reads, readable by its owner only."""
from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Callable


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
