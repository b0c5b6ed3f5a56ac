"""Scoring images with a Keras model, on any backend: what training, evaluation and
leave-source-out share (kept apart from the plots and tables, which need matplotlib)."""

from __future__ import annotations

import keras
import numpy as np

from training.progress import progress


def score_model(model: keras.Model, images: np.ndarray, batch_size: int = 32) -> np.ndarray:
    """Logo probability (column 1) for uint8 or float 224x224 inputs, in batches.

    A few images are run eagerly: tracing the predict graph would take longer than they do.
    """
    if not len(images):
        return np.zeros(0, np.float32)
    if len(images) <= batch_size:
        probabilities = model(np.asarray(images, np.float32), training=False)
        return keras.ops.convert_to_numpy(probabilities)[:, 1]  # torch's tensor carries a graph
    starts = range(0, len(images), batch_size)
    scores = [
        np.asarray(model.predict_on_batch(np.asarray(images[i : i + batch_size], np.float32)))[:, 1]
        for i in progress(starts, len(starts), "scoring", unit="batch")
    ]
    return np.concatenate(scores) if scores else np.zeros(0)
