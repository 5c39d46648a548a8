"""No import cycle in chalicelib/, and the solution path's layers never import upwards.

The imports are read from the source with ast (every module of chalicelib/, found with
importlib's module naming), so a cycle is caught even when no test happens to import the modules
in the order that breaks. An import-time edge is an import statement outside any function body;
importing ``a.b.c`` also runs the ``__init__`` of ``a`` and ``a.b``, so those are edges too.
"""

from __future__ import annotations

import ast
import importlib.util
from pathlib import Path

import pytest

from tests.mwa_files import PROJECT_ROOT

PACKAGE = "chalicelib"


def _modules() -> dict[str, Path]:
    """Every module of the package by dotted name (a package by its own name, for its __init__), from its files."""
    root = Path(importlib.util.find_spec(PACKAGE).origin).parent
    assert root == PROJECT_ROOT / PACKAGE, root
    out = {}
    for path in sorted(root.rglob("*.py")):
        parts = list(path.relative_to(root.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


MODULES = _modules()


def _chalicelib_targets(name: str) -> set[str]:
    """The chalicelib modules that ``import name`` runs: the module and every package above it."""
    parts = name.split(".")
    return {".".join(parts[:i]) for i in range(1, len(parts) + 1) if ".".join(parts[:i]) in MODULES}


def _imported(module: str, at_import_time: bool) -> set[str]:
    """chalicelib modules ``module`` imports (only those run when it is imported, or all, lazy ones included)."""
    path = MODULES[module]
    tree = ast.parse(path.read_text(), filename=str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]

    nodes: list[ast.AST] = []

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if at_import_time and isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                continue
            nodes.append(child)
            visit(child)

    visit(tree)
    found: set[str] = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            for alias in node.names:
                found |= _chalicelib_targets(alias.name)
        elif isinstance(node, ast.ImportFrom):
            base = importlib.util.resolve_name("." * node.level + (node.module or ""), package) if node.level \
                else node.module
            found |= _chalicelib_targets(base)
            for alias in node.names:  # "from pkg import module"
                found |= _chalicelib_targets(f"{base}.{alias.name}")
    # a module's own package runs before it anyway: that is not an edge of a cycle
    return {m for m in found if m != module and not module.startswith(m + ".")}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected group of more than one module (Tarjan), each as a sorted list."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def connect(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for v in sorted(graph):
        if v not in index:
            connect(v)
    return found


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_the_import_reader_sees_lazy_and_package_imports() -> None:
    assert "chalicelib.solutions.solution" in _imported("chalicelib.formats.aocal", at_import_time=True)
    assert "chalicelib.solutions" in _imported("chalicelib.formats.aocal", at_import_time=True)  # its __init__
    lazy = _imported("chalicelib.ingest.fit_inputs", at_import_time=False)
    assert "chalicelib.formats.hyperdrive" in lazy  # imported inside load_fit_inputs
    assert "chalicelib.formats.hyperdrive" not in _imported("chalicelib.ingest.fit_inputs", at_import_time=True)


def test_no_import_cycle_in_chalicelib() -> None:
    graph = {m: _imported(m, at_import_time=True) for m in MODULES}
    assert {"chalicelib.solutions.bundle", "chalicelib.ingest.fitting", "chalicelib.api.cal_solution"} <= set(graph)
    assert _cycles(graph) == []


# What each layer of the solution path must never import, lazily or not: route (app.py) -> endpoint
# (api/, legacy) -> selection/ -> solutions/ -> formats/ -> storage.
ENDPOINTS = ("chalicelib.api", "chalicelib.legacy")
FORBIDDEN = {
    "chalicelib.selection": (*ENDPOINTS, "chalicelib.solutions.bundle", "chalicelib.solutions.rebuild"),
    "chalicelib.solutions": (*ENDPOINTS, "chalicelib.selection"),
    "chalicelib.formats": (*ENDPOINTS, "chalicelib.selection", "chalicelib.solutions.bundle",
                           "chalicelib.solutions.rebuild"),
    "chalicelib.records": (*ENDPOINTS, "chalicelib.selection", "chalicelib.solutions.bundle",
                           "chalicelib.solutions.rebuild", "chalicelib.formats"),
    "chalicelib.storage": (*ENDPOINTS, "chalicelib.selection", "chalicelib.solutions", "chalicelib.formats"),
}


def _within(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_a_layer_never_imports_the_layers_above_it(layer: str) -> None:
    members = [m for m in MODULES if _within(m, layer)]
    assert members, layer
    upward = {(m, target) for m in members for target in _imported(m, at_import_time=False)
              if any(_within(target, bad) for bad in FORBIDDEN[layer])}
    assert upward == set()


def test_the_solution_type_depends_on_nothing_of_ours() -> None:
    """formats/ and records import the type: it (and its package's __init__) must stay at the bottom."""
    assert _imported("chalicelib.solutions.solution", at_import_time=False) == set()
    assert _imported("chalicelib.solutions", at_import_time=False) == {"chalicelib.solutions.solution"}
