"""The package's layers only import downward, and no srvp module imports another srvp module inside a function
(the import graph is read from the source with ``ast``; docs/architecture.md describes the layers)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "srvp"

#: layer of every top-level unit of the package (module or subpackage), bottom first; a unit may import units of
#: lower layers only, except inside the application layer (the command line starts the demo); the tasks (typed
#: requests over the library) sit between the library and its front ends
LAYERS: list[set[str]] = [
    {"errors"},
    {"config"},
    {"files", "runtime"},
    {"io"},
    {"models"},
    {"data", "visualization"},
    {"evaluation"},
    {"training"},
    {"pretrained"},
    {"api"},
    {"tasks"},
    {"cli", "demo", "__init__"},
]
RANK = {unit: i for i, layer in enumerate(LAYERS) for unit in layer}
APPLICATION = LAYERS[-1]


def _unit(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _imports() -> list[tuple[str, str, int, bool]]:
    """``(file, imported srvp module, line, at module level)`` for every import of the package."""
    found = []
    for path in sorted(ROOT.rglob("*.py")):
        tree = ast.parse(path.read_text(), str(path))
        top = {id(node) for node in tree.body}
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "srvp":
                names = [node.module]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names if a.name.split(".")[0] == "srvp"]
            else:
                continue
            for name in names:
                found.append((str(path.relative_to(ROOT.parent)), name, node.lineno, id(node) in top))
    return found


def _source_unit(file: str) -> str:
    parts = Path(file).with_suffix("").parts  # ("srvp", "data", "kth") or ("srvp", "api")
    return parts[1] if len(parts) > 1 else "__init__"


def test_every_unit_has_a_layer():
    units = {p.stem if p.is_file() else p.name for p in ROOT.iterdir()
             if (p.suffix == ".py" or (p.is_dir() and (p / "__init__.py").exists()))}
    assert units - set(RANK) == set(), "add the new module or package to LAYERS (and docs/architecture.md)"


def test_imports_point_down():
    upward = []
    for file, module, line, _ in _imports():
        src, dst = _source_unit(file), _unit(module)
        if src == dst or dst not in RANK:
            continue
        if RANK[dst] < RANK[src] or (src in APPLICATION and dst in APPLICATION):
            continue
        upward.append(f"{file}:{line} imports {module} ({src} is not above {dst})")
    assert upward == []


def test_no_import_of_the_package_inside_functions():
    """A function-level import of srvp would hide a cycle; the docstring examples are not code."""
    lazy = [f"{file}:{line} imports {module} inside a function" for file, module, line, top in _imports() if not top]
    assert lazy == []


@pytest.mark.parametrize("package", ["data", "evaluation", "models"])
def test_lower_packages_know_nothing_of_training_or_the_command_line(package):
    offenders = [f"{file}:{line} {module}" for file, module, line, _ in _imports()
                 if _source_unit(file) == package and _unit(module) in ("training", "cli", "api", "demo")]
    assert offenders == []


def _imported_names(file: Path) -> set[str]:
    """Top-level names of every module ``file`` imports."""
    names = set()
    for node in ast.walk(ast.parse(file.read_text(), str(file))):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module.split(".")[0])
    return names


def test_the_demo_reaches_the_library_through_the_tasks_not_the_command_line():
    """The demo builds a PredictRequest itself: no srvp.cli, no argparse namespace."""
    demo = [(module, line) for file, module, line, _ in _imports() if file == "srvp/demo.py"]
    assert [m for m, _ in demo if _unit(m) == "cli"] == []
    assert "srvp.tasks.predict" in {m for m, _ in demo}
    assert "argparse" not in _imported_names(ROOT / "demo.py")


def test_the_tasks_know_nothing_of_the_front_ends():
    """A task is run from Python as from the command line: no argparse, no srvp.cli, no demo."""
    for file in sorted((ROOT / "tasks").rglob("*.py")):
        assert "argparse" not in _imported_names(file), file
    offenders = [f"{file}:{line} {module}" for file, module, line, _ in _imports()
                 if _source_unit(file) == "tasks" and _unit(module) in ("cli", "demo")]
    assert offenders == []


MAX_FUNCTION_LINES = 80


def test_the_front_ends_and_the_tasks_have_no_function_over_80_lines():
    """The outer ring reads as the core does: every function of srvp/cli/, srvp/demo.py and srvp/tasks/ (its def
    line to its last line, docstring included) fits on a screen."""
    files = [*sorted((ROOT / "cli").rglob("*.py")), ROOT / "demo.py", *sorted((ROOT / "tasks").rglob("*.py"))]
    long = []
    for file in files:
        for node in ast.walk(ast.parse(file.read_text(), str(file))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = node.end_lineno - node.lineno + 1
                if lines > MAX_FUNCTION_LINES:
                    long.append(f"{file.relative_to(ROOT.parent)}:{node.lineno} {node.name}: {lines} lines")
    assert long == []
