"""The layout shows the pipeline: no import cycle in `model_server/`, `training/` or
`keras_export/`; the server package imports no TensorFlow-side library at any depth (one seam
reaches the offline `keras_export` package, lazily); the model contract is a leaf; no arrow runs
back up; and the units that stand alone do: the decoding package (what training shares with the
server) and training's synthetic-data generators. Imports inside functions count."""

from __future__ import annotations

import ast
import functools
from pathlib import Path

import pytest

from bench.harness.server_process import REPO_ROOT

SERVER_ROOT = REPO_ROOT / "model_server"
TRAINING_ROOT = REPO_ROOT / "training"
KERAS_EXPORT_ROOT = REPO_ROOT / "keras_export"


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
        for root in (SERVER_ROOT, TRAINING_ROOT, KERAS_EXPORT_ROOT)
        for path in root.rglob("*.py")
    }


@functools.cache  # the files do not change during a run: parse them once (callers only read)
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


def test_no_import_cycle_in_the_server_training_or_the_export_tools():
    graph = import_graph()
    assert {
        "model_server.logo_detection.decoding.model_input",
        "training.prepare",
        "keras_export.export",
    } <= set(graph)
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


def imports_of(module: str, prefix: str) -> set[str]:
    """The modules under `prefix` that `module` imports (itself and its parents aside)."""
    parents = {".".join(module.split(".")[:end]) for end in range(1, module.count(".") + 2)}
    return {
        name
        for name in import_graph()[module] - parents
        if name == prefix or name.startswith(prefix + ".")
    }


PACKAGE = "model_server.logo_detection"
# The one module of the server that reaches the offline package, inside a function.
KERAS_SEAM = f"{PACKAGE}.keras_conversion"
TENSORFLOW_SIDE = ("tensorflow", "keras", "keras_cv", "tf2onnx", "onnx", "tf_keras", "keras_export")


def server_graph() -> dict[str, set[str]]:
    """The server package's import graph, less the seam's lazy arrow to keras_export."""
    return {
        name: {
            edge for edge in edges if not (name == KERAS_SEAM and edge.startswith("keras_export"))
        }
        for name, edges in import_graph().items()
        if name.startswith("model_server")
    }


def test_the_server_package_imports_no_tensorflow_side_library_at_any_depth():
    """No server module imports any of them, nor a module of ours outside model_server/ that
    could (the seam's lazy import of keras_export aside): so at no depth does one."""
    files = our_files()
    graph = server_graph()
    assert KERAS_SEAM in graph and f"{PACKAGE}.backend_loader" in graph
    for name, edges in sorted(graph.items()):
        outside = {edge for edge in edges if not edge.startswith("model_server")}
        assert not outside, f"{name} imports {outside} from outside the server package"
        for imported in imported_names(files[name]):
            if name == KERAS_SEAM and imported.split(".")[0] == "keras_export":
                continue
            assert imported.split(".")[0] not in TENSORFLOW_SIDE, f"{name} imports {imported}"


def top_level_imports(path: Path) -> set[str]:
    """What a module imports at its top level (not inside a function)."""
    names: set[str] = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and not node.level:
            names.add(node.module or "")
    return names


def test_the_seam_reaches_the_offline_package_lazily_and_nothing_else_does():
    files = our_files()
    seam = imported_names(files[KERAS_SEAM])
    assert any(name.startswith("keras_export.") for name in seam)
    assert not any(name.startswith("keras_export") for name in top_level_imports(files[KERAS_SEAM]))
    for name, path in files.items():
        if name.startswith("model_server") and name != KERAS_SEAM:
            assert not any(n.startswith("keras_export") for n in imported_names(path)), name


def test_training_does_not_need_the_offline_package():
    """Training on JAX or PyTorch needs neither TensorFlow nor keras_export."""
    for name in (name for name in import_graph() if name.startswith("training")):
        assert not imports_of(name, "keras_export"), f"{name} imports keras_export"


CONTRACT = f"{PACKAGE}.model_contract"


def test_the_model_contract_is_a_leaf():
    graph = import_graph()
    assert graph[CONTRACT] <= {"model_server", PACKAGE}, graph[CONTRACT]  # its parents only
    users = {name for name, edges in graph.items() if CONTRACT in edges}
    for user in (
        f"{PACKAGE}.decoding.model_input",
        f"{PACKAGE}.inference.onnx_backend",
        f"{PACKAGE}.metrics",
        "training.metadata",
        "keras_export.export",
    ):
        assert user in users, f"{user} does not read the contract from {CONTRACT}"


# No arrow runs back up: a lower layer imports nothing from the layers that use it.
NO_ARROW_BACK_UP = {
    f"{PACKAGE}.decoding": [
        f"{PACKAGE}.inference",
        f"{PACKAGE}.fetch",
        f"{PACKAGE}.metrics",
        f"{PACKAGE}.model",
    ],
    # inference/batching imports metrics, so metrics must not import inference
    f"{PACKAGE}.metrics": [f"{PACKAGE}.inference"],
    CONTRACT: [PACKAGE + "."],
}


@pytest.mark.parametrize(
    ("lower", "upper"),
    [(lower, upper) for lower, uppers in NO_ARROW_BACK_UP.items() for upper in uppers],
)
def test_no_arrow_runs_back_up(lower, upper):
    graph = server_graph()
    modules = {name for name in graph if name == lower or name.startswith(lower + ".")}
    assert modules, f"no modules under {lower}"
    parents = {".".join(lower.split(".")[:end]) for end in range(1, lower.count(".") + 1)}
    for name in sorted(modules):
        for target in graph[name] - parents - modules:
            is_under = (
                target.startswith(upper)
                if upper.endswith(".")
                else (target == upper or target.startswith(upper + "."))
            )
            assert not is_under, f"{name} imports {target}"
