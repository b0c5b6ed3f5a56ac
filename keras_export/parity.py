"""TensorFlow against a candidate backend: fixed inputs, the largest score difference, and
which backend is faster. Used by the export's parity check and by serving a `.keras` file."""

from __future__ import annotations

import logging
import time

import numpy as np

from model_server.logo_detection.inference.backend import InferenceBackend
from model_server.logo_detection.model_contract import INPUT_SIZE

logger = logging.getLogger(__name__)

PARITY_TOLERANCE = 1e-5


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
