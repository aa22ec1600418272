"""The layering of the code, read from its imports (ast, every import including those inside functions).

utils/ at the bottom; models/ and dataset/ on it; config/ on those; training/ and evaluation/ on
top; analysis/ above them; entry points (pretrain.py, evaluate.py, scripts/*.py) use package APIs.
"""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

from tests.conftest import ROOT

PACKAGES = ("utils", "models", "dataset", "config", "training", "evaluation", "analysis", "benchmarks", "scripts")
ENTRY_POINTS = [ROOT / "pretrain.py", ROOT / "evaluate.py", *sorted((ROOT / "scripts").glob("*.py"))]
# What each layer may import from the project (besides itself).
MAY_IMPORT = {
    "utils": set(),
    "models": {"utils"},
    "dataset": {"utils"},
    "config": {"utils", "models", "dataset"},
    "training": {"utils", "models", "dataset", "config", "evaluation"},
    "evaluation": {"utils", "models", "dataset", "config"},
    "analysis": {"utils", "models", "dataset", "config", "training", "evaluation"},
}


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def project_modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            found[module_name(path)] = path
    for path in ENTRY_POINTS:
        found[module_name(path)] = path
    return found


def imports_of(path: Path, modules: dict[str, Path]) -> list[tuple[str, ast.AST]]:
    """Project modules `path` imports: `from a.b import c` names a.b.c when that is a module, else a.b."""
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out += [(alias.name, node) for alias in node.names if alias.name.split(".")[0] in PACKAGES]
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] in PACKAGES:
            for alias in node.names:
                target = f"{node.module}.{alias.name}"
                out.append((target if target in modules else node.module, node))
    return out


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    modules = project_modules()
    return {name: {target for target, _ in imports_of(path, modules)} - {name} for name, path in modules.items()}


def test_no_import_cycles(graph):
    state: dict[str, int] = {}

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for target in sorted(graph.get(node, ())):
            if state.get(target) == 1:
                cycle = stack[stack.index(target):] + [target]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if target not in state:
                visit(target, stack + [target])
        state[node] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])


def test_each_layer_imports_only_the_layers_below(graph):
    problems = []
    for name, targets in graph.items():
        layer = name.split(".")[0]
        if layer not in MAY_IMPORT:
            continue
        for target in targets:
            other = target.split(".")[0]
            if other != layer and other not in MAY_IMPORT[layer]:
                problems.append(f"{name} imports {target}")
    assert not problems, "\n".join(sorted(problems))


def test_entry_points_use_package_apis():
    """`from <package> import <public name>` only: a name in a top-level package's __all__, or a module of a
    package or subpackage (`from dataset.arc import evaluator`), never a name from inside a module."""
    problems = []
    for path in ENTRY_POINTS:
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.ImportFrom) or not node.module or node.module.split(".")[0] not in PACKAGES:
                continue
            package = importlib.import_module(node.module)
            folder = ROOT.joinpath(*node.module.split("."))
            for alias in node.names:
                module = folder / f"{alias.name}.py"
                public = alias.name in getattr(package, "__all__", ()) and "." not in node.module
                exported = public or module.is_file()
                if not folder.is_dir() or alias.name.startswith("_") or not exported:
                    problems.append(f"{path.name}: from {node.module} import {alias.name}")
    assert not problems, "\n".join(problems)
