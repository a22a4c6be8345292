"""The package's shape: no import circles, data flows one way, one screen per function.

Imports are read from the source (every ``import`` statement, at module level or inside a
function, except those under ``if TYPE_CHECKING:``), so a circle that only closes at run time
is found too.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = {"weditlib": ROOT / "weditlib", "perfrdiff": ROOT / "reference" / "perfrdiff"}
#: Modules of the reference that generate and evaluate: they must work without the training code.
INFERENCE = (
    "perfrdiff.run", "perfrdiff.generation", "perfrdiff.models", "perfrdiff.metrics",
    "perfrdiff.data", "perfrdiff.config", "perfrdiff.stages", "perfrdiff.rundir",
)  # fmt: skip


def module_files() -> dict[str, Path]:
    modules = {}
    for package, folder in PACKAGES.items():
        for path in folder.rglob("*.py"):
            parts = path.relative_to(folder).with_suffix("").parts
            name = ".".join((package, *parts)).removesuffix(".__init__")
            modules[name] = path
    return modules


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imported_names(tree: ast.AST, module: str, is_package: bool, modules: set[str]) -> set[str]:
    """The modules ``module`` imports: ``from pkg import sub`` imports ``pkg.sub`` (the package
    only when a name is read from it)."""
    names: set[str] = set()
    pending = [tree]
    while pending:
        node = pending.pop()
        if isinstance(node, ast.If) and _is_type_checking(node):
            pending += node.orelse
            continue
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative import
                anchor = module.split(".")[: len(module.split(".")) - node.level + is_package]
                base = ".".join([*anchor, *([base] if base else [])])
            submodules = {f"{base}.{a.name}" for a in node.names} & modules
            names |= submodules | ({base} if len(submodules) < len(node.names) else set())
        pending += ast.iter_child_nodes(node)
    return names


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    """Module -> the package modules it imports."""
    files = module_files()
    edges = {}
    for module, path in files.items():
        tree = ast.parse(path.read_text())
        names = _imported_names(tree, module, path.name == "__init__.py", set(files))
        edges[module] = {n for n in names if n in files and n != module}
    return edges


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def _reachable(graph: dict[str, set[str]], start: str) -> set[str]:
    seen, pending = set(), [start]
    while pending:
        for nxt in graph[pending.pop()] - seen:
            seen.add(nxt)
            pending.append(nxt)
    return seen


def test_no_import_circles(graph):
    assert _cycles(graph) == []


def test_the_cycle_finder_finds_a_circle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_the_library_never_imports_the_reference(graph):
    for module, imported in graph.items():
        if module.startswith("weditlib"):
            assert not {m for m in imported if m.startswith("perfrdiff")}, module


@pytest.mark.parametrize("prefix", INFERENCE)
def test_inference_never_imports_training(graph, prefix):
    for module in (m for m in graph if m == prefix or m.startswith(f"{prefix}.")):
        training = {m for m in _reachable(graph, module) if m.startswith("perfrdiff.training")}
        assert not training, f"{module} reaches {sorted(training)}"


def _body_lines(node: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    lines = node.end_lineno - node.lineno + 1
    first = node.body[0]
    if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
        lines -= first.end_lineno - first.lineno + 1  # the docstring
    return lines


def test_no_function_needs_a_second_screen():
    long = []
    for folder in (*PACKAGES.values(), ROOT / "tests", ROOT / "docs"):
        for path in folder.rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                function = isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
                if function and _body_lines(node) > 80:
                    long.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name}")
    assert long == []
