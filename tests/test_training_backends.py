"""Training on a Keras backend other than TensorFlow (JAX, the light one to install), the way a
lent GPU machine runs it: the data packed, the job bundled with its wheels, `gpu_job run` training
with TensorFlow and KerasCV unimportable in every process. Then what it wrote is exported
(TensorFlow parity) and served by the real server."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from bench.harness.server_process import REPO_ROOT, ServerProcess

from .conftest import instance, run_export
from .tiny_dataset import make_tiny_dataset

pytestmark = [pytest.mark.training, pytest.mark.slow]

# Imported by every Python process started with this folder on PYTHONPATH: importing what a
# non-TensorFlow training must never need fails there.
REFUSE_TENSORFLOW = """
import sys

class Refuse:
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in ("tensorflow", "keras_cv"):
            raise ImportError(f"{name} imported by a training on another backend")

sys.meta_path.insert(0, Refuse())
"""


def run_tool(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    done = subprocess.run(
        [sys.executable, "-m", *args],
        cwd=REPO_ROOT,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done


@pytest.fixture(scope="module")
def trained_on_jax(tmp_path_factory) -> Path:
    pytest.importorskip("jax")
    root = tmp_path_factory.mktemp("jax-training")
    data = make_tiny_dataset(root / "data")
    pack = root / "data.pack"
    run_tool("training", "pack", "--data-dir", str(data), "--out", str(pack))
    job = root / "job"
    python_version = ".".join(platform.python_version_tuple()[:2])
    bundled = run_tool(
        "training.gpu_job",
        "bundle",
        "--pack",
        str(pack),
        "--out",
        str(job),
        "--python-version",
        python_version,
    )
    assert "with the checkout" in bundled.stdout
    (root / "refuse").mkdir()
    (root / "refuse" / "sitecustomize.py").write_text(REFUSE_TENSORFLOW)
    run_tool(
        *("training.gpu_job", "run", "--job", str(job), "--out", str(root / "out")),
        *("--backend", "jax", "--stages", "1x64:0.9", "--batch-size", "4"),
        *("--steps-per-epoch", "2", "--validation-steps", "1"),
        env={"PYTHONPATH": str(root / "refuse")},
    )
    return root / "out" / "model" / "logo_detection.keras"


def test_jax_training_records_its_backend_and_speed(trained_on_jax):
    info = json.loads(trained_on_jax.with_suffix(".json").read_text())
    training = info["training"]
    assert training["hardware"]["backend"] == "jax"
    assert training["hardware"]["accelerator"] is None  # this machine has no GPU
    assert training["images_per_second"] > 0
    assert "jax" in info["versions"]


def test_jax_trained_model_exports_with_parity_and_serves(trained_on_jax, tmp_path, samples):
    export_dir = tmp_path / "export"
    done = run_export(trained_on_jax, export_dir)
    assert done.returncode == 0, done.stderr[-3000:]
    exported = json.loads((export_dir / "logo_detection.json").read_text())
    parity = exported["export"]["parity"]
    assert parity["reference"] == "tensorflow" and parity["max_abs_diff"] <= 1e-5
    trained = json.loads(trained_on_jax.with_suffix(".json").read_text())
    assert exported["version"] == trained["version"]  # the export carries the version over
    logo = samples["Cambia_logo.png"]
    body = {"instances": [instance("Cambia_logo.png", logo), instance("broken.png", b"not a PNG")]}
    with ServerProcess(export_dir) as server:
        request = urllib.request.Request(
            server.predict_url, json.dumps(body).encode(), {"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=120) as answer:
            predictions = json.loads(answer.read())["predictions"]
    assert predictions[0]["filename"] == "Cambia_logo.png"
    assert 0.0 <= predictions[0]["prediction"] <= 1.0
    assert predictions[0]["prediction"] + predictions[0]["out_of_domain"] == pytest.approx(1.0)
    assert "error" in predictions[1]  # one result per instance, the bad one said so
