"""The tree stays ruff-clean (lint and format), and the server and the offline export package
mypy-strict, so CI enforces what `make lint` checks."""

from __future__ import annotations

import subprocess
import sys
import tomllib

import pytest

from bench.harness.server_process import REPO_ROOT


@pytest.mark.parametrize("command", [["check", "."], ["format", "--check", "."]])
def test_ruff(command):
    result = subprocess.run(
        [sys.executable, "-m", "ruff", *command], cwd=REPO_ROOT, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_strict_on_the_server_and_the_export_package():
    """pyproject.toml's [tool.mypy]: strict, on model_server/ and keras_export/ (cache under
    build/). TensorFlow, Keras and KerasCV ship no types: what they return is Any."""
    result = subprocess.run(
        [sys.executable, "-m", "mypy"], cwd=REPO_ROOT, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues found" in result.stdout
    config = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["tool"]["mypy"]
    assert config["strict"] is True and config["files"] == ["model_server", "keras_export"]
