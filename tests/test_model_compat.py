"""Model files saved by the production stack (Keras 3.0 + KerasCV 0.8.1 + TF 2.15) load and agree.

The old stack is installed into a throwaway venv (cached between runs under build/tests); if PyPI
can't be reached the test skips and says why.
"""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from bench.harness.server_process import REPO_ROOT, TEST_BUILD_DIR, ServerProcess
from keras_export.keras_model import TensorFlowBackend, load_model

from .conftest import instance, post_predict

pytestmark = pytest.mark.slow  # TensorFlow, exports, conversions

LEGACY_VENV = Path(os.environ.get("LEGACY_STACK_VENV", TEST_BUILD_DIR / "legacy-stack-venv"))
LEGACY_PACKAGES = (["tensorflow-cpu==2.15.1"], ["keras==3.0.4", "keras-cv==0.8.1"])


def ensure_legacy_venv() -> Path:
    """Install the production stack once; a lock keeps concurrent test runs from racing."""
    python = LEGACY_VENV / "bin" / "python"
    LEGACY_VENV.parent.mkdir(parents=True, exist_ok=True)
    with open(LEGACY_VENV.parent / "legacy-stack.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if _imports_the_stack(python):
            return python
        subprocess.run([sys.executable, "-m", "venv", "--clear", LEGACY_VENV], check=True)
        # TF 2.15 pins Keras 2: install it first, then Keras 3.0 over it, as production did.
        for packages in LEGACY_PACKAGES:
            result = subprocess.run(
                [python, "-m", "pip", "install", "--quiet", *packages],
                capture_output=True,
                text=True,
                timeout=1200,
            )
            if result.returncode != 0:
                pytest.skip(
                    f"cannot install the production stack {packages}: {result.stderr[-500:]}"
                )
        assert _imports_the_stack(python), "the production stack installed but does not import"
    return python


def _imports_the_stack(python: Path) -> bool:
    if not python.is_file():
        return False
    check = "import keras, keras_cv, tensorflow; assert keras.__version__.startswith('3.0.')"
    return subprocess.run([python, "-c", check], capture_output=True, timeout=300).returncode == 0


@pytest.fixture(scope="module")
def legacy_model(tmp_path_factory) -> Path:
    python = ensure_legacy_venv()
    out = tmp_path_factory.mktemp("legacy")
    subprocess.run(
        [python, REPO_ROOT / "tests/legacy_stack/build_model.py", REPO_ROOT, out],
        check=True,
        timeout=600,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
    )
    versions = json.loads((out / "versions.json").read_text())
    assert versions["keras"].startswith("3.0.") and versions["tf"].startswith("2.15.")
    assert versions["keras_cv"].startswith("0.8.")
    return out


def test_production_stack_file_loads_with_identical_outputs(legacy_model):
    loaded = load_model(legacy_model / "legacy.keras")
    scores = TensorFlowBackend(loaded.keras_model).predict(np.load(legacy_model / "inputs.npy"))
    assert np.abs(scores - np.load(legacy_model / "scores.npy")).max() <= 1e-5


def test_current_stack_file_round_trips(tmp_path):
    from keras_export.architecture import build_classifier

    model = build_classifier()
    inputs = np.random.default_rng(3).uniform(0, 255, (2, 224, 224, 3)).astype(np.float32)
    expected = model.predict(inputs, verbose=0)
    model.save(tmp_path / "current.keras")
    loaded = load_model(tmp_path / "current.keras")
    assert np.abs(TensorFlowBackend(loaded.keras_model).predict(inputs) - expected).max() <= 1e-5


@pytest.mark.asyncio
async def test_server_serves_a_production_stack_file(legacy_model, http, samples):
    with ServerProcess(legacy_model / "legacy.keras") as server:
        body = {"instances": [instance("Cambia_logo.png", data=samples["Cambia_logo.png"])]}
        status, answer = await post_predict(http, server, body)
    assert status == 200, answer
    assert 0 <= answer["predictions"][0]["prediction"] <= 1
