"""The leaderboard: one row per evaluation, one tidy CSV per search."""
from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from evo_msa.errors import UserError

# statuses whose fitness is a real measurement (early-stopped: ASHA cut it, its best so far stands)
USABLE = ("ok", "cached", "early-stopped")
FIRST_COLUMNS = ["generation", "id", "parents", "status", "fitness", "params", "seconds",
                 "epochs", "note"]


def genes_to_columns(decoded: dict) -> dict:
    """Decoded genes as CSV cells: lists joined with '|' (level widths, modality mask)."""
    return {f"gene:{k}": "|".join(map(str, v)) if isinstance(v, list) else v
            for k, v in decoded.items()}


def to_frame(rows: list[dict]) -> pd.DataFrame:
    frame = pd.DataFrame(rows)
    if frame.empty:
        return pd.DataFrame(columns=FIRST_COLUMNS)
    first = [c for c in FIRST_COLUMNS if c in frame.columns]
    genes = sorted(c for c in frame.columns if c.startswith("gene:"))
    rest = [c for c in frame.columns if c not in first and c not in genes]
    return frame[first + genes + rest]


def write_csv_atomic(frame: pd.DataFrame, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    frame.to_csv(tmp, index=False)
    os.replace(tmp, path)


def read_leaderboards(run_dirs: list[str]) -> pd.DataFrame:
    """Merge the leaderboards of several runs, with a `run` column."""
    frames = []
    for d in run_dirs:
        path = Path(d) / "leaderboard.csv" if Path(d).is_dir() else Path(d)
        if not path.is_file():
            raise UserError(f"{d}: no leaderboard.csv there")
        frame = pd.read_csv(path)
        frame.insert(0, "run", Path(d).name if Path(d).is_dir() else path.parent.name)
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def top(frame: pd.DataFrame, k: int, direction: str = "min") -> pd.DataFrame:
    ok = frame[frame["status"].isin(USABLE)] if "status" in frame else frame
    ok = ok.drop_duplicates(subset=[c for c in ok.columns if c.startswith("gene:")] or None)
    return ok.sort_values("fitness", ascending=(direction == "min")).head(k)
