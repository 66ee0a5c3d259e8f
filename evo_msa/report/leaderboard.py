"""The leaderboard: one row per evaluation, one tidy CSV per search."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from evo_msa import rundir
from evo_msa.errors import UserError
from evo_msa.io import file_kind
from evo_msa.metrics import Objective
from evo_msa.nas.evaluation import Evaluation
from evo_msa.space.fitness import Fitness
from evo_msa.status import Status

FIRST_COLUMNS = ["generation", "id", "parents", "status", "rung", "fitness", "fitness_std",
                 "pareto", "params", "seconds", "epochs", "seeds", "population", "node", "device",
                 "note", "fingerprint"]


def leaderboard_frame(evaluations: list[Evaluation], fitness: Fitness) -> pd.DataFrame:
    """Rows in the order evaluations settled; `pareto` marks the non-dominated ones when the
    fitness has several objectives."""
    if not evaluations:
        return pd.DataFrame(columns=FIRST_COLUMNS)
    frame = pd.DataFrame([e.row(fitness) for e in evaluations])
    if fitness.multi:
        front = {e.id for e in pareto_front(evaluations, fitness)}
        frame.insert(5, "pareto", frame["id"].isin(front))
    first = [c for c in FIRST_COLUMNS if c in frame.columns]
    fits = [c for c in frame.columns if c.startswith("fitness:")]
    genes = sorted(c for c in frame.columns if c.startswith("gene:"))
    rest = [c for c in frame.columns if c not in first and c not in genes and c not in fits]
    return frame[first + fits + genes + rest]


def ranked(evaluations: list[Evaluation], fitness: Fitness, k: int) -> list[Evaluation]:
    """The k best usable evaluations on the primary objective, one per architecture."""
    usable = [e for e in evaluations if e.status.usable and fitness.usable(e.fitness)]
    usable.sort(key=lambda e: fitness.primary.loss(e.fitness[0]))
    seen, out = set(), []
    for e in usable:
        if e.key not in seen:
            seen.add(e.key)
            out.append(e)
    return out[:k]


def pareto_front(evaluations: list[Evaluation], fitness: Fitness) -> list[Evaluation]:
    """Usable evaluations that no other usable one dominates (one per architecture)."""
    usable = [e for e in ranked(evaluations, fitness, len(evaluations))]
    return [e for e in usable
            if not any(fitness.dominates(o.fitness, e.fitness) for o in usable if o is not e)]


def read_leaderboards(run_dirs: list[str]) -> pd.DataFrame:
    """Merge the leaderboards of several runs, with a `run` column."""
    frames = []
    for d in run_dirs:
        path = Path(d) / rundir.LEADERBOARD if Path(d).is_dir() else Path(d)
        if path.exists() and not path.is_file():  # a FIFO would block read_csv
            raise UserError(f"{path}: is {file_kind(path.stat().st_mode)}, not a run directory "
                            "or a " f"{rundir.LEADERBOARD}")
        if not path.is_file():
            raise UserError(f"{d}: no {rundir.LEADERBOARD} there")
        try:
            frame = pd.read_csv(path)
        except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
            raise UserError(f"{path}: damaged, not a readable CSV "
                            f"({str(exc).splitlines()[0][:120]})") from None
        frame.insert(0, "run", Path(d).name if Path(d).is_dir() else path.parent.name)
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def usable_rows(frame: pd.DataFrame) -> pd.DataFrame:
    """Rows of a leaderboard CSV with a measurement at the full budget (ok, cached) and a
    finite fitness."""
    import numpy as np

    ok = frame[frame["status"].isin(Status.usable_values())] if "status" in frame else frame
    return ok[np.isfinite(ok["fitness"].astype(float))]


def top_rows(frame: pd.DataFrame, k: int, objective: Objective) -> pd.DataFrame:
    """The k best usable rows of a leaderboard CSV, one per decoded architecture."""
    ok = usable_rows(frame)
    genes = [c for c in ok.columns if c.startswith("gene:")]
    ok = ok.drop_duplicates(subset=genes or None)
    return ok.sort_values("fitness", ascending=objective.ascending()).head(k)


def run_objective(runs: list[str]) -> Objective:
    """The primary objective of the first run that recorded one (best_genome.json)."""
    import json

    for run in runs:
        best = Path(run) / rundir.BEST
        if best.is_file():
            info = json.loads(best.read_text())
            return Objective(info.get("metric", "loss"), info.get("direction", ""))
    return Objective("loss")
