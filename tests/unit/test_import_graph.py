"""No module of charged imports one that imports it back, however far round.

The graph is read from the source with ast: every ``import charged.…`` and ``from charged…
import …`` counts, at module level or inside a function (a deferred import still ties the two
modules together), except those under ``if TYPE_CHECKING:``, which never run.  ``from
package import name`` is an edge to the sub-module when ``name`` is one, else to the package.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import charged

PACKAGE_DIR = Path(charged.__file__).resolve().parent


def module_names() -> dict[str, Path]:
    names = {}
    for path in sorted(PACKAGE_DIR.rglob("*.py")):
        parts = ["charged", *path.relative_to(PACKAGE_DIR).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts.pop()
        if "migrations" in parts:  # Alembic loads these by path, not by import
            continue
        names[".".join(parts)] = path
    return names


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(tree: ast.AST, module: str, is_package: bool) -> Iterator[tuple[str, str | None]]:
    """(module imported, name taken from it or None), skipping TYPE_CHECKING blocks."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            yield from (i for child in node.orelse for i in _imports(child, module, is_package))
            continue
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, None
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                package = module.split(".") if is_package else module.split(".")[:-1]
                package = package[: len(package) - node.level + 1]
                base = ".".join([*package, base] if base else package)
            for alias in node.names:
                yield base, alias.name
        yield from _imports(node, module, is_package)


def import_graph() -> dict[str, set[str]]:
    modules = module_names()
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        for target, taken in _imports(tree, name, path.name == "__init__.py"):
            if taken is not None and f"{target}.{taken}" in modules:
                target = f"{target}.{taken}"
            if target in modules and target != name:
                graph[name].add(target)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph[node]):
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


def test_the_graph_sees_the_imports_it_must_see() -> None:
    graph = import_graph()
    # module level, inside a function, and `from package import submodule`
    assert "charged.exits" in graph["charged.cli"]
    assert "charged.analysis.cli" in graph["charged.cli"]  # imported inside build_parser
    assert "charged.simulator.payloads" in graph["charged.simulator.server"]


def test_no_module_imports_one_that_imports_it_back() -> None:
    assert cycles(import_graph()) == []


def test_cycles_are_found_however_far_round() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(graph) == [["a", "b", "c"]]


def test_the_analysis_package_stays_below_the_service_and_the_commands() -> None:
    # analysis reads what is stored; the demo, the collector, the control layer and the
    # command line are built on it, never the other way round (the README figures' script,
    # which drives them all, is charged.docs_figures, outside the package)
    above = ("charged.cli", "charged.demo", "charged.docs_figures", "charged.collector")
    above += ("charged.control",)
    graph = import_graph()
    wrong = {
        (name, target)
        for name, targets in graph.items()
        if name.startswith("charged.analysis")
        for target in targets
        if target.startswith(above)
    }
    assert wrong == set()


def reachable_from(graph: dict[str, set[str]], start: str) -> set[str]:
    """Every module `start` imports, directly or through others."""
    seen: set[str] = set()
    todo = [start]
    while todo:
        for target in graph[todo.pop()]:
            if target not in seen:
                seen.add(target)
                todo.append(target)
    return seen


def test_the_sessions_package_stays_below_the_analysis_package() -> None:
    # the session tracker is a daemon task the collector starts; analysis (the reports) reads
    # the sessions it stores.  Were sessions to import analysis, even through a third module,
    # the daemon would load the report code and the two could import each other back.
    graph = import_graph()
    wrong = {
        (name, target)
        for name in graph
        if name.startswith("charged.sessions")
        for target in reachable_from(graph, name)
        if target.startswith("charged.analysis")
    }
    assert wrong == set()
    # the rule's other side
    assert "charged.sessions.derive" in graph["charged.analysis.plot_sessions"]
