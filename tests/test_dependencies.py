"""One source of dependencies: pyproject.toml declares what the code imports, `make lock` turns it
into hashed locks, and the images install those locks. In-process, no network.

The locks: requirements-serving.txt (the production image), requirements.txt (export: serving
plus TensorFlow), requirements-dev.txt (make install, CI), requirements-gpu.txt (make install-gpu).
"""

from __future__ import annotations

import ast
import importlib.metadata
import re
import sys
import tomllib
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from bench.harness.server_process import REPO_ROOT

PROJECT = "logo-detection"
SOURCE_DIRS = ("model_server", "keras_export", "training", "bench", "tests")
LOCKS = {
    "serving": "requirements-serving.txt",
    "export": "requirements.txt",
    "dev": "requirements-dev.txt",
    "gpu": "requirements-gpu.txt",
}
# The extras each lock resolves (Makefile, lock target); "dev" and "gpu" name others in turn.
LOCK_EXTRAS = {"serving": (), "export": ("export",), "dev": ("dev",), "gpu": ("gpu",)}
FRAMEWORKS = re.compile(r"^(tensorflow|tf-keras|keras|tf2onnx|onnx$)")


# --- pyproject.toml ---------------------------------------------------------------------------


def project() -> dict:
    return tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]


def requirements(extras: tuple[str, ...] = ()) -> list[Requirement]:
    """The serving dependencies plus those of `extras`, following the extras that name ours."""
    table = project()
    found = [Requirement(r) for r in table["dependencies"]]
    pending, seen = list(extras), set()
    while pending:
        extra = pending.pop()
        if extra in seen:
            continue
        seen.add(extra)
        for requirement in map(Requirement, table["optional-dependencies"][extra]):
            if canonicalize_name(requirement.name) == PROJECT:
                pending += sorted(requirement.extras)
            else:
                found.append(requirement)
    return found


def declared_distributions() -> set[str]:
    extras = tuple(project()["optional-dependencies"])
    return {canonicalize_name(r.name) for r in requirements(extras)}


# --- imports ------------------------------------------------------------------------------------


def imported_modules(source: str) -> set[str]:
    """Top-level names of the absolute imports in `source`."""
    names = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def undeclared_imports(files: dict[str, str], declared: set[str]) -> dict[str, str]:
    """Third-party module -> why it is not covered, for the imports of `files` (path -> source)."""
    distributions = importlib.metadata.packages_distributions()
    problems = {}
    for path, source in sorted(files.items()):
        for module in sorted(imported_modules(source)):
            if module in sys.stdlib_module_names or module in SOURCE_DIRS:
                continue
            names = {canonicalize_name(d) for d in distributions.get(module, [])}
            if not names and canonicalize_name(module) in declared:
                continue  # an optional backend this install lacks, declared under its own name
            if not names:
                problems[module] = f"{path}: not installed, so its distribution is unknown"
            elif not names & declared:
                problems[module] = f"{path}: from {sorted(names)}, which pyproject.toml lacks"
    return problems


def our_sources() -> dict[str, str]:
    return {
        str(path.relative_to(REPO_ROOT)): path.read_text()
        for directory in SOURCE_DIRS
        for path in sorted((REPO_ROOT / directory).rglob("*.py"))
        if "__pycache__" not in path.parts
    }


def test_pyproject_declares_every_third_party_module_the_code_imports():
    problems = undeclared_imports(our_sources(), declared_distributions())
    assert not problems, "\n".join(f"{m}: {why}" for m, why in problems.items())


def test_the_import_check_sees_undeclared_and_ignores_ours():
    source = (
        "import os, json\nfrom . import sibling\nimport model_server.logo_detection\n"
        "from training import data\nimport yaml\nimport numpy.typing\n"
    )
    problems = undeclared_imports({"x.py": source}, {"numpy"})
    assert set(problems) == {"yaml"} and "pyyaml" in problems["yaml"]
    missing = undeclared_imports({"x.py": "import no_such_module_anywhere"}, set())
    assert "not installed" in missing["no_such_module_anywhere"]


def test_directly_imported_web_stack_is_declared_for_serving():
    serving = {canonicalize_name(r.name) for r in requirements()}
    assert {"fastapi", "starlette", "orjson", "yarl", "kserve", "onnxruntime"} <= serving
    assert not any(FRAMEWORKS.match(name) for name in serving), "TensorFlow in serving deps"


def test_ranges_are_ranges_and_no_version_is_written_twice():
    table = project()
    lists = [table["dependencies"], *table["optional-dependencies"].values()]
    versioned: dict[str, set[str]] = {}
    for requirement in (Requirement(r) for group in lists for r in group):
        if canonicalize_name(requirement.name) == PROJECT:
            continue
        assert not any(s.operator in ("==", "===") for s in requirement.specifier), (
            f"{requirement}: pin versions in the locks (make lock), not in pyproject.toml"
        )
        versioned.setdefault(canonicalize_name(requirement.name), set()).add(
            str(requirement.specifier)
        )
    assert {name: specs for name, specs in versioned.items() if len(specs) > 1} == {}


# --- the locks ----------------------------------------------------------------------------------


def parse_lock(path: Path) -> dict[str, tuple[str, list[str]]]:
    """name -> (version, hashes) of a `uv pip compile --generate-hashes` file; all else fails."""
    entries: dict[str, tuple[str, list[str]]] = {}
    current = None
    for number, line in enumerate(path.read_text().splitlines(), 1):
        stripped = line.strip().rstrip("\\").strip()
        if not stripped or stripped.startswith("#"):
            continue
        if line[0].isspace():
            assert stripped.startswith("--hash=sha256:"), f"{path.name}:{number}: {line}"
            assert current, f"{path.name}:{number}: a hash without a requirement"
            entries[current][1].append(stripped)
            continue
        match = re.fullmatch(r"([A-Za-z0-9_.-]+)(\[[^\]]*\])?==([^\s;]+)(\s*;.*)?", stripped)
        assert match, f"{path.name}:{number}: not an exact pin: {line}"
        current = canonicalize_name(match.group(1))
        assert current not in entries, f"{path.name}: {current} twice"
        entries[current] = (match.group(3), [])
    return entries


