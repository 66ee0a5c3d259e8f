"""The leaderboard as a console table that fits a terminal (`evo-msa leaderboard`): the columns
a reader compares first, then as many genes as fit in the width, each cell cut to fit; `wide`
for every column, `columns` for a choice of them."""
from __future__ import annotations

import math

import pandas as pd

from evo_msa.errors import UserError, did_you_mean

WIDTH = 100  # characters per printed line
FIRST = ["run", "id", "generation", "status", "fitness", "fitness_std", "params", "seconds"]
MAX_CELL = 18  # characters of one cell (a gene's list of values, a long status)


def console_table(frame: pd.DataFrame, *, width: int = WIDTH, wide: bool = False,
                  columns: list[str] | None = None) -> str:
    """`frame` (rows of a leaderboard CSV) as text: by default the first columns and the genes
    that fit in `width` characters (one `run` column only for several runs), numbers rounded,
    a gene's column named by its field (gene:model.depth -> depth); every column with
    `wide`, the named ones with `columns`."""
    if columns:
        return _render(frame, [_column(frame, c) for c in columns], cut=False)
    if wide:
        return _render(frame, list(frame.columns), cut=False)
    first = [c for c in FIRST if c in frame.columns
             and not (c == "run" and frame["run"].nunique() <= 1)
             and not (c == "fitness_std" and frame[c].isna().all())]
    genes = [c for c in frame.columns if c.startswith("gene:")]
    chosen = list(first)
    for gene in genes:  # as many genes as fit, in the leaderboard's order
        trial = _render(frame, chosen + [gene])
        if max(map(len, trial.splitlines()), default=0) > width:
            break
        chosen.append(gene)
    text = _render(frame, chosen)
    left = len(frame.columns) - len(chosen)
    if left:
        text += (f"\n({left} more column(s), {len(genes) - sum(c in chosen for c in genes)} of "
                 "them genes: --wide shows them all, --columns a choice)")
    return text


def _column(frame: pd.DataFrame, name: str) -> str:
    """A column by its name, a gene by its path (model.depth) or its field alone (depth)."""
    genes = [c for c in frame.columns if c.startswith("gene:")]
    found = [c for c in (name, f"gene:{name}") if c in frame.columns] or \
        [c for c in genes if c.rpartition(".")[2] == name]
    if len(found) != 1:
        known = [c for c in frame.columns if not c.startswith("gene:")] + \
            [c[len("gene:"):] for c in genes]
        what = "two genes are" if found else "no column is"
        raise UserError(f"--columns: {what} named {name!r}{did_you_mean(name, known)} "
                        f"(columns: {', '.join(known)})")
    return found[0]


def _render(frame: pd.DataFrame, columns: list[str], cut: bool = True) -> str:
    shown = pd.DataFrame({_short(c, columns): frame[c].map(lambda v, c=c: _cell(v, c, cut))
                          for c in columns})
    return shown.to_string(index=False)


def _short(column: str, columns: list[str]) -> str:
    """A gene's column by its field name, unless two genes share it."""
    if not column.startswith("gene:"):
        return column
    field = column.rpartition(".")[2]
    same = [c for c in columns if c.startswith("gene:") and c.rpartition(".")[2] == field]
    return field if len(same) == 1 else column[len("gene:"):]


def _cell(value, column: str, cut: bool) -> str:
    if isinstance(value, float):
        if math.isnan(value):
            return ""
        if column in ("params", "generation", "id", "rung", "epochs") and value.is_integer():
            return str(int(value))
        if column == "seconds":
            return f"{value:.1f}"
        text = f"{value:.4g}" if column.startswith("gene:") else f"{value:.4f}"
    else:
        text = str(value)
    return text[:MAX_CELL - 1] + "…" if cut and len(text) > MAX_CELL else text
