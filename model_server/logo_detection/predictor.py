"""The KServe model: request -> fetch/decode each image -> one shared forward pass -> results.

Each instance runs its own small pipeline (fetch if a URL, then decode in the decode thread
pool), all concurrently; the decoded images of the request then go through one forward pass
via the micro-batcher. A failing instance becomes an error result in its slot; it never fails
the request. The event loop only coordinates: decoding and inference run on threads.
"""

from __future__ import annotations

import asyncio
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial

import numpy as np
from kserve import Model

from .admission import ImageAdmission
from .batching import MicroBatcher
from .contract import Instance, PredictRequest, error_result, parse_request, scored_result
from .errors import ErrorType, ImageError
from .fetch import ImageFetcher
from .model_file import LoadedModel
from .preprocess import DecodeLimits, image_to_model_input
from .settings import Settings

logger = logging.getLogger(__name__)

TARGET_CLASS = "logo"


@dataclass
class _InstanceOutcome:
    model_input: np.ndarray | None = None
    error: ImageError | None = None
    fetch_ms: float = 0.0
    decode_ms: float = 0.0


@dataclass
class _Timer:
    started: float = field(default_factory=time.perf_counter)

    def elapsed_ms(self) -> float:
        return (time.perf_counter() - self.started) * 1000


class LogoDetectionModel(Model):
    def __init__(
        self,
        settings: Settings,
        loaded: LoadedModel,
        batcher: MicroBatcher,
        decode_threads: int,
    ) -> None:
        super().__init__(settings.model_name)
        self.settings = settings
        self.loaded = loaded
        self.batcher = batcher
        self.fetcher = ImageFetcher(settings)
        self.admission = ImageAdmission(settings.max_images_in_flight, settings.max_queue_wait_s)
        self.decode_limits = DecodeLimits.from_settings(settings)
        self._decode_pool = ThreadPoolExecutor(decode_threads, thread_name_prefix="decode")
        self.ready = True

    async def predict(self, payload, headers: dict[str, str] | None = None) -> dict:
        timer = _Timer()
        request = parse_request(payload, self.settings.max_instances, (TARGET_CLASS,))
        async with self.admission.admit(len(request.instances)):
            outcomes = await asyncio.gather(
                *(self._prepare(instance) for instance in request.instances)
            )
            decoded = [outcome.model_input for outcome in outcomes if outcome.error is None]
            batch = await self.batcher.predict(np.stack(decoded) if decoded else np.zeros(0))
        return self._response(request, outcomes, batch, timer)

    async def _prepare(self, instance: Instance) -> _InstanceOutcome:
        outcome = _InstanceOutcome()
        try:
            data = instance.image_bytes
            if data is None:
                fetch_timer = _Timer()
                data = await self.fetcher.fetch(instance.url)
                outcome.fetch_ms = fetch_timer.elapsed_ms()
            elif len(data) > self.settings.max_image_bytes:
                raise ImageError(
                    ErrorType.TOO_LARGE,
                    f"the image is larger than {self.settings.max_image_bytes} bytes",
                )
            decode_timer = _Timer()
            outcome.model_input = await asyncio.get_running_loop().run_in_executor(
                self._decode_pool, partial(image_to_model_input, data, self.decode_limits)
            )
            outcome.decode_ms = decode_timer.elapsed_ms()
        except ImageError as error:
            outcome.error = error
        except Exception:  # a bug must not take down the other instances
            logger.exception("Unexpected failure preparing %r", instance.filename)
            outcome.error = ImageError(ErrorType.INTERNAL, "internal error; see server logs")
        return outcome

    def _response(self, request: PredictRequest, outcomes, batch, timer: _Timer) -> dict:
        class_names = self.loaded.class_names
        score_rows = iter(batch.scores)
        results = []
        for instance, outcome in zip(request.instances, outcomes, strict=True):
            if outcome.error is not None:
                results.append(error_result(instance, outcome.error))
                continue
            scores = dict(zip(class_names, next(score_rows), strict=True))
            results.append(scored_result(instance, scores, TARGET_CLASS))
        response: dict = {"predictions": results}
        if request.debug:
            response["latency"] = {
                "fetch_ms": round(max((o.fetch_ms for o in outcomes), default=0.0), 2),
                "decode_ms": round(max((o.decode_ms for o in outcomes), default=0.0), 2),
                "inference_ms": round(batch.inference_ms, 2),
                "batch_size": batch.batch_size,
                "total_ms": round(timer.elapsed_ms(), 2),
            }
        return response

    def stop(self) -> None:
        """Called by KServe at shutdown: close the HTTP session and worker threads."""
        super().stop()
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        if loop is not None:
            loop.create_task(self._close())
        self._decode_pool.shutdown(wait=False, cancel_futures=True)

    async def _close(self) -> None:
        await self.fetcher.close()
        await self.batcher.close()
