"""The leaderboard: one row per evaluation, one tidy CSV per search; written from the
evaluation records and read back here only (`read_leaderboard`)."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from evo_msa.errors import UserError
from evo_msa.io import file_kind
from evo_msa.metrics import Objective
from evo_msa.record import rundir
from evo_msa.record.best import objectives, read_best
from evo_msa.record.evaluation import Evaluation
from evo_msa.record.ranking import pareto_front
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


def read_leaderboard(path: str | Path) -> pd.DataFrame:
    """The leaderboard CSV, read by the one CSV reader (rundir.load_csv): the status value
    "nan" (a diverged training) and a gene's "None" stay text."""
    path = Path(path)
    if path.exists() and not path.is_file():  # a FIFO would block read_csv
        raise UserError(f"{path}: is {file_kind(path.stat().st_mode)}, not a run directory "
                        f"or a {rundir.LEADERBOARD}")
    if not path.is_file():
        raise UserError(f"{path}: no such {rundir.LEADERBOARD}")
    return rundir.load_csv(path, "a search's leaderboard")


def read_leaderboards(run_dirs: list[str]) -> pd.DataFrame:
    """Merge the leaderboards of several runs, with a `run` column."""
    frames = []
    for d in run_dirs:
        path = Path(d) / rundir.LEADERBOARD if Path(d).is_dir() else Path(d)
        if not path.exists():
            raise UserError(f"{d}: no {rundir.LEADERBOARD} there")
        frame = read_leaderboard(path)
        frame.insert(0, "run", Path(d).name if Path(d).is_dir() else path.parent.name)
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def usable_rows(frame: pd.DataFrame) -> pd.DataFrame:
    """Rows of a leaderboard CSV with a measurement at the full budget (ok, cached) and a
    finite fitness."""
    import numpy as np

    ok = frame[frame["status"].isin(Status.usable_values())] if "status" in frame else frame
    return ok[np.isfinite(ok["fitness"].astype(float))]


def stopped_rows(frame: pd.DataFrame) -> pd.DataFrame:
    """Rows of genomes stopped at a rung of successive halving (trained, to their rung) with a
    finite fitness: their value at the rung, a lower fidelity than the usable rows'."""
    import numpy as np

    if "status" not in frame:
        return frame.iloc[:0]
    stopped = frame[frame["status"] == Status.EARLY_STOPPED.value]
    return stopped[np.isfinite(stopped["fitness"].astype(float))]


def top_rows(frame: pd.DataFrame, k: int, objective: Objective) -> pd.DataFrame:
    """The k best usable rows of a leaderboard CSV, one per decoded architecture."""
    ok = usable_rows(frame)
    genes = [c for c in ok.columns if c.startswith("gene:")]
    ok = ok.drop_duplicates(subset=genes or None)
    return ok.sort_values("fitness", ascending=objective.ascending()).head(k)


def run_objective(runs: list[str]) -> Objective:
    """The primary objective of the first run that recorded one (best_genome.json)."""
    for run in runs:
        best = read_best(run) if Path(run).is_dir() else None
        if best is not None:
            return objectives(best)[0]
    return Objective("loss")
