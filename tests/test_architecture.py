"""The layers of ARCHITECTURE.md, checked on the source: every `import` of every evo_msa module
(read with ast, lazy imports inside functions included) goes to its own layer or a lower one,
and no chain of imports leads from a module back to itself."""
import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "evo_msa"

# bottom to top, as ARCHITECTURE.md draws them: a module may import its own layer and the
# layers below it, never one above
LAYERS = [
    ("base", ["evo_msa", "evo_msa._version", "evo_msa.errors",
              "evo_msa.status", "evo_msa.metrics", "evo_msa.io", "evo_msa.provenance"]),
    ("data", ["evo_msa.data"]),
    ("config", ["evo_msa.config"]),
    ("space, models", ["evo_msa.space", "evo_msa.models"]),
    ("losses", ["evo_msa.losses"]),
    ("record", ["evo_msa.record"]),
    ("report", ["evo_msa.report"]),
    ("training", ["evo_msa.training", "evo_msa.baselines", "evo_msa.onnx_export"]),
    ("nas", ["evo_msa.nas"]),
    ("api", ["evo_msa.api"]),
    ("studies", ["evo_msa.studies"]),
    ("cli", ["evo_msa.cli", "evo_msa.__main__"]),
]


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imports(name: str, path: Path, known: set[str]) -> set[str]:
    """The evo_msa modules `name` imports (a `from package import submodule` names the
    submodule)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.startswith("evo_msa")}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[:len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if not target.startswith("evo_msa"):
                continue
            subs = {f"{target}.{a.name}" for a in node.names} & known
            out |= subs or {target}
    return out - {name}


def layer_of(name: str) -> int:
    """The index of the layer whose longest prefix matches `name`."""
    best, index = -1, None
    for i, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            if (name == prefix or name.startswith(prefix + ".")) and len(prefix) > best:
                best, index = len(prefix), i
    assert index is not None, f"{name}: in no layer of ARCHITECTURE.md (add it there and here)"
    return index


def graph() -> dict[str, set[str]]:
    found = modules()
    return {name: imports(name, path, set(found)) for name, path in found.items()}


def test_every_module_is_in_a_layer():
    for name in modules():
        layer_of(name)


def test_no_module_imports_a_higher_layer():
    crossings = [f"{a} ({LAYERS[layer_of(a)][0]}) imports {b} ({LAYERS[layer_of(b)][0]})"
                 for a, deps in graph().items() for b in sorted(deps)
                 if layer_of(b) > layer_of(a)]
    assert not crossings, "\n".join(crossings)


def test_no_import_cycle():
    edges = graph()
    cycles, state = [], {}

    def visit(node: str, path: list[str]) -> None:
        state[node] = "open"
        for dep in sorted(edges.get(node, ())):
            if state.get(dep) == "open":
                cycles.append(" -> ".join(path[path.index(dep):] + [dep]))
            elif dep not in state:
                visit(dep, path + [dep])
        state[node] = "done"

    for name in sorted(edges):
        if name not in state:
            visit(name, [name])
    assert not cycles, "\n".join(cycles)


def test_the_layer_test_sees_a_crossing(tmp_path):
    """The check itself: a report module importing the search would be caught."""
    fake = tmp_path / "evo_msa" / "report" / "x.py"
    fake.parent.mkdir(parents=True)
    fake.write_text("from evo_msa.nas.engine import SearchEngine\n")
    deps = imports("evo_msa.report.x", fake, set(modules()))
    assert deps == {"evo_msa.nas.engine"} and layer_of("evo_msa.nas.engine") > \
        layer_of("evo_msa.report.x")
