"""Cross-request micro-batching: shared forward passes, routing, and failure isolation."""

from __future__ import annotations

import asyncio
import json
import time

import numpy as np
import pytest
from PIL import Image

from model_server.logo_detection.batching import MicroBatcher
from model_server.logo_detection.inference import parity_batches
from model_server.logo_detection.tf.keras_model import TensorFlowBackend

from .conftest import instance, post_predict
from .image_corpus import encode, photo_like
from .reference_model import reference_model
from .test_predict_api import png_bytes


@pytest.fixture(scope="module")
def backend() -> TensorFlowBackend:
    return TensorFlowBackend(reference_model().keras_model)


def distinct_images(count: int, seed: int) -> np.ndarray:
    """Images different enough that their scores differ by far more than the tolerance."""
    rng = np.random.default_rng(seed)
    base = parity_batches()[1]
    return np.stack(
        [np.clip(base[i % len(base)] * rng.uniform(0.2, 1.0), 0, 255) for i in range(count)]
    ).astype(np.float32)


async def test_concurrent_requests_share_passes_and_get_their_own_results(http, server):
    async def one(i: int) -> tuple[int, dict]:
        images = [instance(f"r{i}-{j}.png", data=png_bytes((i * 12, j * 90, 40))) for j in range(2)]
        return await post_predict(http, server, {"instances": images, "debug": True})

    answers = await asyncio.gather(*(one(i) for i in range(20)))
    pass_sizes = []
    for i, (status, body) in enumerate(answers):
        assert status == 200, body
        assert [r["filename"] for r in body["predictions"]] == [f"r{i}-0.png", f"r{i}-1.png"]
        assert all("prediction" in r for r in body["predictions"]), body
        pass_sizes.append(body["latency"]["batch_size"])
    # each image joins a pass as soon as it is decoded: passes mix requests, up to the cap of 8
    assert all(1 <= size <= 8 for size in pass_sizes), pass_sizes
    assert max(pass_sizes) > 2, f"20 concurrent requests never shared a pass: {pass_sizes}"
    # each request's scores are its own: the same request alone scores the same (to rounding)
    status, alone = await one(7)
    assert status == 200 and alone["latency"]["batch_size"] <= 2
    for shared, single in zip(answers[7][1]["predictions"], alone["predictions"], strict=True):
        assert shared["filename"] == single["filename"]
        assert shared["prediction"] == pytest.approx(single["prediction"], abs=1.01e-4)


async def test_results_are_routed_to_each_request_in_order(backend):
    batcher = MicroBatcher(backend, max_batch_size=6)
    try:
        jobs = [distinct_images(count, seed) for seed, count in enumerate([1, 3, 2, 4, 1, 9, 2])]
        results = await asyncio.gather(*(batcher.predict(job) for job in jobs))
    finally:
        await batcher.close()
    for job, result in zip(jobs, results, strict=True):
        assert np.abs(result.scores - backend.predict(job)).max() <= 1e-5
        assert result.batch_size <= 6  # the 9-image request was cut into passes of 5 and 4
        assert len(job) <= result.batch_size or len(job) > 6
    assert max(result.batch_size for result in results) > 3  # requests shared passes


async def test_a_failing_pass_fails_only_its_requests(backend):
    batcher = MicroBatcher(backend, max_batch_size=2)
    broken = np.zeros((1, 224, 224, 4), np.float32)  # the model refuses 4 channels
    try:
        first, failed, last = await asyncio.gather(
            batcher.predict(distinct_images(2, 1)),
            batcher.predict(broken),
            batcher.predict(distinct_images(2, 2)),
            return_exceptions=True,
        )
        after = await batcher.predict(distinct_images(1, 3))
    finally:
        await batcher.close()
    assert isinstance(failed, Exception)
    assert first.scores.shape == last.scores.shape == (2, 2)
    assert after.scores.shape == (1, 2)  # the worker survived the failure


async def test_waiting_for_stragglers_joins_them_to_the_pass(backend):
    batcher = MicroBatcher(backend, max_batch_size=8, max_wait_s=0.5)
    try:
        early = asyncio.ensure_future(batcher.predict(distinct_images(1, 4)))
        await asyncio.sleep(0.02)
        late = await batcher.predict(distinct_images(2, 5))
        assert (await early).batch_size == late.batch_size == 3
    finally:
        await batcher.close()


async def test_a_request_arriving_during_a_big_one_does_not_wait_for_all_of_it(http, server):
    """The Upload Wizard's bursts: a 1-image request sent while a 50-image request is being
    decoded gets its decode and forward pass next, instead of queueing behind all 50."""
    photo = encode(Image.fromarray(photo_like(1024, 768, seed=3)), "JPEG", quality=90)
    big = json.dumps({"instances": [instance(f"big-{i}.jpg", data=photo) for i in range(50)]})
    small = json.dumps({"instances": [instance("small.jpg", data=photo)]})

    async def timed(body: str) -> tuple[float, float, dict]:
        started = time.perf_counter()
        status, answer = await post_predict(http, server, body)
        assert status == 200, answer
        return started, time.perf_counter(), answer

    big_call = asyncio.ensure_future(timed(big))
    await asyncio.sleep(0.3)  # the big request is being decoded by now
    small_start, small_end, small_answer = await timed(small)
    big_start, big_end, big_answer = await big_call
    assert len(big_answer["predictions"]) == 50 and "prediction" in small_answer["predictions"][0]
    small_s, big_s = small_end - small_start, big_end - big_start
    assert small_end < big_end
    # measured 0.10 of the big request's time; 0.73 when it waited for the big one's decodes
    assert small_s < 0.5 * big_s, f"small {small_s:.2f} s vs big {big_s:.2f} s"


async def test_decoded_images_go_to_the_model_while_the_rest_of_the_request_decodes(http, server):
    """A small image's forward pass does not wait for a 12 MP photo in the same request."""
    photo = encode(Image.fromarray(photo_like(4000, 3000, seed=4)), "JPEG", quality=90)
    body = {
        "instances": [
            instance("photo.jpg", data=photo),
            instance("icon.png", data=png_bytes((9, 9, 9))),
        ],
        "debug": True,
    }
    status, answer = await post_predict(http, server, body)
    assert status == 200, answer
    assert [r["filename"] for r in answer["predictions"]] == ["photo.jpg", "icon.png"]
    assert all("prediction" in r for r in answer["predictions"]), answer
    assert answer["latency"]["passes"] == 2 and answer["latency"]["batch_size"] == 1, answer
