"""The shape of the code: no import circle among a package's modules, however the import is written.

import-linter (``lint-imports``, run by CI) checks the layers; it does not see an import made
inside a function or under ``TYPE_CHECKING`` as part of a circle. A circle hidden from Python
is still a circle in the design, so this test reads every import statement in the source.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = {"tally.server": ROOT / "server", "tally.tui": ROOT / "tui"}


def modules(name: str, folder: Path) -> dict[str, Path]:
    found = {}
    for path in folder.rglob("*.py"):
        parts = path.relative_to(folder).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join((name, *parts))] = path
    return found


def imports(module: str, path: Path, known: set[str]) -> set[str]:
    """Every module of ``known`` that ``module`` imports, anywhere in its source."""
    found: set[str] = set()
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join([*package.split(".")[: len(package.split(".")) - node.level + 1], base]).strip(".")
            names = [base, *(f"{base}.{alias.name}" for alias in node.names)]
        else:
            continue
        found.update(name for name in names if name in known and name != module)
    return found


def circle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import circle in ``graph``, if there is any."""
    state: dict[str, int] = {}
    trail: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        trail.append(node)
        for child in sorted(graph[node]):
            if state.get(child) == 1:
                return [*trail[trail.index(child) :], child]
            if child not in state and (found := visit(child)):
                return found
        trail.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


@pytest.mark.parametrize("package", sorted(PACKAGES))
def test_no_module_imports_its_way_back_to_itself(package: str) -> None:
    """No chain of imports (at the top, in functions or under TYPE_CHECKING) leads from a module back to it.

    A package's ``__init__`` re-exporting its modules is not counted as their importer.
    """
    found = modules(package, PACKAGES[package])
    known = set(found)
    graph = {name: imports(name, path, known) for name, path in found.items()}
    for name in graph:
        graph[name] = {target for target in graph[name] if not name.startswith(target + ".")}
    assert circle(graph) is None


def test_the_circle_finder_finds_one() -> None:
    """The negative control: a planted circle is found."""
    assert circle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
