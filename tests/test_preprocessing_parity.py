"""The server's preprocessing reproduces keras.utils.image_dataset_from_directory exactly, and
never needs TensorFlow to do it: TensorFlow is only the reference here."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from bench.harness.server_process import DEFAULT_MODEL, REPO_ROOT
from keras_export.keras_model import TensorFlowBackend, load_model
from model_server.logo_detection.decoding import image_to_model_input, image_to_rgb
from model_server.logo_detection.decoding.resize import resize_bilinear
from model_server.logo_detection.errors import ImageError

from .hostile_support import svg
from .image_corpus import (
    JPEGTRAN_MISSING,
    damaged_corpus,
    pillow_only_corpus,
    reference_corpus,
)

pytestmark = pytest.mark.slow  # TensorFlow, exports, conversions

SCORE_TOLERANCE = 1e-5


@pytest.fixture(scope="module")
def backend() -> TensorFlowBackend:
    return TensorFlowBackend(load_model(DEFAULT_MODEL).keras_model)


@pytest.fixture(scope="module")
def corpus() -> dict[str, bytes]:
    return reference_corpus()


def tensorflow_decode(data: bytes) -> np.ndarray | None:
    """What training's decode step gives, or None where it refuses the file."""
    try:
        return tf.io.decode_image(data, channels=3, expand_animations=False).numpy()
    except tf.errors.InvalidArgumentError:
        return None


def training_pipeline_inputs(folder: Path) -> dict[str, np.ndarray]:
    """What the model saw in training: the reference pipeline, read from files."""
    dataset = keras.utils.image_dataset_from_directory(
        folder, labels=None, image_size=(224, 224), shuffle=False, batch_size=8
    )
    images = np.concatenate([batch.numpy() for batch in dataset])
    return {Path(path).name: image for path, image in zip(dataset.file_paths, images, strict=True)}


def test_the_corpus_has_arithmetic_coded_jpegs(corpus):
    """They need jpegtran: CI must have it; a developer machine without it skips them, saying so."""
    if "jpeg_arithmetic.jpg" in corpus:
        return
    if os.environ.get("CI"):
        pytest.fail(JPEGTRAN_MISSING, pytrace=False)
    pytest.skip(JPEGTRAN_MISSING)


def test_decoded_pixels_equal_tensorflows(corpus):
    """Before resizing: every variant decodes to TensorFlow's very pixels (uint8, same shape)."""
    assert len(corpus) >= 60
    different = {}
    for name, data in corpus.items():
        expected, served = tensorflow_decode(data), image_to_rgb(data)
        assert expected is not None, f"{name}: the reference cannot read its own variant"
        if served.shape != expected.shape or (served != expected).any():
            different[name] = (served.shape, expected.shape)
    assert not different, different


def test_every_training_format_matches_the_reference_pipeline(tmp_path, backend, corpus):
    for name, data in corpus.items():
        (tmp_path / name).write_bytes(data)
    reference = training_pipeline_inputs(tmp_path)
    assert set(reference) == set(corpus), "the reference pipeline skipped some files"

    names = sorted(corpus)
    served = np.stack([image_to_model_input(corpus[name]) for name in names])
    expected = np.stack([reference[name] for name in names])
    assert served.dtype == np.float32 and served.shape == (len(names), 224, 224, 3)
    pixel_diff = np.abs(served - expected).max(axis=(1, 2, 3))
    assert pixel_diff.max() == 0.0, dict(zip(names, pixel_diff, strict=True))

    score_diff = np.abs(backend.predict(served) - backend.predict(expected)).max()
    assert score_diff <= SCORE_TOLERANCE


