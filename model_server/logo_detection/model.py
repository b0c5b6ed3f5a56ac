"""The KServe model: request -> per image: fetch, decode, shared forward pass -> results.

Each instance runs its own small pipeline, all concurrently: fetch if a URL, decode in the
decode thread pool, then join the micro-batcher's next forward pass, so a request's first images
are scored while its others still decode. A failing instance becomes an error result in its
slot; it never fails the request. The event loop only coordinates: decoding and inference run on
threads.

The model follows KServe's lifecycle: `__init__` only holds the settings; `load()` finds the model
file, loads its backend, warms it up and starts the micro-batcher, and only then is the model
ready (KServe registers only a ready model). `healthy()`, which KServe's readiness routes ask, is
true while the model is loaded, not stopped, and its batcher would score a request; `stop()`
makes it false at once and closes what `load()` and requests opened.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import numpy as np
from kserve import Model

from . import metrics
from .admission import ImageAdmission
from .backend_loader import load_backend
from .contract import (
    Instance,
    PredictRequest,
    error_result,
    parse_request,
    predict_response,
    scored_result,
)
from .decoding import DecodeLimits, SvgLimits, image_to_model_input, warm_up_decoding
from .errors import ErrorType, ImageError
from .fetch import ImageFetcher
from .inference.backend import InferenceBackend, warm_up
from .inference.batching import BatchResult, MicroBatcher
from .model_contract import ModelFile, describe_model
from .settings import Settings

logger = logging.getLogger(__name__)


def decode_limits(settings: Settings) -> DecodeLimits:
    """The decoding bounds the server's settings ask for (decoding itself reads no settings)."""
    return DecodeLimits(
        max_pixels=settings.max_image_pixels,
        svg=SvgLimits(
            max_bytes=settings.max_svg_bytes,
            max_elements=settings.max_svg_elements,
            render_size=settings.svg_render_size,
            timeout_s=settings.svg_render_timeout_s,
        ),
    )


TARGET_CLASS = "logo"


@dataclass
class _InstanceOutcome:
    scored: BatchResult | None = None
    error: ImageError | None = None
    fetch_ms: float = 0.0
    decode_ms: float = 0.0


@dataclass
class _Timer:
    started: float = field(default_factory=time.perf_counter)

    def elapsed_ms(self) -> float:
        return (time.perf_counter() - self.started) * 1000


BackendLoader = Callable[[ModelFile], InferenceBackend]


