"""Shared fixtures."""
import os
from pathlib import Path

import pytest


@pytest.fixture
def shared_data() -> Path:
    """The real-data folder: $EVO_MSA_DATA_DIR, else `shared/data` next to the checkout; skips
    the test when it is absent."""
    env = os.environ.get("EVO_MSA_DATA_DIR")
    path = Path(env) if env else Path(__file__).resolve().parents[1].parent / "shared" / "data"
    if not path.is_dir():
        pytest.skip(f"real data not found at {path}")
    return path