def test_damaged_files_get_tensorflows_decision():
    """Damage TensorFlow decodes through decodes to the same pixels; damage it refuses is
    refused (decode_failed), never decoded into something training never saw."""
    wrong = {}
    for name, data in damaged_corpus().items():
        expected = tensorflow_decode(data)
        try:
            served = image_to_rgb(data)
        except ImageError as error:
            assert error.error_type == "decode_failed", (name, error.message)
            served = None
        if expected is None or served is None:
            if (expected is None) != (served is None):
                wrong[name] = ("refused" if served is None else "decoded", expected is None)
        elif served.shape != expected.shape or (served != expected).any():
            wrong[name] = "different pixels"
    assert not wrong, wrong


RESIZE_SIZES = [
    *[(1, 1), (1, 500), (500, 1), (1, 224), (224, 1), (5, 7), (100, 100), (777, 333)],
    *[(223, 225), (224, 224), (225, 223), (448, 448), (17, 3001), (2000, 3000), (3024, 4032)],
]


@pytest.mark.parametrize("height, width", RESIZE_SIZES)
def test_resize_equals_tensorflows_bit_for_bit(height, width):
    image = np.random.default_rng(height * 7919 + width).integers(0, 256, (height, width, 3))
    image = image.astype(np.uint8)
    expected = tf.image.resize(image, (224, 224)).numpy()
    served = resize_bilinear(image, 224)
    assert served.dtype == np.float32
    assert np.array_equal(served, expected), np.abs(served - expected).max()


@pytest.mark.parametrize("name", sorted(pillow_only_corpus()))
def test_webp_and_tiff_follow_the_same_rgb_convention(name, backend):
    """Lossless WebP/TIFF must score exactly like a PNG of the same pixels."""
    other, png = pillow_only_corpus()[name]
    via_pillow = image_to_model_input(other)
    via_png = image_to_model_input(png)
    assert np.abs(via_pillow - via_png).max() == 0.0
    scores = backend.predict(np.stack([via_pillow, via_png]))
    assert np.abs(scores[0] - scores[1]).max() <= SCORE_TOLERANCE


NO_TENSORFLOW_SCRIPT = textwrap.dedent(
    """
    import importlib.abc, json, sys
    from pathlib import Path

    class Refuse(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in ("tensorflow", "keras", "keras_cv", "tf2onnx", "tf_keras"):
                raise ImportError(f"{name} must not be imported by preprocessing")
            return None

    sys.meta_path.insert(0, Refuse())
    import numpy as np
    from model_server.logo_detection.errors import ImageError
    from model_server.logo_detection.decoding import image_to_model_input, warm_up_decoding

    warm_up_decoding()
    folder = Path(sys.argv[1])
    arrays, errors = {}, {}
    for path in sorted(folder.iterdir()):
        try:
            arrays[path.name] = image_to_model_input(path.read_bytes())
        except ImageError as error:
            errors[path.name] = error.error_type.value
    np.savez(folder / "served.npz", **arrays)
    frameworks = sorted(m for m in sys.modules if m.split(".")[0] in ("tensorflow", "keras"))
    print(json.dumps({"errors": errors, "frameworks": frameworks}))
    """
)


def test_preprocessing_never_imports_tensorflow(tmp_path, corpus):
    """Every variant decodes in a process where TensorFlow, Keras and KerasCV cannot be
    imported, to the same arrays as here."""
    files = dict(corpus) | damaged_corpus()
    files |= {f"{name}.bin": pair[0] for name, pair in pillow_only_corpus().items()}
    files["logo.svg"] = svg('<rect width="80" height="40" fill="#c00"/>')
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    finished = subprocess.run(
        [sys.executable, "-c", NO_TENSORFLOW_SCRIPT, str(tmp_path)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert finished.returncode == 0, finished.stderr[-3000:]
    report = json.loads(finished.stdout.strip().splitlines()[-1])
    assert report["frameworks"] == []
    assert set(report["errors"]) == {
        name for name, data in damaged_corpus().items() if tensorflow_decode(data) is None
    }
    served = np.load(tmp_path / "served.npz")
    assert set(served.files) | set(report["errors"]) == set(files)
    for name in served.files:
        assert np.array_equal(served[name], image_to_model_input(files[name])), name
