"""Prometheus metrics of the request path, on KServe's `/metrics` (docs/monitoring.md#metrics).

Everything lives in prometheus_client's default registry, the one KServe's `/metrics` route
serves. Label values come from fixed sets only (input kinds, outcomes, HTTP statuses), never
from a request's filenames or URLs, so the number of series is bounded. The series alerts use
exist from start-up with 0, so rates and alerts work before the first error.
"""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import Counter, Gauge, Histogram, Info
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .errors import ErrorType
from .model_contract import ModelFile

PREFIX = "logo_detection"
SCORED = "scored"
INPUT_KINDS = ("url", "image")
# A full server refuses whole requests (503), never one image: `overloaded` is not an outcome.
OUTCOMES = (SCORED, *(kind.value for kind in ErrorType if kind is not ErrorType.OVERLOADED))
REFUSED_STATUSES = ("400", "413", "500", "503")

# From a 2 ms decode or forward pass to a 30 s queue wait or slow fetch.
SECONDS_BUCKETS = (0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 30)
BATCH_SIZE_BUCKETS = (1, 2, 3, 4, 5, 6, 7, 8, 12, 16, 24, 32, 64)
IMAGES_PER_REQUEST_BUCKETS = (1, 2, 3, 5, 10, 20, 30, 40, 50, 100)

IMAGES = Counter(
    f"{PREFIX}_images",
    "Images answered, by input kind (url, image) and outcome (scored or the error type)",
    ["input", "outcome"],
)
REQUESTS_REFUSED = Counter(
    f"{PREFIX}_requests_refused",
    "Predict requests answered with an error status as a whole (400, 413, 503, ...)",
    ["status"],
)
IMAGES_PER_REQUEST = Histogram(
    f"{PREFIX}_request_images",
    "Instances per accepted predict request",
    buckets=IMAGES_PER_REQUEST_BUCKETS,
)
FETCHED_BYTES = Counter(f"{PREFIX}_fetched_bytes", "Bytes of images fetched from URLs")

ADMISSION_WAIT_SECONDS = Histogram(
    f"{PREFIX}_admission_wait_seconds",
    "Wait of an admitted request for room under MAX_IMAGES_IN_FLIGHT",
    buckets=SECONDS_BUCKETS,
)
FETCH_SECONDS = Histogram(
    f"{PREFIX}_fetch_seconds",
    "Successful fetch of one URL image, redirects included",
    buckets=SECONDS_BUCKETS,
)
DECODE_SECONDS = Histogram(
    f"{PREFIX}_decode_seconds",
    "Successful decode of one image into the model's input",
    buckets=SECONDS_BUCKETS,
)
BATCH_WAIT_SECONDS = Histogram(
    f"{PREFIX}_batch_wait_seconds",
    "Wait of one decoded image for the forward pass it joins",
    buckets=SECONDS_BUCKETS,
)
FORWARD_PASS_SECONDS = Histogram(
    f"{PREFIX}_forward_pass_seconds",
    "One forward pass of the model, whatever its batch size",
    buckets=SECONDS_BUCKETS,
)
FORWARD_PASS_IMAGES = Histogram(
    f"{PREFIX}_forward_pass_images",
    "Images in one forward pass, all requests together",
    buckets=BATCH_SIZE_BUCKETS,
)
PREDICT_SECONDS = Histogram(
    f"{PREFIX}_predict_seconds",
    "Whole predict of an accepted request: admission, fetches, decodes and passes",
    buckets=SECONDS_BUCKETS,
)

IMAGES_IN_FLIGHT = Gauge(
    f"{PREFIX}_images_in_flight", "Images admitted and not yet answered (MAX_IMAGES_IN_FLIGHT)"
)
IMAGES_WAITING_FOR_PASS = Gauge(
    f"{PREFIX}_images_waiting_for_pass", "Decoded images queued for the next forward pass"
)
MODEL = Info(f"{PREFIX}_model", "The model being served")

# Created up front, so every series exists with 0, and held, so counting is one dict lookup.
_IMAGE_COUNTERS = {
    (kind, outcome): IMAGES.labels(kind, outcome) for kind in INPUT_KINDS for outcome in OUTCOMES
}
for _status in REFUSED_STATUSES:
    REQUESTS_REFUSED.labels(_status)


def input_kind(image_bytes: bytes | None) -> str:
    return "url" if image_bytes is None else "image"


def count_image(kind: str, error_type: ErrorType | None) -> None:
    outcome = SCORED if error_type is None else error_type.value
    counter = _IMAGE_COUNTERS.get((kind, outcome)) or IMAGES.labels(kind, outcome)
    counter.inc()


def track_gauges(images_in_flight: Callable[[], float], waiting: Callable[[], float]) -> None:
    """The gauges read the server's own counts when scraped: nothing to update per image."""
    IMAGES_IN_FLIGHT.set_function(images_in_flight)
    IMAGES_WAITING_FOR_PASS.set_function(waiting)


def record_model_info(model_name: str, model: ModelFile, backend: str) -> None:
    MODEL.info(
        {
            "model_name": model_name,
            "model_version": model.version,  # as every predict answer names it
            "file": model.path.name,
            "sha256": model.sha256,
            "backend": backend,
            "class_names": ",".join(model.class_names),
        }
    )


class RefusedRequestCounter:
    """ASGI middleware: counts POSTs (predict) answered with 4xx/5xx as a whole, by status,
    whichever layer answered (the body limit's 413, KServe's 400, the admission's 503)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return

        async def counting_send(message: Message) -> None:
            if message["type"] == "http.response.start" and message["status"] >= 400:
                REQUESTS_REFUSED.labels(str(message["status"])).inc()
            await send(message)

        await self.app(scope, receive, counting_send)
