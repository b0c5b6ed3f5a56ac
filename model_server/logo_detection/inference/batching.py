"""Cross-request micro-batching: concurrent requests share forward passes.

One worker task owns the model. It takes the jobs waiting in the queue, in arrival order, up to
`max_batch_size` images, runs one forward pass in a single dedicated thread, and routes each
job's slice of the scores back. The predictor queues each image as soon as it is decoded, so a
request's first images are in the model while its others still decode, and images of different
requests share passes. When the model is idle a lone image runs at once; while a pass runs,
newcomers queue and share the next one, so batching costs nothing at low load and raises
throughput under load. `max_wait_s` > 0 makes the worker linger for stragglers before a pass
that is not yet full, until they fill it or `max_wait_s` has passed.

A job with more images than `max_batch_size` is cut into even consecutive chunks: a pass never
exceeds the cap, which bounds the activation memory (on CPU, per-image cost is nearly flat
beyond a few images, so bigger passes would buy little).

The worker is supervised, so no request ever waits on a worker that is gone. A backend that
raises fails the requests of that pass only, and the worker goes on. Anything else that ends the
worker (a backend that answers with another number of scores than it was given images, which
the worker cannot route, or a bug) is caught by the supervisor when the task ends: it logs the
traceback, fails every job the worker held or that was queued with `WorkerDied` (the model
answers `internal_error` for those images), and starts a fresh worker at once for the jobs that
come next. `healthy()` is false from the worker's end until its replacement runs, and after
`close()`.
"""

from __future__ import annotations

import asyncio
import collections
import contextvars
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from .. import metrics
from .backend import InferenceBackend

logger = logging.getLogger(__name__)


@dataclass(frozen=True, eq=False)
class ForwardPass:
    """One run of the model; every job it served shares this object."""

    inference_ms: float
    batch_size: int  # images in the pass, all requests together


@dataclass
class BatchResult:
    scores: np.ndarray  # (n, num_classes) for these images
    passes: tuple[ForwardPass, ...]  # the forward pass(es) they rode in

    @property
    def inference_ms(self) -> float:
        return sum(forward_pass.inference_ms for forward_pass in self.passes)

    @property
    def batch_size(self) -> int:
        """Images in the largest of those passes."""
        return max((forward_pass.batch_size for forward_pass in self.passes), default=0)

    @classmethod
    def combine(cls, results: list[BatchResult]) -> BatchResult:
        """Scores in order; each pass counted once even if several of the results rode in it."""
        scores = [result.scores for result in results]
        passes = dict.fromkeys(p for result in results for p in result.passes)  # by identity
        return cls(
            np.concatenate(scores) if scores else np.zeros((0, 2), np.float32), tuple(passes)
        )


class WorkerDied(RuntimeError):
    """The batcher's worker ended while this job was held or queued; it was not scored."""


class BatcherClosed(RuntimeError):
    """The batcher was closed (the server is stopping): it scores nothing more."""


@dataclass
class _Job:
    images: np.ndarray
    future: asyncio.Future[BatchResult] = field(repr=False)
    queued_at: float = field(default_factory=time.perf_counter)


