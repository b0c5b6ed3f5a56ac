"""In-process measurements: the floor (decode + forward pass, nothing else), the naive baseline,
and score parity of the serving backend against the TensorFlow reference."""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np

from keras_export.parity import parity_batches
from model_server.logo_detection.decoding import image_to_model_input
from model_server.logo_detection.inference.backend import InferenceBackend

from .naive import naive_predict


def median_s(call: Callable[[], object], repeats: int, warm_ups: int = 1) -> float:
    for _ in range(warm_ups):
        call()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    return float(np.median(times))


def decode_and_predict(backend: InferenceBackend, images: list[bytes]) -> np.ndarray:
    """The floor: what any server must do at least, decode each image then one forward pass."""
    return backend.predict(np.stack([image_to_model_input(data) for data in images]))


def floor_s(
    backend: InferenceBackend, images: list[bytes], repeats: int, warm_ups: int = 1
) -> float:
    return median_s(lambda: decode_and_predict(backend, images), repeats, warm_ups)


def naive_s(keras_model, images: list[bytes], repeats: int, warm_ups: int = 1) -> float:
    return median_s(lambda: naive_predict(keras_model, images), repeats, warm_ups)


def forward_s(backend: InferenceBackend, batch_size: int, repeats: int) -> float:
    images = parity_batches()[1]
    batch = images[np.arange(batch_size) % len(images)]
    return median_s(lambda: backend.predict(batch), repeats)


def parity(
    backend: InferenceBackend, reference: InferenceBackend, images: list[bytes]
) -> tuple[float, int]:
    """Max |score difference| vs the reference over the parity inputs and the bench images."""
    decoded = np.stack([image_to_model_input(data) for data in images])
    batches = [*parity_batches(), decoded[:1], decoded]
    worst = max(
        float(np.max(np.abs(backend.predict(batch) - reference.predict(batch))))
        for batch in batches
    )
    return worst, sum(len(batch) for batch in batches)