class LogoDetectionModel(Model):
    ready: bool  # KServe's Model sets it; readiness as KServe reports it

    def __init__(
        self, settings: Settings, threads: int, backend_loader: BackendLoader | None = None
    ) -> None:
        """Nothing is loaded here: `load()` does it. `threads` sizes the decode pool and the
        backend's runtime; `backend_loader` turns the model file into a backend (by default
        ONNX Runtime for an exported model, `backend_loader.load_backend`)."""
        super().__init__(settings.model_name)
        self.settings = settings
        self.model_file: ModelFile | None = None
        self.batcher: MicroBatcher | None = None
        self._backend_loader = backend_loader or partial(
            _settings_backend, settings=settings, threads=threads
        )
        self.fetcher = ImageFetcher(settings)
        self.admission = ImageAdmission(settings.max_images_in_flight, settings.max_queue_wait_s)
        self.decode_limits = decode_limits(settings)
        self._decode_threads = threads
        self._decode_pool = ThreadPoolExecutor(threads, thread_name_prefix="decode")
        self._stopped = False
        # The event loop keeps only weak references to tasks: one nobody holds can be garbage
        # collected before it finishes. Ours are held here until done.
        self._background_tasks: set[asyncio.Task[None]] = set()

    def load(self) -> bool:
        """Find the model file, load and warm up its backend, start the micro-batcher: then the
        model is ready. Raises ModelFileError (the message says what to do) for a model that
        can't be served. Loads once: KServe calls `load()` again on a model that reports itself
        unready, which must not load a second backend, nor bring back a stopped model."""
        if self.batcher is not None or self._stopped:
            return self.ready
        model_file = describe_model(self.settings.model_path, self.settings.class_names)
        backend = self._backend_loader(model_file)
        warm_up(backend, self.settings.max_batch_size)
        warm_up_decoding()
        self.model_file = model_file
        self.batcher = MicroBatcher(
            backend, self.settings.max_batch_size, self.settings.batch_max_wait_ms / 1000
        )
        metrics.track_gauges(lambda: self.admission.in_flight, self.batcher.queued_images)
        metrics.record_model_info(self.settings.model_name, model_file, backend.name)
        self.ready = True
        return self.ready

    def start(self) -> None:
        """KServe calls this once the model is registered. The base class would mark the model
        ready; here only `load()` does."""

    async def healthy(self) -> bool:
        """Readiness, as KServe's `/v1/models/<name>` and `/v2/health/ready` report it: loaded,
        not stopped, and the micro-batcher would score a request now."""
        return self.ready and self.batcher is not None and self.batcher.healthy()

    async def predict(
        self, payload: dict[str, Any] | bytes | str, headers: dict[str, str] | None = None
    ) -> dict[str, Any]:
        timer = _Timer()
        request = parse_request(payload, self.settings.max_instances, (TARGET_CLASS,))
        # A request keeps at most one decode per thread in the (first-come) pool, so the images
        # of a request that arrives during a 50-image one are decoded next, not after all 50.
        decode_turns = asyncio.Semaphore(self._decode_threads)
        admission_timer = _Timer()
        async with self.admission.admit(len(request.instances)):
            metrics.ADMISSION_WAIT_SECONDS.observe(admission_timer.elapsed_ms() / 1000)
            metrics.IMAGES_PER_REQUEST.observe(len(request.instances))
            outcomes = await asyncio.gather(
                *(
                    self._score(index, instance, decode_turns)
                    for index, instance in enumerate(request.instances)
                )
            )
        response = self._response(request, outcomes, timer)
        metrics.PREDICT_SECONDS.observe(timer.elapsed_ms() / 1000)
        return response

    async def _score(
        self, index: int, instance: Instance, decode_turns: asyncio.Semaphore
    ) -> _InstanceOutcome:
        """Fetch, decode, then queue for a forward pass as soon as this image is ready: a
        request's first images are in the model while its other images still decode."""
        outcome = _InstanceOutcome()
        try:
            data = await self._image_bytes(instance, outcome)
            async with decode_turns:
                decode_timer = _Timer()
                # The copied context carries the request id into the decode thread's log lines.
                decode = partial(
                    contextvars.copy_context().run, image_to_model_input, data, self.decode_limits
                )
                model_input = await asyncio.get_running_loop().run_in_executor(
                    self._decode_pool, decode
                )
                outcome.decode_ms = decode_timer.elapsed_ms()
            metrics.DECODE_SECONDS.observe(outcome.decode_ms / 1000)
            assert self.batcher is not None, "load() starts it before the model is ready"
            outcome.scored = await self.batcher.predict(model_input[np.newaxis])
        except ImageError as error:
            outcome.error = error
        except Exception:  # a bug must not take down the other instances
            logger.exception("instances[%d]: unexpected failure", index)
            outcome.error = ImageError(ErrorType.INTERNAL, "internal error; see server logs")
        self._record(index, instance, outcome.error)
        return outcome

    @staticmethod
    def _record(index: int, instance: Instance, error: ImageError | None) -> None:
        """Count the image's outcome; log a failure by index and type (never its bytes)."""
        kind = metrics.input_kind(instance.image_bytes)
        metrics.count_image(kind, None if error is None else error.error_type)
        if error is not None:
            logger.info(
                "instances[%d] (%s): %s: %.300r", index, kind, error.error_type, error.message
            )

    async def _image_bytes(self, instance: Instance, outcome: _InstanceOutcome) -> bytes:
        if instance.image_bytes is None:
            fetch_timer = _Timer()
            assert instance.url is not None  # an instance has exactly one of url and image
            data = await self.fetcher.fetch(instance.url)
            outcome.fetch_ms = fetch_timer.elapsed_ms()
            metrics.FETCH_SECONDS.observe(outcome.fetch_ms / 1000)
            metrics.FETCHED_BYTES.inc(len(data))
            return data
        if len(instance.image_bytes) > self.settings.max_image_bytes:
            raise ImageError(
                ErrorType.TOO_LARGE,
                f"the image is larger than {self.settings.max_image_bytes} bytes",
            )
        return instance.image_bytes

    def _response(
        self, request: PredictRequest, outcomes: list[_InstanceOutcome], timer: _Timer
    ) -> dict[str, Any]:
        assert self.model_file is not None, "load() reads it before the model is ready"
        class_names = self.model_file.class_names
        results = []
        for instance, outcome in zip(request.instances, outcomes, strict=True):
            if outcome.error is not None:
                results.append(error_result(instance, outcome.error))
                continue
            assert outcome.scored is not None  # no error: scored
            scores = dict(zip(class_names, outcome.scored.scores[0], strict=True))
            results.append(scored_result(instance, scores, TARGET_CLASS))
        response = predict_response(results, self.model_file.version)
        if request.debug:
            scored = BatchResult.combine([o.scored for o in outcomes if o.scored is not None])
            response["latency"] = {
                "fetch_ms": round(max((o.fetch_ms for o in outcomes), default=0.0), 2),
                "decode_ms": round(max((o.decode_ms for o in outcomes), default=0.0), 2),
                "inference_ms": round(scored.inference_ms, 2),
                "batch_size": scored.batch_size,
                "passes": len(scored.passes),
                "total_ms": round(timer.elapsed_ms(), 2),
            }
        return response

    def stop(self) -> None:
        """Called by KServe at shutdown: unready at once, then close the HTTP session, the
        micro-batcher and the worker threads."""
        super().stop()
        self._stopped = True
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        if loop is not None:
            task = loop.create_task(self._close(), name="close-model")
            self._background_tasks.add(task)
            task.add_done_callback(self._background_task_done)
        self._decode_pool.shutdown(wait=False, cancel_futures=True)

    async def wait_closed(self) -> None:
        """Wait until what `stop()` started closing is closed."""
        await asyncio.gather(*self._background_tasks)

    def _background_task_done(self, task: asyncio.Task[None]) -> None:
        """Drop our reference; log the failure nobody awaits the task to see."""
        self._background_tasks.discard(task)
        if not task.cancelled() and (error := task.exception()) is not None:
            logger.error("Background task %s failed", task.get_name(), exc_info=error)

    async def _close(self) -> None:
        await self.fetcher.close()
        if self.batcher is not None:
            await self.batcher.close()


def _settings_backend(model_file: ModelFile, settings: Settings, threads: int) -> InferenceBackend:
    """The backend the settings ask for (INFERENCE_BACKEND, ONNX_CACHE_DIR)."""
    return load_backend(model_file, settings.inference_backend, settings.onnx_cache_dir, threads)