class MicroBatcher:
    def __init__(
        self, backend: InferenceBackend, max_batch_size: int = 8, max_wait_s: float = 0.0
    ) -> None:
        self.backend = backend
        self.max_batch_size = max_batch_size
        self.max_wait_s = max_wait_s
        self.restarts = 0  # workers the supervisor replaced (each one logged with its traceback)
        self._pending: collections.deque[_Job] = collections.deque()
        self._held: list[_Job] = []  # taken from the queue by the worker, not yet delivered
        self._wakeup: asyncio.Event | None = None
        self._worker: asyncio.Task[None] | None = None
        self._closed = False
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="inference")

    @property
    def _wake(self) -> asyncio.Event:
        """The worker's wake-up event, made with the worker (in the running loop)."""
        assert self._wakeup is not None, "made by _ensure_worker"
        return self._wakeup

    async def predict(self, images: np.ndarray) -> BatchResult:
        """Scores for these images (the predictor sends one at a time), computed in forward
        passes shared with whatever else is queued."""
        if self._closed:
            raise BatcherClosed("the micro-batcher is closed")
        if len(images) == 0:
            return BatchResult.combine([])
        self._ensure_worker()
        loop = asyncio.get_running_loop()
        chunks = np.array_split(images, -(-len(images) // self.max_batch_size))
        jobs = [_Job(chunk, loop.create_future()) for chunk in chunks]
        self._pending.extend(jobs)
        self._wake.set()
        try:
            results = await asyncio.gather(*(job.future for job in jobs))
        finally:
            for job in jobs:  # the client went away or a chunk failed: drop the rest unrun
                job.future.cancel()
        return results[0] if len(results) == 1 else BatchResult.combine(results)

    def healthy(self) -> bool:
        """Whether a request given now would be scored: not closed, and a worker is running (or
        none has been needed yet: it starts with the first request)."""
        return not self._closed and (self._worker is None or not self._worker.done())

    async def close(self) -> None:
        self._closed = True
        if self._worker is not None:
            self._worker.cancel()
            await asyncio.gather(self._worker, return_exceptions=True)
            self._worker = None
        self._executor.shutdown(wait=True)

    def _ensure_worker(self) -> None:
        if self._worker is None or self._worker.done():
            self._start_worker()

    def _start_worker(self) -> None:
        if self._wakeup is None:
            self._wakeup = asyncio.Event()
        # A fresh context: the worker serves every request, not the one that started it.
        self._worker = asyncio.create_task(
            self._run(), name="micro-batcher", context=contextvars.Context()
        )
        self._worker.add_done_callback(self._worker_ended)

    def _worker_ended(self, worker: asyncio.Task[None]) -> None:
        """The supervisor: a worker only ends by `close()` (cancelled). Any other end fails the
        jobs it held and those queued, which no worker would otherwise answer, then starts a
        fresh worker for the jobs to come."""
        if worker.cancelled() or worker is not self._worker:
            return
        error = worker.exception() or RuntimeError("the worker returned")
        orphans = [*self._held, *self._pending]
        self._held = []
        self._pending.clear()
        logger.error(
            "The micro-batcher's worker died; failing the %d image(s) it held or queued",
            sum(len(job.images) for job in orphans),
            exc_info=error,
        )
        for job in orphans:
            if not job.future.done():
                died = WorkerDied(f"the micro-batcher's worker died: {error!r}")
                died.__cause__ = error
                job.future.set_exception(died)
        self.restarts += 1
        if not self._closed:
            self._start_worker()

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._pending:
                if self.max_wait_s > 0:
                    await self._linger(loop.time() + self.max_wait_s)
                jobs = self._take_batch()
                if not jobs:
                    continue
                started = time.perf_counter()
                for job in jobs:
                    metrics.BATCH_WAIT_SECONDS.observe(started - job.queued_at)
                try:
                    batch = np.concatenate([job.images for job in jobs])
                    scores = await loop.run_in_executor(self._executor, self.backend.predict, batch)
                except Exception as error:  # a failed pass fails its requests, not the worker
                    logger.exception("Forward pass over %d request(s) failed", len(jobs))
                    for job in jobs:
                        if not job.future.done():
                            job.future.set_exception(error)
                    self._held = []
                    continue
                inference_ms = (time.perf_counter() - started) * 1000
                metrics.FORWARD_PASS_SECONDS.observe(inference_ms / 1000)
                metrics.FORWARD_PASS_IMAGES.observe(len(scores))
                self._deliver(jobs, scores, inference_ms)
                self._held = []

    async def _linger(self, deadline: float) -> None:
        """Wait for stragglers until the queued images fill a pass or the deadline passes;
        every `predict` sets the wakeup event, so each arrival is counted at once."""
        loop = asyncio.get_running_loop()
        while self.queued_images() < self.max_batch_size and loop.time() < deadline:
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), deadline - loop.time())
            except TimeoutError:
                return

    def queued_images(self) -> int:
        """Images waiting for a forward pass (the pass running now not included)."""
        return sum(len(job.images) for job in self._pending)

    def _take_batch(self) -> list[_Job]:
        """Whole jobs in arrival order, up to the cap, held until delivered (so the supervisor
        can fail them if the worker dies). Jobs whose client has gone away (cancelled) are
        dropped rather than computed."""
        jobs: list[_Job] = []
        self._held = jobs
        size = 0
        while self._pending:
            job = self._pending[0]
            if job.future.done():
                self._pending.popleft()
                continue
            if jobs and size + len(job.images) > self.max_batch_size:
                break
            jobs.append(self._pending.popleft())
            size += len(job.images)
        return jobs

    def _deliver(self, jobs: list[_Job], scores: np.ndarray, inference_ms: float) -> None:
        """Each job's slice of the pass's scores. Scores that do not match the images one to one
        cannot be routed: that ends the worker (see the module's docstring)."""
        images = sum(len(job.images) for job in jobs)
        if len(scores) != images:
            raise ValueError(
                f"the {self.backend.name} backend returned {len(scores)} scores for {images} images"
            )
        forward_pass = ForwardPass(inference_ms, len(scores))
        offset = 0
        for job in jobs:
            count = len(job.images)
            if not job.future.done():  # the client may have gone away
                job.future.set_result(BatchResult(scores[offset : offset + count], (forward_pass,)))
            offset += count
