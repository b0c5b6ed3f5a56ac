"""The tree stays ruff-clean (lint and format) and the server mypy-strict, so CI enforces what
`make lint` checks."""

from __future__ import annotations

import subprocess
import sys

import pytest

from bench.harness.server_process import REPO_ROOT


@pytest.mark.parametrize("command", [["check", "."], ["format", "--check", "."]])
def test_ruff(command):
    result = subprocess.run(
        [sys.executable, "-m", "ruff", *command], cwd=REPO_ROOT, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_strict_on_the_server():
    """pyproject.toml's [tool.mypy]: strict, on model_server/ (its cache under build/)."""
    result = subprocess.run(
        [sys.executable, "-m", "mypy"], cwd=REPO_ROOT, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues found" in result.stdout
