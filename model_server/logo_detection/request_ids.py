"""Request ids: every log line about a request carries its `X-Request-Id`.

The id comes from the caller (KServe's and Istio's proxies set one) or is generated, is echoed
in the response header, and is held in a context variable that a log record factory copies into
each record as `request_id` ("-" outside a request). Each request runs in its own asyncio task,
so the variable is never reset: its value ends with the task, and the lines KServe's outer
timing middleware writes after the response still carry it.
"""

from __future__ import annotations

import contextvars
import logging
import re
import uuid
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

HEADER = b"x-request-id"
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(request_id)s]: %(message)s"
# What proxies send (UUIDs, hex, trace ids); anything else is replaced, so a hostile header can
# neither forge log lines nor make them huge.
_ACCEPTED = re.compile(rb"[A-Za-z0-9._:+=/-]{1,128}")

request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")


def tag_log_records() -> None:
    """Give every log record, from any library, a `request_id` attribute for LOG_FORMAT."""
    make_record = logging.getLogRecordFactory()

    def record_with_request_id(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = make_record(*args, **kwargs)
        record.request_id = request_id.get()
        return record

    logging.setLogRecordFactory(record_with_request_id)


class RequestIdMiddleware:
    """ASGI middleware: adopt or generate the id, expose it to the app and the logs, echo it."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = [(name, value) for name, value in scope["headers"] if name != HEADER]
        given = next((value for name, value in scope["headers"] if name == HEADER), b"")
        value = given if _ACCEPTED.fullmatch(given) else uuid.uuid4().hex.encode()
        request_id.set(value.decode("ascii"))
        # KServe reads the header too (its latency log line, the predictor's `headers`).
        scope["headers"] = [*headers, (HEADER, value)]

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), (HEADER, value)]
            await send(message)

        await self.app(scope, receive, send_with_id)
