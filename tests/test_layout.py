"""The layout shows the pipeline: no import cycle in `model_server/` or `training/`, and the units
that stand alone do: the decoding package (what training shares with the server) and training's
synthetic-data generators. Imports inside functions count."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from bench.harness.server_process import REPO_ROOT

SERVER_ROOT = REPO_ROOT / "model_server"
TRAINING_ROOT = REPO_ROOT / "training"


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


def our_files() -> dict[str, Path]:
    return {
        module_name(path): path
        for root in (SERVER_ROOT, TRAINING_ROOT)
        for path in root.rglob("*.py")
    }


def import_graph() -> dict[str, set[str]]:
    """Our modules -> the modules of ours each one imports (a package's import runs its
    `__init__`, so importing `a.b.c` also imports `a` and `a.b`)."""
    files = our_files()
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


def test_no_import_cycle_in_the_server_or_training():
    graph = import_graph()
    assert {"model_server.logo_detection.decoding.model_input", "training.prepare"} <= set(graph)
    assert find_cycle(graph) is None, f"import cycle: {' -> '.join(find_cycle(graph))}"


def reachable(graph: dict[str, set[str]], start: str) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        node = todo.pop()
        if node not in seen:
            seen.add(node)
            todo.extend(graph[node])
    return seen


STANDALONE_UNITS = {
    "model_server.logo_detection.decoding": [
        "kserve",
        "asyncio",
        "tensorflow",
        "keras",
        "model_server.logo_detection.settings",
    ],
    "training.synthetic": ["tensorflow", "keras", "keras_cv", "model_server"],
}


@pytest.mark.parametrize(
    ("unit", "forbidden"),
    [(unit, forbidden) for unit, names in STANDALONE_UNITS.items() for forbidden in names],
)
def test_a_standalone_unit_imports_nothing_it_must_not(unit, forbidden):
    """Everything of ours the unit reaches (its parent packages' `__init__` aside) is checked."""
    parents = {".".join(unit.split(".")[:end]) for end in range(1, unit.count(".") + 1)}
    graph = {name: edges - parents for name, edges in import_graph().items()}
    modules = {name for name in graph if name == unit or name.startswith(unit + ".")}
    assert modules, f"no modules under {unit}"
    ours = set().union(*(reachable(graph, name) for name in modules))
    files = our_files()
    for name in sorted(ours):
        for imported in imported_names(files[name]):
            assert imported != forbidden and not imported.startswith(forbidden + "."), (
                f"{name} imports {imported}"
            )
