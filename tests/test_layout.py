"""The layout shows the pipeline: no import cycle in `model_server/`, and the decoding unit (what
training shares with the server) stands alone. Imports inside functions count."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from bench.harness.server_process import REPO_ROOT

PACKAGE_ROOT = REPO_ROOT / "model_server"


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO_ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_names(path: Path) -> set[str]:
    """Every module `path` imports, anywhere in it, with relative imports made absolute; for
    `from X import Y`, both X and X.Y (Y may be a submodule)."""
    package = (
        module_name(path) if path.name == "__init__.py" else module_name(path).rpartition(".")[0]
    )
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                source = ".".join([*base, node.module] if node.module else base)
            else:
                source = node.module or ""
            names.add(source)
            names.update(f"{source}.{alias.name}" for alias in node.names)
    return names


def import_graph() -> dict[str, set[str]]:
    """Our modules -> the modules of ours each one imports (a package's import runs its
    `__init__`, so importing `a.b.c` also imports `a` and `a.b`)."""
    files = {module_name(path): path for path in PACKAGE_ROOT.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in files.items():
        edges: set[str] = set()
        for imported in imported_names(path):
            parts = imported.split(".")
            edges.update(".".join(parts[:end]) for end in range(1, len(parts) + 1))
        graph[name] = {edge for edge in edges if edge in files and edge != name}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """A cycle as a list of modules, or None. A module's own parent packages are left out of
    its edges: Python imports them first, before the module can import anything."""
    state: dict[str, str] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = "open"
        stack.append(node)
        for target in sorted(graph[node]):
            if node.startswith(target + "."):
                continue
            if state.get(target) == "open":
                return [*stack[stack.index(target) :], target]
            if target not in state and (cycle := visit(target)):
                return cycle
        stack.pop()
        state[node] = "done"
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_the_cycle_finder_finds_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set(), "c": {"a"}}) is None


def test_no_import_cycle_in_model_server():
    graph = import_graph()
    assert "model_server.logo_detection.decoding.model_input" in graph
    assert find_cycle(graph) is None, f"import cycle: {' -> '.join(find_cycle(graph))}"


def reachable(graph: dict[str, set[str]], start: str) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        node = todo.pop()
        if node not in seen:
            seen.add(node)
            todo.extend(graph[node])
    return seen


DECODING = "model_server.logo_detection.decoding"


@pytest.mark.parametrize(
    "forbidden",
    ["kserve", "asyncio", "tensorflow", "keras", "model_server.logo_detection.settings"],
)
def test_the_decoding_unit_needs_no_server_or_tensorflow(forbidden):
    graph = import_graph()
    modules = {name for name in graph if name == DECODING or name.startswith(DECODING + ".")}
    ours = set().union(*(reachable(graph, name) for name in modules))
    files = {module_name(path): path for path in PACKAGE_ROOT.rglob("*.py")}
    for name in sorted(ours):
        for imported in imported_names(files[name]):
            assert imported != forbidden and not imported.startswith(forbidden + "."), (
                f"{name} imports {imported}"
            )
