"""The tree stays ruff-clean (lint and format), so CI enforces what `make lint` checks."""

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
