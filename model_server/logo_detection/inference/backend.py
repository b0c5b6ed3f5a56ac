"""The inference backend interface: one forward pass over a batch of model inputs.

Implementations: ONNX Runtime (`onnx_backend.py`, what production serves) and, in the full
install, TensorFlow (the offline `keras_export/keras_model.py`, reached only through
`keras_conversion.py`). `backend_loader.py` picks one for a model file.
"""

from __future__ import annotations

import logging
from typing import Literal, Protocol

import numpy as np

from ..decoding import INPUT_SIZE

logger = logging.getLogger(__name__)

BackendChoice = Literal["auto", "tensorflow", "onnx"]


class InferenceBackend(Protocol):
    """Runs one forward pass over a batch of preprocessed images."""

    name: str

    def predict(self, batch: np.ndarray) -> np.ndarray:
        """(N, 224, 224, 3) float32 -> (N, num_classes) float32 softmax scores."""
        ...


def warm_up(backend: InferenceBackend, max_batch_size: int) -> None:
    """Run batch 1 and the largest pass once at start, so the first real request isn't the slow
    one and the runtime's buffers already have their steady-state size."""
    batch_sizes = tuple(sorted({1, max_batch_size}))
    for batch_size in batch_sizes:
        backend.predict(np.zeros((batch_size, INPUT_SIZE, INPUT_SIZE, 3), np.float32))
    logger.info("Warmed up the %s backend with batch sizes %s", backend.name, batch_sizes)
