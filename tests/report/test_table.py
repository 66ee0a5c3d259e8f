"""`evo-msa leaderboard`'s print: it fits 100 columns; --wide and --columns show the rest; a
genome stopped at a rung counts as trained."""
import numpy as np
import pandas as pd
import pytest

from evo_msa.cli import main
from evo_msa.errors import UserError
from evo_msa.report.table import console_table


def board(n=12):
    rng = np.random.default_rng(0)
    genes = {f"gene:model.g{k}": rng.uniform(0, 1, n) for k in range(20)}
    return pd.DataFrame({
        "generation": np.arange(n) // 4, "id": np.arange(n),
        "status": ["ok"] * (n - 4) + ["early-stopped", "early-stopped", "cached", "rejected"],
        "rung": [np.nan] * (n - 4) + [1, 3, np.nan, np.nan],
        "fitness": rng.uniform(0.8, 1.2, n), "params": rng.integers(1000, 10 ** 6, n),
        "seconds": rng.uniform(1, 100, n), "note": ["x" * 300] * n,
        "gene:model.level_widths": ["64|48|32|32|16|16"] * n, **genes,
        "valid_mae": rng.uniform(0.5, 1, n)})


def test_the_default_print_fits_100_columns_and_says_what_is_left_out():
    text = console_table(board())
    assert max(len(line) for line in text.splitlines()) <= 100
    assert "fitness" in text and "level_widths" in text and "--wide" in text
    wide = console_table(board(), wide=True)
    assert "valid_mae" in wide and "x" * 300 in wide


def test_columns_by_name_path_or_field_and_a_typo_gets_the_closest():
    text = console_table(board(), columns=["id", "fitness", "model.g3", "g4"])
    assert text.splitlines()[0].split() == ["id", "fitness", "g3", "g4"]
    with pytest.raises(UserError, match="did you mean 'fitness'"):
        console_table(board(), columns=["fitnes"])


def test_stopped_genomes_count_as_trained(tmp_path, capsys):
    path = tmp_path / "leaderboard.csv"
    board().to_csv(path, index=False)
    assert main(["leaderboard", str(path)]) == 0
    out = capsys.readouterr().out
    assert "12 evaluations in 1 run(s): 10 trained (2 of them stopped at a rung), 1 cached, " \
           "1 rejected" in out
    assert max(len(line) for line in out.splitlines()) <= 100
