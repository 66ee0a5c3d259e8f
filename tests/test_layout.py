"""The package's layout: every module imports by its dotted path in both forms, in a fresh
interpreter; no module reaches into the package root for anything but a submodule."""
import ast
import pkgutil
import subprocess
import sys
from pathlib import Path

import evo_msa

ROOT = Path(__file__).resolve().parents[1]
MODULES = sorted(m.name for m in pkgutil.walk_packages(evo_msa.__path__, "evo_msa."))


def test_every_module_imports_by_its_dotted_path_in_both_forms():
    lines = []
    for i, name in enumerate(MODULES):
        parent, _, leaf = name.rpartition(".")
        lines += [f"import {name} as m{i}", f"from {parent} import {leaf} as n{i}",
                  f"assert m{i} is n{i}, {name!r}"]
    lines.append("from evo_msa import search, train, predict, load_model, UserError")
    lines.append("assert callable(search) and callable(train)")
    r = subprocess.run([sys.executable, "-c", "\n".join(lines)], cwd=ROOT, capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    assert len(MODULES) > 40  # the walk found the package


def test_no_module_imports_the_package_root_for_a_name():
    submodules = {m.name.split(".")[1] for m in pkgutil.walk_packages(evo_msa.__path__,
                                                                       "evo_msa.")}
    offenders = []
    for path in (ROOT / "evo_msa").rglob("*.py"):
        if path.name == "__init__.py" and path.parent.name == "evo_msa":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import) and any(a.name == "evo_msa" for a in node.names):
                offenders.append(f"{path}: import evo_msa")
            if isinstance(node, ast.ImportFrom) and node.module == "evo_msa":
                offenders += [f"{path}: from evo_msa import {a.name}" for a in node.names
                              if a.name not in submodules]
    assert not offenders, offenders


def test_the_command_line_and_the_search_driver_start_without_torch():
    """torch (a second of imports) loads where a network trains, not in `evo-msa --help` or in
    the search driver before its trials start (what a search's first result waits for)."""
    code = ("import sys\nfrom evo_msa.cli import build_parser\nbuild_parser()\n"
            "import evo_msa.nas.runner, evo_msa.nas.execution.tune, evo_msa.nas.evaluators\n"
            "print(sorted(m for m in ('torch', 'sklearn', 'matplotlib') if m in sys.modules))")
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout.strip() == "[]"
