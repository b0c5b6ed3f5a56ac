"""The server refuses to start on a model it can't serve, and says why."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from bench.harness.server_process import DEFAULT_MODEL, run_to_exit
from keras_export.architecture import build_classifier
from keras_export.keras_model import load_model
from model_server.logo_detection.model_contract import ModelFileError, resolve_model_file

pytestmark = pytest.mark.slow  # TensorFlow, exports, conversions


def test_a_directory_with_one_model_file_is_accepted(tmp_path):
    (tmp_path / "nested").mkdir()
    target = tmp_path / "nested" / "model.keras"
    target.write_bytes(b"")
    assert resolve_model_file(tmp_path) == target


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        (lambda root: root / "absent.keras", "does not exist"),
        (lambda root: root, "no .onnx or .keras file"),
        (lambda root: _two_models(root), "several .keras files"),
        (lambda root: _write(root / "corrupt.keras", b"not a zip file"), "cannot load model"),
    ],
)
def test_unservable_model_paths_are_refused(tmp_path, setup, message):
    with pytest.raises(ModelFileError, match=message):
        load_model(setup(tmp_path))


def test_a_model_whose_output_is_not_two_classes_is_refused(tmp_path):
    path = tmp_path / "three.keras"
    build_classifier(num_classes=3).save(path)
    with pytest.raises(ModelFileError, match=r"outputs shape \(None, 3\)"):
        load_model(path, ("out_of_domain", "logo"))


def test_class_order_comes_from_the_json_beside_the_model(tmp_path):
    path = tmp_path / "swapped.keras"
    shutil.copy(DEFAULT_MODEL, path)
    path.with_suffix(".json").write_text(json.dumps({"class_names": ["logo", "out_of_domain"]}))
    assert load_model(path).class_names == ("logo", "out_of_domain")
    assert load_model(path, ("out_of_domain", "logo")).class_names == ("out_of_domain", "logo")
    with pytest.raises(ModelFileError, match="exactly the two classes"):
        load_model(path, ("cat", "dog"))


def test_the_server_exits_with_a_clear_message_when_the_model_is_missing(tmp_path):
    code, output = run_to_exit(tmp_path / "nowhere.keras")
    assert code == 2
    assert "Cannot start" in output and "does not exist" in output
    assert "Traceback" not in output


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _two_models(root: Path) -> Path:
    _write(root / "a.keras", b"")
    _write(root / "b.keras", b"")
    return root
