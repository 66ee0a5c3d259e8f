"""The README's Python example runs as written (in a scratch folder with the shipped spaces)."""
import re
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def python_example() -> str:
    text = (ROOT / "README.md").read_text()
    section = text.split("\n## Python API", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, re.S)
    assert blocks, "README: the Python API section has no ```python example"
    return blocks[0]


@pytest.mark.slow
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


def test_api_names_stay_functions_after_their_namesake_packages_load():
    import evo_msa.nas.runner  # noqa: F401
    import evo_msa.onnx_export  # noqa: F401
    import evo_msa.training.trainer  # noqa: F401
    from evo_msa import export, search, train

    assert all(callable(f) and f.__module__ == "evo_msa.api" for f in (search, train, export))
