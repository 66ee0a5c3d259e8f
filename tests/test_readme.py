"""The README's Python example runs as written (in a scratch folder with the shipped spaces)."""
import re
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def python_example() -> str:
    text = (ROOT / "README.md").read_text()
    section = text.split("\n## Python API", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, re.S)
    assert blocks, "README: the Python API section has no ```python example"
    return blocks[0]


def test_readme_python_example_runs(tmp_path, monkeypatch, capsys):
    shutil.copytree(ROOT / "search_spaces", tmp_path / "search_spaces")
    monkeypatch.chdir(tmp_path)
    scope = {}
    exec(compile(python_example(), "README.md (Python API)", "exec"), scope)
    run = Path(scope["run"])
    assert (run / "leaderboard.csv").is_file() and (run / "final.json").is_file()
    table, metrics = scope["table"], scope["metrics"]
    assert len(table) > 0 and 0 < metrics["mae"] < 3
    assert len(scope["models"]) >= 1
