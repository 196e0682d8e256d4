"""The package's imports run one way (fetch → parse → snapshot → holder → outputs): no cycle, and
no chain deeper than MAX_IMPORT_LEVELS. Read from the source (AST), imports under TYPE_CHECKING and
inside functions included: a cycle a type checker needs is a knot too."""

from __future__ import annotations

import ast
from collections.abc import Mapping
from pathlib import Path

import pytest

PACKAGE = Path(__file__).parent.parent / "otel_chargy"
MAX_IMPORT_LEVELS = 10
"""Imports on the longest chain (main → service → … → model)."""

ImportGraph = Mapping[str, frozenset[str]]


def package_imports(package: Path = PACKAGE) -> ImportGraph:
    """Each module of the package -> the package's modules it imports."""
    modules = {path.stem for path in package.glob("*.py")}
    graph = {}
    for module in modules:
        imported: set[str] = set()
        for node in ast.walk(ast.parse((package / f"{module}.py").read_text())):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                parts = node.module.split(".")
                if parts[0] != package.name:
                    continue
                if len(parts) > 1:
                    imported.add(parts[1])
                else:  # from otel_chargy import x: a module, or a name of __init__
                    imported.update(alias.name if alias.name in modules else "__init__" for alias in node.names)
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    parts = alias.name.split(".")
                    if parts[0] == package.name and len(parts) > 1:
                        imported.add(parts[1])
        graph[module] = frozenset(imported & modules - {module})
    return graph


def find_cycle(graph: ImportGraph) -> list[str] | None:
    """One import cycle (its first module repeated at the end), or None."""
    done: set[str] = set()
    path: list[str] = []

    def visit(module: str) -> list[str] | None:
        if module in path:
            return [*path[path.index(module) :], module]
        if module in done:
            return None
        path.append(module)
        for imported in sorted(graph[module]):
            if (cycle := visit(imported)) is not None:
                return cycle
        path.pop()
        done.add(module)
        return None

    for module in sorted(graph):
        if (cycle := visit(module)) is not None:
            return cycle
    return None


def longest_chain(graph: ImportGraph) -> list[str]:
    """The longest chain of imports, as the modules along it; the graph has no cycle."""
    chains: dict[str, list[str]] = {}

    def chain(module: str) -> list[str]:
        if module not in chains:
            deepest = max((chain(imported) for imported in sorted(graph[module])), key=len, default=[])
            chains[module] = [module, *deepest]
        return chains[module]

    return max((chain(module) for module in sorted(graph)), key=len)


def test_the_package_has_no_import_cycle() -> None:
    assert find_cycle(package_imports()) is None


def test_no_import_chain_is_deeper_than_the_limit() -> None:
    chain = longest_chain(package_imports())
    assert len(chain) - 1 <= MAX_IMPORT_LEVELS, " → ".join(chain)


def test_the_graph_is_read_from_every_kind_of_import(tmp_path: Path) -> None:
    package = tmp_path / "otel_chargy"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "low.py").write_text("")
    (package / "mid.py").write_text("import otel_chargy.low\n")
    (package / "high.py").write_text(
        "from typing import TYPE_CHECKING\nfrom otel_chargy import mid\nif TYPE_CHECKING:\n"
        "    from otel_chargy.low import x\ndef f():\n    from otel_chargy.mid import y\n"
    )
    assert package_imports(package) == {
        "__init__": frozenset(),
        "low": frozenset(),
        "mid": frozenset({"low"}),
        "high": frozenset({"mid", "low"}),
    }


@pytest.mark.parametrize(
    ("graph", "cycle"),
    [
        ({"a": frozenset({"b"}), "b": frozenset({"c"}), "c": frozenset()}, None),
        ({"a": frozenset({"b"}), "b": frozenset({"c"}), "c": frozenset({"a"})}, ["a", "b", "c", "a"]),
        (
            {"a": frozenset({"b", "c"}), "b": frozenset(), "c": frozenset({"c2"}), "c2": frozenset({"c"})},
            ["c", "c2", "c"],
        ),
    ],
)
def test_a_cycle_is_found_wherever_it_is(graph: ImportGraph, cycle: list[str] | None) -> None:
    assert find_cycle(graph) == cycle


def test_the_longest_chain_is_the_deepest_path() -> None:
    graph = {"a": frozenset({"b", "d"}), "b": frozenset({"c"}), "c": frozenset(), "d": frozenset()}
    assert longest_chain(graph) == ["a", "b", "c"]
