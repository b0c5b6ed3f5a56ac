"""The ONNX Runtime backend: exact parity with TensorFlow, the cache, and the refusal path."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from bench.harness.server_process import ServerProcess
from keras_export.keras_model import TensorFlowBackend, select_backend
from keras_export.onnx_conversion import cache_path, cached_onnx_file
from keras_export.parity import (
    PARITY_TOLERANCE,
    max_score_difference,
    parity_batches,
)
from model_server.logo_detection.decoding import image_to_model_input
from model_server.logo_detection.inference.onnx_backend import OnnxRuntimeBackend

from .conftest import instance, post_predict
from .reference_model import reference_model

pytestmark = pytest.mark.slow  # TensorFlow, exports, conversions


@pytest.fixture(scope="module")
def onnx_cache(tmp_path_factory) -> tuple[Path, list[tuple[Path, bool, int]]]:
    """Convert into an empty cache, then load again: [(file, from_cache, mtime)] for both."""
    cache = tmp_path_factory.mktemp("onnx-cache")
    loaded = reference_model()
    loads = []
    for _ in range(2):
        path, from_cache = cached_onnx_file(loaded.keras_model, loaded.path, cache)
        loads.append((path, from_cache, path.stat().st_mtime_ns))
    return cache, loads


def test_conversion_is_cached_by_model_hash(onnx_cache):
    cache, [(first, first_hit, first_mtime), (second, second_hit, second_mtime)] = onnx_cache
    assert (first_hit, second_hit) == (False, True)
    assert first == second == cache_path(cache, reference_model().path)
    assert first_mtime == second_mtime  # not converted again
    assert [p.name for p in cache.iterdir()] == [first.name]  # no partial files left behind


def test_onnx_matches_tensorflow_on_the_real_model(onnx_cache, samples):
    _, [(onnx_file, _, _), _] = onnx_cache
    reference = TensorFlowBackend(reference_model().keras_model)
    candidate = OnnxRuntimeBackend(onnx_file, threads=2)
    decoded = np.stack([image_to_model_input(data) for data in samples.values()])
    corpus = [*parity_batches(), decoded[:1], decoded]
    assert max_score_difference(candidate, reference, corpus) <= PARITY_TOLERANCE
    scores = candidate.predict(decoded)
    assert scores.shape == (3, 2) and np.allclose(scores.sum(axis=1), 1, atol=1e-5)


def test_explicit_onnx_choice_selects_the_verified_backend(onnx_cache):
    cache, _ = onnx_cache
    loaded = reference_model()
    backend = select_backend("onnx", loaded.keras_model, loaded.path, cache, threads=2)
    assert backend.name == "onnx"
    tensorflow = select_backend("tensorflow", loaded.keras_model, loaded.path, cache, threads=2)
    assert tensorflow.name == "tensorflow"


def tampered_copy(onnx_file: Path, destination: Path) -> None:
    """The real graph with its classifier weights changed: loads and runs, scores differ."""
    model = onnx.load(str(onnx_file))
    [head] = [w for w in model.graph.initializer if len(w.dims) == 2 and w.dims[-1] == 2]
    weights = numpy_helper.to_array(head)
    head.CopyFrom(numpy_helper.from_array(weights * 2 + 0.05, head.name))
    onnx.save(model, str(destination))


async def test_server_refuses_a_differing_onnx_model_and_serves_with_tensorflow(
    onnx_cache, tmp_path, http, samples
):
    _, [(onnx_file, _, _), _] = onnx_cache
    slot = cache_path(tmp_path, reference_model().path)
    tampered_copy(onnx_file, slot)
    keras_file = reference_model().path
    with ServerProcess(keras_file, onnx_cache_dir=tmp_path, inference_backend="onnx") as server:
        body = {"instances": [instance("logo.png", data=samples["Cambia_logo.png"])]}
        status, answer = await post_predict(http, server, body)
        log = server.log()
    assert status == 200, answer
    assert 0 <= answer["predictions"][0]["prediction"] <= 1
    assert "ONNX backend refused, serving with TensorFlow" in log, log
    assert "backend tensorflow" in log
    assert not slot.exists()  # the bad cache entry is gone; the next start converts afresh
