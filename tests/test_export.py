"""Export once, serve without TensorFlow: the export tool, its JSON, and a real server process
that serves the exported model with TensorFlow, Keras and KerasCV made impossible to import."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from bench.harness.server_process import DEFAULT_MODEL, DEFAULT_ONNX, ServerProcess, run_to_exit
from model_server.logo_detection.inference.onnx_backend import OnnxRuntimeBackend
from model_server.logo_detection.model_contract import (
    ModelFileError,
    describe_model,
    file_sha256,
    resolve_model_file,
)

from .conftest import SAMPLE_NAMES, instance, post_predict, run_export

pytestmark = pytest.mark.slow  # TensorFlow, exports, conversions

BLOCKED_MODULES = ("tensorflow", "keras", "keras_cv", "tf2onnx", "tf_keras")

# Installed as `sitecustomize` in the server process: any import of a blocked module fails, and
# is written down with the stack that asked for it.
IMPORT_BLOCKER = """
import sys, traceback
BLOCKED = {blocked!r}
ATTEMPTS = {attempts!r}

class BlockedImports:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            with open(ATTEMPTS, "a") as log:
                log.write(name + "\\n" + "".join(traceback.format_stack()) + "\\n")
            raise ModuleNotFoundError(f"{{name}} is blocked in this process", name=name)
        return None

