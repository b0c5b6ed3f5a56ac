"""Inference backends: one small interface, so a faster runtime can stand in for TensorFlow.

TensorFlow (the Keras model as one graph) is the reference and always available. A faster
backend serves only after it has matched the reference within `PARITY_TOLERANCE` on fixed
inputs at load; otherwise the server logs why and serves with TensorFlow.
"""

from __future__ import annotations

import contextlib
import logging
import time
from pathlib import Path
from typing import Literal, Protocol

import numpy as np
import tensorflow as tf

from .architecture import INPUT_SIZE

logger = logging.getLogger(__name__)

INPUT_SPEC = tf.TensorSpec([None, INPUT_SIZE, INPUT_SIZE, 3], tf.float32)
PARITY_TOLERANCE = 1e-5
BackendChoice = Literal["auto", "tensorflow", "onnx"]


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


def warm_up(backend: InferenceBackend, max_batch_size: int) -> None:
    """Run batch 1 and the largest pass once at start, so the first real request isn't the slow
    one and the runtime's buffers already have their steady-state size."""
    batch_sizes = tuple(sorted({1, max_batch_size}))
    for batch_size in batch_sizes:
        backend.predict(np.zeros((batch_size, INPUT_SIZE, INPUT_SIZE, 3), np.float32))
    logger.info("Warmed up the %s backend with batch sizes %s", backend.name, batch_sizes)


def parity_batches() -> list[np.ndarray]:
    """Fixed images in 0..255, batch 1 and batch 5: flat, gradients, stripes, noise, blocks.

    Varied enough that any real divergence (a wrong layer, weight, or layout) moves the scores.
    """
    rng = np.random.default_rng(20240604)
    axis = np.linspace(0.0, 255.0, INPUT_SIZE, dtype=np.float32)
    rows, cols = np.meshgrid(axis, axis, indexing="ij")
    stripes = np.where((np.arange(INPUT_SIZE) // 8) % 2 == 0, 255.0, 0.0).astype(np.float32)
    blocks = rng.integers(0, 256, (8, 8, 3)).repeat(28, axis=0).repeat(28, axis=1)
    images = [
        np.full((INPUT_SIZE, INPUT_SIZE, 3), 127.0, np.float32),
        np.stack([rows, cols, 255.0 - rows], axis=-1),
        np.stack([np.broadcast_to(stripes, (INPUT_SIZE, INPUT_SIZE))] * 3, axis=-1),
        rng.uniform(0.0, 255.0, (INPUT_SIZE, INPUT_SIZE, 3)).astype(np.float32),
        blocks.astype(np.float32),
        np.stack([cols, np.full_like(cols, 30.0), rows], axis=-1),
    ]
    return [np.stack(images[:1]), np.stack(images[1:])]


def max_score_difference(
    candidate: InferenceBackend, reference: InferenceBackend, batches: list[np.ndarray]
) -> float:
    """Largest absolute difference between two backends' scores over the given batches."""
    return max(
        float(np.max(np.abs(candidate.predict(batch) - reference.predict(batch))))
        for batch in batches
    )


def fastest(
    backends: list[InferenceBackend], batch_sizes: tuple[int, ...] = (1, 8), rounds: int = 5
) -> InferenceBackend:
    """The backend with the lowest best-of-`rounds` time per image, summed over `batch_sizes`
    (a lone request and a shared pass count alike); the runs are interleaved so that noise from
    other processes hits every backend alike."""
    images = parity_batches()[1]
    batches = [images[np.arange(size) % len(images)] for size in batch_sizes]
    best = {backend.name: [float("inf")] * len(batches) for backend in backends}
    for _ in range(rounds):
        for backend in backends:
            for index, batch in enumerate(batches):
                started = time.perf_counter()
                backend.predict(batch)
                elapsed = time.perf_counter() - started
                best[backend.name][index] = min(best[backend.name][index], elapsed)
    logger.info(
        "Forward pass, best of %d, batch sizes %s: %s",
        rounds,
        batch_sizes,
        "; ".join(
            f"{name} " + ", ".join(f"{seconds * 1000:.1f}" for seconds in times) + " ms"
            for name, times in best.items()
        ),
    )
    per_image = {
        name: sum(seconds / size for seconds, size in zip(times, batch_sizes, strict=True))
        for name, times in best.items()
    }
    return min(backends, key=lambda backend: per_image[backend.name])


def select_backend(
    choice: BackendChoice,
    keras_model,
    model_file: Path,
    onnx_cache_dir: Path,
    threads: int,
) -> InferenceBackend:
    """INFERENCE_BACKEND: `tensorflow`; `onnx` if it verifies; `auto`: the fastest that does."""
    reference = TensorFlowBackend(keras_model)
    if choice == "tensorflow":
        return reference
    candidate = verified_onnx_backend(reference, keras_model, model_file, onnx_cache_dir, threads)
    if candidate is None:
        return reference
    if choice == "onnx":
        return candidate
    return fastest([reference, candidate])


def verified_onnx_backend(
    reference: InferenceBackend,
    keras_model,
    model_file: Path,
    onnx_cache_dir: Path,
    threads: int,
) -> InferenceBackend | None:
    """The ONNX Runtime backend if it converts, loads and matches the reference; else None."""
    from .onnx_backend import OnnxRuntimeBackend, cached_onnx_file

    try:
        onnx_file, from_cache = cached_onnx_file(keras_model, model_file, onnx_cache_dir)
        candidate = OnnxRuntimeBackend(onnx_file, threads)
        difference = max_score_difference(candidate, reference, parity_batches())
    except Exception as error:  # conversion or runtime failure: TensorFlow still serves
        logger.warning("ONNX backend unavailable, serving with TensorFlow: %s", error)
        return None
    if difference > PARITY_TOLERANCE:
        logger.warning(
            "ONNX backend refused, serving with TensorFlow: its scores differ from TensorFlow's "
            "by %.3g (tolerance %g) on the parity inputs (%s)",
            difference,
            PARITY_TOLERANCE,
            onnx_file,
        )
        if from_cache:  # a stale or corrupt cache entry: let the next start convert afresh
            with contextlib.suppress(OSError):
                onnx_file.unlink(missing_ok=True)
        return None
    logger.info("ONNX backend matches TensorFlow (max score difference %.3g)", difference)
    return candidate
