"""The distillation teacher and the `distill` command (training tier).

The teacher's ImageNet weights are read from the installed package without PyTorch: their
sha256, the reader's refusal of anything but arrays, every tensor landing in the Keras
definition, and ImageNet classes of two known ImageNet photos from the shared data. Then the
whole `distill` run on a tiny generated folder: teacher targets, the student's file and JSON, a
second run that resumes instead of training again, and a student continued from the first.
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from bench.harness.server_process import REPO_ROOT

from .tiny_dataset import make_tiny_dataset

pytestmark = [pytest.mark.training, pytest.mark.slow]

IMAGENET_SAMPLES = REPO_ROOT.parent / "shared" / "data" / "images" / "out_of_domain"
# ImageNet class indices (the standard 1000-class order) of two sample photos.
KNOWN_PHOTOS = {
    "imagenet-sample-images/n03676483_lipstick.JPEG": 629,
    "imagenet-sample-images/n04273569_speedboat.JPEG": 814,
}


@pytest.fixture(scope="module")
def state_dict() -> dict[str, np.ndarray]:
    from training import teacher
    from training.torch_checkpoint import read_state_dict

    return read_state_dict(teacher.checked_weights())


def test_weights_read_without_pytorch_in_file_order(state_dict: dict[str, np.ndarray]) -> None:
    names = list(state_dict)
    assert len(names) == 296
    assert names[0] == "_conv_stem.weight" and state_dict[names[0]].shape == (32, 3, 3, 3)
    assert state_dict["_blocks.15._project_conv.weight"].shape == (320, 1152, 1, 1)
    assert state_dict["_conv_head.weight"].shape == (1280, 320, 1, 1)
    assert state_dict["_fc.weight"].shape == (1000, 1280)
    assert state_dict["_bn0.running_var"].max() > 0  # statistics, not zeros


def test_weights_with_another_sha256_are_refused(tmp_path: Path) -> None:
    from training import teacher

    copy = tmp_path / "weights.pth"
    shutil.copyfile(teacher.weights_path(), copy)
    assert teacher.check_sha256(copy) == copy
    with copy.open("r+b") as handle:
        handle.seek(-1, os.SEEK_END)
        last = handle.read(1)
        handle.seek(-1, os.SEEK_END)
        handle.write(bytes([last[0] ^ 1]))
    with pytest.raises(teacher.TeacherWeightsError, match="sha256"):
        teacher.check_sha256(copy)


def test_a_weights_file_that_names_code_is_refused(tmp_path: Path) -> None:
    from training.torch_checkpoint import LEGACY_MAGIC, CheckpointError, read_state_dict

    hostile = tmp_path / "hostile.pth"
    hostile.write_bytes(
        pickle.dumps(LEGACY_MAGIC) + pickle.dumps(1001) + pickle.dumps({}) + pickle.dumps(os.system)
    )
    with pytest.raises(CheckpointError, match="refusing to load"):
        read_state_dict(hostile)


def test_every_tensor_lands_and_known_photos_get_their_imagenet_class(
    state_dict: dict[str, np.ndarray],
) -> None:
    from model_server.logo_detection.decoding import image_to_model_input
    from training import teacher

    bottom, top = teacher.build_bottom(), teacher.build_top()
    classifier = teacher.imagenet_classifier(bottom, top)
    copied = teacher.load_imagenet_weights([classifier])
    assert copied == sum(not name.endswith("num_batches_tracked") for name in state_dict)
    pixels = np.stack(
        [image_to_model_input((IMAGENET_SAMPLES / name).read_bytes()) for name in KNOWN_PHOTOS]
    )
    probabilities = np.asarray(classifier.predict_on_batch(pixels.astype(np.float32)))
    assert probabilities.argmax(1).tolist() == list(KNOWN_PHOTOS.values())
    assert (probabilities.max(1) > 0.5).all()


def test_views_are_deterministic_and_view_zero_is_the_image() -> None:
    from training.distill import view_of

    image = np.random.default_rng(0).integers(0, 256, (224, 224, 3), dtype=np.uint8)
    assert np.array_equal(view_of(image, 5, 0, 224, seed=1), image.astype(np.float32))
    first = view_of(image, 5, 1, 128, seed=1)
    assert first.shape == (128, 128, 3)
    assert np.array_equal(first, view_of(image, 5, 1, 128, seed=1))
    assert not np.array_equal(first, view_of(image, 6, 1, 128, seed=1))


@pytest.mark.parametrize(("method", "hard_share"), [("soft", 0.3), ("both", 0.3), ("feature", 1)])
def test_student_targets_mix_the_label_and_the_teacher(method: str, hard_share: float) -> None:
    from training.distill import student_targets_for
    from training.distillation_recipe import Recipe

    rows = np.array([4, 9])
    targets = {
        "rows": rows,
        "probabilities": np.array([[[0.2, 0.8]], [[0.9, 0.1]]], np.float32),
        "features": np.array([[[1.0, 3.0]], [[3.0, 5.0]]], np.float32),
        "feature_mean": np.array([2.0, 4.0], np.float32),
        "feature_std": np.array([1.0, 1.0], np.float32),
    }
    labels = np.zeros(10, int)
    labels[4] = 1
    make = student_targets_for(targets, labels, Recipe(method=method, hard_label_weight=0.3))
    batch = make(np.array([9, 4]), np.array([0, 0]))
    teacher_logo = np.array([0.1, 0.8])
    expected_logo = hard_share * np.array([0, 1]) + (1 - hard_share) * teacher_logo
    np.testing.assert_allclose(batch["predictions"][:, 1], expected_logo, rtol=1e-6)
    np.testing.assert_allclose(batch["predictions"].sum(1), 1.0, rtol=1e-6)
    np.testing.assert_allclose(batch["features"], [[1.0, 1.0], [-1.0, -1.0]])


def run_distill(
    data_dir: Path, out: Path, *flags: str, succeeds: bool = True
) -> subprocess.CompletedProcess:
    """The real command; `flags` come last, so they override the tiny recipe's."""
    command = [sys.executable, "-m", "training", "distill", "--data-dir", str(data_dir)]
    command += ["--out", str(out), "--views", "2", "--head-epochs", "1", "--finetune-epochs", "1"]
    command += ["--student-stages", "1x64,1x96", "--batch-size", "8", *flags]
    done = subprocess.run(
        command,
        cwd=REPO_ROOT,
        env={**os.environ, "KERAS_BACKEND": "tensorflow"},
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert (done.returncode == 0) == succeeds, done.stdout[-3000:] + done.stderr[-3000:]
    return done


def test_distill_writes_teacher_targets_and_a_production_student(tmp_path: Path) -> None:
    import keras

    from model_server.logo_detection.model_contract import file_sha256
    from training.network import build_network

    data_dir = make_tiny_dataset(tmp_path / "data", per_class=8)
    out = tmp_path / "run"
    run_distill(data_dir, out)

    with np.load(out / "targets.npz") as targets:
        rows, views = len(targets["rows"]), 2
        assert targets["features"].shape == (rows, views, 1280)
        assert targets["probabilities"].shape == (rows, views, 2)
        np.testing.assert_allclose(targets["probabilities"].sum(-1), 1.0, rtol=1e-5)
    info = json.loads((out / "logo_detection.json").read_text())
    assert info["class_names"] == ["out_of_domain", "logo"]
    assert info["training"]["teacher"]["weights_sha256"].startswith("579344248a93")
    assert info["training"]["recipe"]["method"] == "both"
    student = keras.saving.load_model(out / "logo_detection.keras", compile=False)
    reference = build_network()
    assert [w.shape for w in student.weights] == [w.shape for w in reference.weights]
    scores = np.asarray(student.predict_on_batch(np.zeros((2, 224, 224, 3), np.float32)))
    np.testing.assert_allclose(scores.sum(1), 1.0, rtol=1e-5)
    assert (out / "logo_teacher.keras").exists()

    written = (out / "logo_detection.keras").stat().st_mtime_ns
    again = run_distill(data_dir, out)
    assert "student:" not in again.stdout  # resumed: nothing trained twice
    assert (out / "logo_detection.keras").stat().st_mtime_ns == written

    shipped = tmp_path / "shipped" / "logo_detection.keras"
    plain = str(out / "logo_detection.keras")
    subprocess.run(
        [sys.executable, "-m", "keras_export.kerascv_form", plain, "--out", str(shipped)],
        cwd=REPO_ROOT,
        check=True,
        capture_output=True,
        timeout=600,
    )
    assert_production_form(shipped)
    converted = keras.saving.load_model(shipped, compile=False)
    pixels = np.random.default_rng(3).uniform(0, 255, (2, 224, 224, 3)).astype(np.float32)
    np.testing.assert_allclose(
        np.asarray(converted.predict_on_batch(pixels)),
        np.asarray(student.predict_on_batch(pixels)),
        atol=1e-5,
    )
    shipped_info = json.loads(shipped.with_suffix(".json").read_text())
    assert shipped_info["sha256"] == file_sha256(shipped)
    assert shipped_info["version"] == info["version"]
    assert shipped_info["training"] == info["training"]

    # Trained longer: a new run given the teacher's weights and targets, starting its student
    # from this one (zero passes here, so the result must be that student exactly).
    continued = tmp_path / "continued"
    continued.mkdir()
    for name in ("teacher_top.weights.h5", "targets.npz"):
        shutil.copyfile(out / name, continued / name)
    first = out / "logo_detection.keras"
    run_distill(data_dir, continued, "--init-student", str(first), "--student-stages", "0x64")
    assert not (continued / "teacher-head-history.csv").exists()  # the teacher was not retrained
    started_from = keras.saving.load_model(continued / "logo_detection.keras", compile=False)
    for mine, theirs in zip(started_from.get_weights(), student.get_weights(), strict=True):
        np.testing.assert_array_equal(mine, theirs)
    recipe = json.loads((continued / "logo_detection.json").read_text())["training"]["recipe"]
    assert recipe["init_student"] == os.path.relpath(first, REPO_ROOT)  # no absolute path
    refused = run_distill(
        data_dir,
        tmp_path / "none",
        "--init-student",
        str(tmp_path / "nowhere.keras"),
        succeeds=False,
    )
    assert "--init-student: no model file at" in refused.stderr


def assert_production_form(path: Path) -> None:
    """A drop-in for the production file: a KerasCV ImageClassifier, 224x224 RGB in, two
    softmax scores out in the class order out_of_domain, logo."""
    import keras
    import keras_cv

    model = keras.saving.load_model(path, compile=False)
    assert isinstance(model, keras_cv.models.ImageClassifier)
    assert isinstance(model.backbone, keras_cv.models.EfficientNetV2Backbone)
    assert tuple(model.input.shape[1:]) in ((None, None, 3), (224, 224, 3))
    assert model.output.shape[-1] == 2
    info = json.loads(path.with_suffix(".json").read_text())
    assert info["class_names"] == ["out_of_domain", "logo"]


def test_the_default_model_is_in_the_production_form() -> None:
    assert_production_form(REPO_ROOT / "models" / "logo_detection.keras")


def test_wordmarks_get_their_own_row() -> None:
    from training.data import Example
    from training.evaluate import named_rows

    examples = [
        Example(Path("logo/devicon/go-original-wordmark.svg"), 1, "devicon", "go"),
        Example(Path("logo/devicon/go-original.svg"), 1, "devicon", "go"),
        Example(Path("out_of_domain/charts/bar.png"), 0, "charts", "bar"),
    ]
    rows = named_rows(examples, np.array([1, 1, 0]), np.array([0.3, 0.9, 0.1]), 0.5)
    assert rows == {
        "files named *wordmark*": {
            "n": 1,
            "accuracy": 0.0,
            "accuracy_at_operating_point": 0.0,
            "mean_logo_score": 0.3,
        }
    }
