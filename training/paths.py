"""Paths as committed metadata and reports name them: relative to the repository."""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def repo_relative(path: Path | str) -> str:
    """A data location relative to the repository (e.g. ``../shared/data``), never an absolute
    path that only exists on the machine a model was trained on."""
    return os.path.relpath(os.path.abspath(path), REPO_ROOT)