@pytest.fixture(scope="module")
def locks() -> dict[str, dict[str, tuple[str, list[str]]]]:
    return {kind: parse_lock(REPO_ROOT / name) for kind, name in LOCKS.items()}


@pytest.mark.parametrize("kind", LOCKS)
def test_each_lock_is_generated_pins_everything_with_hashes_and_meets_pyproject(kind, locks):
    text = (REPO_ROOT / LOCKS[kind]).read_text()
    assert text.startswith("# This file was autogenerated by uv"), "write it with make lock"
    assert "make lock" in text.splitlines()[1]
    lock = locks[kind]
    assert all(hashes for _, hashes in lock.values()), f"unhashed pins in {LOCKS[kind]}"
    for requirement in requirements(LOCK_EXTRAS[kind]):
        name = canonicalize_name(requirement.name)
        assert name in lock, f"{LOCKS[kind]} lacks {name}: run make lock"
        assert requirement.specifier.contains(lock[name][0], prereleases=True), (
            f"{LOCKS[kind]} pins {name}=={lock[name][0]}, outside {requirement}: run make lock"
        )
    assert PROJECT not in lock


def test_serving_lock_pins_the_web_stack_and_no_framework(locks):
    serving = locks["serving"]
    for name in ("fastapi", "starlette", "uvicorn", "kserve", "onnxruntime", "orjson", "yarl"):
        assert name in serving, f"the serving lock leaves {name} to the resolver"
    frameworks = sorted(name for name in serving if FRAMEWORKS.match(name))
    assert frameworks == [], f"TensorFlow/Keras in the production image: {frameworks}"


def test_every_lock_has_the_dev_lock_versions(locks):
    """The dev lock is resolved first and constrains the others (make lock), so the export lock
    is the serving stack plus TensorFlow without moving a package, and tests see serving's
    versions."""
    dev = {name: version for name, (version, _) in locks["dev"].items()}
    for kind in ("serving", "export", "gpu"):
        lock = {name: version for name, (version, _) in locks[kind].items()}
        differ = {
            name: (v, dev[name]) for name, v in lock.items() if name in dev and dev[name] != v
        }
        assert differ == {}, f"{LOCKS[kind]} vs requirements-dev.txt: {differ}"
    assert locks["serving"].keys() <= locks["export"].keys() <= locks["dev"].keys()
    # the GPU lock's own checks: test_training_tools.py, test_gpu_requirements_match_the_cpu_pins


def test_make_installs_the_locks_with_hashes_and_can_regenerate_them():
    makefile = (REPO_ROOT / "Makefile").read_text()
    installed = re.search(r"^\$\(INSTALLED\):(.*)$", makefile, re.M).group(1).split()
    assert sorted(installed) == ["pyproject.toml", "requirements-dev.txt"]
    assert "pip install --quiet --require-hashes -r requirements-dev.txt" in makefile
    assert "pip install --quiet --require-hashes -r requirements-gpu.txt" in makefile
    lock_rule = makefile[makefile.index("\nlock:") :].split("\n\n")[0]
    for kind, name in LOCKS.items():
        assert f"-o {name}" in lock_rule, f"make lock does not write {name} ({kind})"
    assert "--generate-hashes" in makefile


# --- the images install the locks -------------------------------------------------------------


def dockerfile_runs(stage: str | None = None) -> list[str]:
    """The RUN arguments of one stage (None: of every stage)."""
    text = re.sub(r"\\\n", " ", (REPO_ROOT / "Dockerfile").read_text())
    runs, current = [], None
    for line in text.splitlines():
        instruction, _, arguments = line.strip().partition(" ")
        if instruction.upper() == "FROM":
            current = arguments.split()[-1]
        elif instruction.upper() == "RUN" and stage in (None, current):
            runs.append(arguments)
    return runs


def pip_installs(runs: list[str]) -> list[str]:
    return [part for run in runs for part in run.split("&&") if "pip install" in part]


def test_dockerfile_installs_the_serving_lock_with_hashes():
    (serving,) = pip_installs(dockerfile_runs("serving-stack"))
    assert "--require-hashes" in serving.split()
    assert serving.split()[-2:] == ["-r", "/src/requirements-serving.txt"]
    (package,) = pip_installs(dockerfile_runs("serving-build"))
    assert "--no-deps" in package.split(), "the package must not pull unlocked dependencies"
    assert "--no-build-isolation" in package.split(), "the build would fetch unhashed setuptools"
    for stage in ("serving-build", "production"):
        assert not any("requirements" in run for run in dockerfile_runs(stage))
    # the image serves the committed export: no stage installs another lock (TensorFlow)
    every_lock = re.findall(r" -r (\S+)", " && ".join(pip_installs(dockerfile_runs())))
    assert every_lock == ["/src/requirements-serving.txt"]


def test_blubber_installs_one_lock_per_variant():
    variants = yaml.safe_load((REPO_ROOT / "blubber.yaml").read_text())["variants"]
    assert variants["build"]["python"]["requirements"] == ["requirements-serving.txt"]
    assert variants["test"]["python"]["requirements"] == ["requirements-dev.txt"]
    assert "export" not in variants, "the image serves the committed export: no TensorFlow lock"
    assert "requirements" not in variants["production"]["python"]