sys.meta_path.insert(0, BlockedImports())
"""


def without_tensorflow(tmp_path: Path) -> tuple[dict[str, str], Path]:
    """Server settings that make TensorFlow & co. impossible to import, and the attempts log."""
    site = tmp_path / "blocker"
    site.mkdir()
    attempts = tmp_path / "blocked-imports.log"
    code = IMPORT_BLOCKER.format(blocked=set(BLOCKED_MODULES), attempts=str(attempts))
    (site / "sitecustomize.py").write_text(code)
    return {"pythonpath": str(site)}, attempts


@pytest.fixture(scope="module")
def fresh_export(tmp_path_factory) -> Path:
    """The committed .keras exported now by the real export tool, as a user runs it."""
    out_dir = tmp_path_factory.mktemp("fresh-export")
    result = run_export(DEFAULT_MODEL, out_dir)
    assert result.returncode == 0, result.stderr[-3000:]
    return out_dir


def test_the_export_writes_the_model_and_a_json_that_describes_it(fresh_export):
    onnx_file = fresh_export / "logo_detection.onnx"
    metadata = json.loads(onnx_file.with_suffix(".json").read_text())
    assert metadata["class_names"] == ["out_of_domain", "logo"]
    assert metadata["input_size"] == [224, 224, 3]
    assert metadata["onnx"] == {"file": onnx_file.name, "sha256": file_sha256(onnx_file)}
    assert metadata["source"]["file"] == DEFAULT_MODEL.name
    assert metadata["source"]["sha256"] == file_sha256(DEFAULT_MODEL)
    parity = metadata["export"]["parity"]
    assert parity["reference"] == "tensorflow" and parity["images"] >= 6
    assert 0 <= parity["max_abs_diff"] <= parity["tolerance"] == 1e-5
    assert {"keras", "tf2onnx", "onnxruntime"} <= set(metadata["export"]["versions"])
    assert '"/' not in json.dumps(metadata)  # no absolute paths of the machine it ran on
    assert sorted(path.name for path in fresh_export.iterdir()) == [
        "logo_detection.json",
        "logo_detection.onnx",
    ]  # nothing partial left behind


def test_the_committed_onnx_is_the_export_of_the_committed_keras(fresh_export, samples):
    """What `make run` and the tests serve without TensorFlow is what the export tool makes of
    models/logo_detection.keras now: the same scores within 1e-5, the same JSON."""
    from keras_export.parity import parity_batches
    from model_server.logo_detection.decoding import image_to_model_input

    committed = OnnxRuntimeBackend(DEFAULT_ONNX, threads=2)
    fresh = OnnxRuntimeBackend(fresh_export / DEFAULT_ONNX.name, threads=2)
    decoded = np.stack([image_to_model_input(data) for data in samples.values()])
    for batch in [*parity_batches(), decoded]:
        assert np.max(np.abs(committed.predict(batch) - fresh.predict(batch))) <= 1e-5
    published = json.loads(DEFAULT_ONNX.with_suffix(".json").read_text())
    made_now = json.loads((fresh_export / "logo_detection.json").read_text())
    assert published["onnx"] == {"file": DEFAULT_ONNX.name, "sha256": file_sha256(DEFAULT_ONNX)}
    # the class order, input size, version and source (the .keras's hash and training JSON)
    assert {key: value for key, value in published.items() if key not in ("onnx", "export")} == {
        key: value for key, value in made_now.items() if key not in ("onnx", "export")
    }
    # the same tools; each export's own parity check (its last digits vary with the CPU)
    assert published["export"]["versions"] == made_now["export"]["versions"]
    assert published["export"]["parity"]["max_abs_diff"] <= 1e-5
    assert published["version"] == describe_model(DEFAULT_ONNX).version == "20261128125907"


def test_the_export_refuses_a_model_that_does_not_score_like_tensorflow(tmp_path):
    # No real conversion matches TensorFlow to 1e-12: the refusal path, with the real tool.
    result = run_export(DEFAULT_MODEL, tmp_path, "--tolerance", "1e-12")
    assert result.returncode == 1, result.stderr
    assert "differ from TensorFlow's by" in result.stderr and "nothing written" in result.stderr
    assert list(tmp_path.iterdir()) == []


async def test_the_exported_model_serves_without_tensorflow_with_the_same_scores(
    exported_default_model, tmp_path, http, samples
):
    blocked, attempts = without_tensorflow(tmp_path)
    body = {"instances": [instance(name, data=samples[name]) for name in SAMPLE_NAMES]}
    with ServerProcess(exported_default_model, **blocked) as slim:
        status, answer = await post_predict(http, slim, body)
        log = slim.log()
    assert status == 200, answer
    assert "backend onnx" in log and "logo_detection.onnx" in log
    assert not attempts.exists(), attempts.read_text()  # nothing even tried to import them
    with ServerProcess(DEFAULT_MODEL) as full:  # the .keras, in the full install
        status, reference = await post_predict(http, full, body)
    assert status == 200, reference
    for served, expected in zip(answer["predictions"], reference["predictions"], strict=True):
        assert served["filename"] == expected["filename"]
        assert abs(served["prediction"] - expected["prediction"]) <= 1e-4  # 4 decimals shown


def test_a_keras_file_without_tensorflow_is_refused_with_what_to_do(tmp_path):
    blocked, _ = without_tensorflow(tmp_path)
    code, output = run_to_exit(DEFAULT_MODEL, **blocked)
    assert code == 2, output
    assert "needs TensorFlow" in output and "make export MODEL=" in output
    assert "Traceback" not in output


def test_a_json_from_another_export_is_refused(exported_default_model, tmp_path):
    shutil.copy(exported_default_model / "logo_detection.onnx", tmp_path / "model.onnx")
    metadata = json.loads((exported_default_model / "logo_detection.json").read_text())
    metadata["onnx"]["sha256"] = "0" * 64
    (tmp_path / "model.json").write_text(json.dumps(metadata))
    with pytest.raises(ModelFileError, match="describes another export"):
        describe_model(tmp_path)
    code, output = run_to_exit(tmp_path)
    assert code == 2 and "describes another export" in output, output


def test_tensorflow_backend_with_an_onnx_model_is_refused(exported_default_model):
    code, output = run_to_exit(exported_default_model, inference_backend="tensorflow")
    assert code == 2 and "INFERENCE_BACKEND=tensorflow needs a .keras model" in output, output


def test_an_onnx_file_that_is_not_a_model_is_refused(tmp_path):
    (tmp_path / "broken.onnx").write_bytes(b"not a protobuf")
    code, output = run_to_exit(tmp_path / "broken.onnx")
    assert code == 2 and "cannot load model" in output, output


def test_a_published_directory_with_keras_onnx_and_json_serves_the_onnx(tmp_path):
    for name in ("model.keras", "model.onnx", "model.json"):
        (tmp_path / name).write_bytes(b"")
    assert resolve_model_file(tmp_path) == tmp_path / "model.onnx"
