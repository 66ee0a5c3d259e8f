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


def readme_commands() -> list[str]:
    """Every `evo-msa ...` command of the README's ```bash blocks, as written (continuation
    lines joined, a trailing `# comment` and `cmd && ` prefixes left out)."""
    text = (ROOT / "README.md").read_text()
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", text, re.S):
        for line in block.replace("\\\n", " ").splitlines():
            line = re.sub(r"\s+#.*$", "", line).strip()
            for part in line.split("&&"):
                part = part.strip()
                if part.startswith("evo-msa "):
                    commands.append(part)
    return commands


def test_every_readme_command_parses_as_written():
    import shlex

    from evo_msa.cli import build_parser

    commands = readme_commands()
    assert len(commands) >= 8, commands
    parser = build_parser()
    for command in commands:
        try:
            parser.parse_args(shlex.split(command)[1:])
        except SystemExit:
            pytest.fail(f"README: `{command}` does not parse")


def test_readme_installs_fit_a_checkout():
    import tomllib

    extras = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
                 ["optional-dependencies"])
    text = (ROOT / "README.md").read_text()
    assert "'evo-msa[" not in text  # not on PyPI: a checkout installs with -e '.[extra]'
    named = set(re.findall(r"pip install -e '\.\[([a-z]+)\]'", text))
    assert named and named <= extras, named - extras
    assert {"track", "export"} <= named


def test_the_quick_start_runs_and_its_follow_up_commands_as_written(tmp_path, monkeypatch,
                                                                    capsys):
    """The Quick start's search on a smaller budget (the README's one takes about 2 minutes),
    then the commands under it exactly as written."""
    import shlex

    from evo_msa.cli import main

    section = (ROOT / "README.md").read_text().split("## Quick start", 1)[1].split("\n## ")[0]
    commands = [c for c in readme_commands() if c in section]
    search, rest = commands[0], commands[1:]
    assert search.startswith("evo-msa search --space search_spaces/tiny.yaml") and rest
    shutil.copytree(ROOT / "search_spaces", tmp_path / "search_spaces")
    monkeypatch.chdir(tmp_path)
    smaller = ["--pop", "4", "--generations", "1", "--final-seeds", "0", "--final-epochs", "4"]
    assert main(shlex.split(search)[1:] + smaller) == 0
    for command in rest:
        assert main(shlex.split(command)[1:]) == 0, command
    out = capsys.readouterr().out
    assert "[random design" in out and "trained" in out
    assert (tmp_path / "runs/quickstart/report.html").is_file()
    assert (tmp_path / "runs/quickstart/preds.csv").is_file()
