"""The server's preprocessing reproduces keras.utils.image_dataset_from_directory exactly."""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import pytest

from model_server.logo_detection.preprocess import image_to_model_input
from model_server.logo_detection.tf.keras_model import TensorFlowBackend, load_model

from .image_corpus import pillow_only_corpus, reference_corpus
from .server_process import DEFAULT_MODEL

SCORE_TOLERANCE = 1e-4


@pytest.fixture(scope="module")
def backend() -> TensorFlowBackend:
    return TensorFlowBackend(load_model(DEFAULT_MODEL).keras_model)


def training_pipeline_inputs(folder: Path) -> dict[str, np.ndarray]:
    """What the model saw in training: the reference pipeline, read from files."""
    dataset = keras.utils.image_dataset_from_directory(
        folder, labels=None, image_size=(224, 224), shuffle=False, batch_size=8
    )
    images = np.concatenate([batch.numpy() for batch in dataset])
    return {Path(path).name: image for path, image in zip(dataset.file_paths, images, strict=True)}


def test_every_training_format_matches_the_reference_pipeline(tmp_path, backend):
    corpus = reference_corpus()
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


@pytest.mark.parametrize("name", sorted(pillow_only_corpus()))
def test_webp_and_tiff_follow_the_same_rgb_convention(name, backend):
    """Lossless WebP/TIFF must score exactly like a PNG of the same pixels."""
    other, png = pillow_only_corpus()[name]
    via_pillow = image_to_model_input(other)
    via_tensorflow = image_to_model_input(png)
    assert np.abs(via_pillow - via_tensorflow).max() == 0.0
    scores = backend.predict(np.stack([via_pillow, via_tensorflow]))
    assert np.abs(scores[0] - scores[1]).max() <= SCORE_TOLERANCE
