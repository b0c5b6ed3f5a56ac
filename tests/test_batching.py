"""Cross-request micro-batching: shared forward passes, routing, and failure isolation."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
from PIL import Image

from model_server.logo_detection.inference.batching import (
    BatcherClosed,
    MicroBatcher,
    WorkerDied,
)

from .conftest import instance, post_predict
from .image_corpus import encode, flat_png, photo_like


class MeanColourBackend:
    """A stand-in model for the batcher's own properties (routing, order, isolation): each
    image's score is a function of its own pixels only, so a result routed to the wrong request
    or slot shows. It refuses what the real model refuses: anything but (N, 224, 224, 3)."""

    name = "mean-colour"

    def predict(self, batch: np.ndarray) -> np.ndarray:
        if batch.ndim != 4 or batch.shape[1:] != (224, 224, 3):
            raise ValueError(f"the model takes (N, 224, 224, 3), not {batch.shape}")
        logo = batch.mean(axis=(1, 2, 3)) / 255.0
        return np.stack([1.0 - logo, logo], axis=1).astype(np.float32)


class DropsAScoreOnce(MeanColourBackend):
    """A broken backend: its first pass answers with one score fewer than it was given images,
    which the worker cannot route to its requests; later passes are right."""

    name = "drops-a-score-once"

    def __init__(self) -> None:
        self.passes = 0

    def predict(self, batch: np.ndarray) -> np.ndarray:
        self.passes += 1
        scores = super().predict(batch)
        return scores[:-1] if self.passes == 1 else scores


@pytest.fixture
def backend() -> MeanColourBackend:
    return MeanColourBackend()


def distinct_images(count: int, seed: int) -> np.ndarray:
    """Flat images whose mean colours, hence scores, all differ."""
    levels = np.random.default_rng(seed).permutation(256)[:count].astype(np.float32)
    return np.broadcast_to(levels[:, None, None, None], (count, 224, 224, 3)).copy()


async def test_concurrent_requests_share_passes_and_get_their_own_results(http, server):
    async def one(i: int) -> tuple[int, dict]:
        images = [instance(f"r{i}-{j}.png", data=flat_png((i * 12, j * 90, 40))) for j in range(2)]
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
        assert np.abs(result.scores - backend.predict(job)).max() <= 1e-6
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


async def test_a_worker_that_dies_fails_what_it_held_and_queued_then_is_replaced():
    """The first request's pass gets one score too few and the worker dies: that request and
    the one queued behind it fail with WorkerDied (none waits forever), and a fresh worker
    answers the next request. The wait_for is a guard against a hang, not a timing."""
    backend = DropsAScoreOnce()
    batcher = MicroBatcher(backend, max_batch_size=2)
    try:
        first, queued = await asyncio.wait_for(
            asyncio.gather(
                batcher.predict(distinct_images(2, 6)),  # fills the first pass
                batcher.predict(distinct_images(1, 7)),  # queued behind it
                return_exceptions=True,
            ),
            timeout=600,
        )
        assert isinstance(first, WorkerDied) and isinstance(queued, WorkerDied), (first, queued)
        assert "1 scores for 2 images" in str(first.__cause__)
        assert batcher.restarts == 1 and batcher.healthy()
        images = distinct_images(2, 8)
        after = await asyncio.wait_for(batcher.predict(images), timeout=600)
    finally:
        await batcher.close()
    assert np.abs(after.scores - MeanColourBackend().predict(images)).max() <= 1e-6
    assert backend.passes == 2  # the queued request was failed, not run by the new worker


async def test_a_closed_batcher_is_unhealthy_and_refuses_work(backend):
    batcher = MicroBatcher(backend)
    assert batcher.healthy()  # no worker yet: it starts with the first request
    await batcher.predict(distinct_images(1, 9))
    assert batcher.healthy()
    await batcher.close()
    assert not batcher.healthy()
    with pytest.raises(BatcherClosed):
        await batcher.predict(distinct_images(1, 10))
    assert batcher.restarts == 0  # closing is not a death


async def test_waiting_for_stragglers_joins_them_to_the_pass(backend):
    """With max_wait_s, a pass that is not full waits for stragglers and runs as soon as they
    fill it: the early image, alone in the queue, shares its pass with the late ones."""
    batcher = MicroBatcher(backend, max_batch_size=3, max_wait_s=600)
    try:
        early = asyncio.ensure_future(batcher.predict(distinct_images(1, 4)))
        for _ in range(10):  # event-loop turns: the early job is queued, the worker lingers
            await asyncio.sleep(0)
        assert not early.done()
        late = await batcher.predict(distinct_images(2, 5))  # fills the pass: no 600 s wait
        assert (await early).batch_size == late.batch_size == 3
        assert (await early).passes == late.passes  # the very same forward pass
    finally:
        await batcher.close()


async def test_a_request_arriving_during_a_big_one_is_answered_before_it(
    http, patient_server, image_server
):
    """The Upload Wizard's bursts: a 1-image request sent while a 50-image request is in flight
    is answered while the big one is still being worked on, instead of queueing behind it. The
    big request's last image is held by the image server until the small one has its answer,
    so the big one is provably in flight throughout, whatever the machine's speed."""
    photo = encode(Image.fromarray(photo_like(1024, 768, seed=3)), "JPEG", quality=90)
    held = image_server.add_held_file("batching/held.jpg", photo)
    big_instances = [instance(f"big-{i}.jpg", data=photo) for i in range(49)]
    big_body = {"instances": [*big_instances, instance("big-held.jpg", url=held.url)]}
    big = asyncio.ensure_future(post_predict(http, patient_server, big_body))
    try:
        await held.wait_until_requested(by=big)
        small_body = {"instances": [instance("small.jpg", data=photo)], "debug": True}
        status, small = await post_predict(http, patient_server, small_body)
        assert status == 200, small
        assert not big.done(), "the big request could not have finished: its image is held"
    finally:
        held.release()
    status, answer = await big
    assert status == 200, answer
    assert [r["filename"] for r in answer["predictions"]][-2:] == ["big-48.jpg", "big-held.jpg"]
    scores = [r["prediction"] for r in answer["predictions"]]
    assert len(scores) == 50, answer
    # the same bytes score the same, whichever request and pass they rode in (to rounding)
    assert small["predictions"][0]["prediction"] == pytest.approx(scores[0], abs=1.01e-4)
    assert small["latency"]["passes"] == 1


async def test_decoded_images_go_to_the_model_while_the_rest_of_the_request_decodes(http, server):
    """A small image's forward pass does not wait for a 12 MP photo in the same request."""
    photo = encode(Image.fromarray(photo_like(4000, 3000, seed=4)), "JPEG", quality=90)
    body = {
        "instances": [
            instance("photo.jpg", data=photo),
            instance("icon.png", data=flat_png((9, 9, 9))),
        ],
        "debug": True,
    }
    status, answer = await post_predict(http, server, body)
    assert status == 200, answer
    assert [r["filename"] for r in answer["predictions"]] == ["photo.jpg", "icon.png"]
    assert all("prediction" in r for r in answer["predictions"]), answer
    assert answer["latency"]["passes"] == 2 and answer["latency"]["batch_size"] == 1, answer
