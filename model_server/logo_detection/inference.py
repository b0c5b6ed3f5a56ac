"""Inference backends: one small interface, so a faster runtime can stand in for TensorFlow."""

from __future__ import annotations

import logging
from typing import Protocol

import numpy as np
import tensorflow as tf

from .architecture import INPUT_SIZE

logger = logging.getLogger(__name__)

INPUT_SPEC = tf.TensorSpec([None, INPUT_SIZE, INPUT_SIZE, 3], tf.float32)


class InferenceBackend(Protocol):
    """Runs one forward pass over a batch of preprocessed images."""

    name: str

    def predict(self, batch: np.ndarray) -> np.ndarray:
        """(N, 224, 224, 3) float32 -> (N, num_classes) float32 softmax scores."""
        ...


class TensorFlowBackend:
    """The reference: the Keras model as one compiled graph, traced once for any batch size."""

    name = "tensorflow"

    def __init__(self, keras_model) -> None:
        self._forward = tf.function(
            lambda images: keras_model(images, training=False), input_signature=[INPUT_SPEC]
        )

    def predict(self, batch: np.ndarray) -> np.ndarray:
        return self._forward(tf.convert_to_tensor(batch, tf.float32)).numpy()


def warm_up(backend: InferenceBackend, batch_sizes: tuple[int, ...] = (1, 8)) -> None:
    """Trace and run once at start, so the first real request isn't the slow one."""
    for batch_size in batch_sizes:
        backend.predict(np.zeros((batch_size, INPUT_SIZE, INPUT_SIZE, 3), np.float32))
    logger.info("Warmed up the %s backend with batch sizes %s", backend.name, batch_sizes)
