"""Closed-loop HTTP load: `concurrency` clients each send their next request when the last returns.

Request bodies are serialised once up front, so the client spends as little of the shared CPUs
as possible; every answer is checked (HTTP 200, one scored result per instance).
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import time
from dataclasses import dataclass, field

import aiohttp
import numpy as np
import orjson


def predict_body(images: list[bytes] | None = None, urls: list[str] | None = None) -> bytes:
    if images is not None:
        sources = [{"image": base64.b64encode(data).decode("ascii")} for data in images]
    else:
        sources = [{"url": url} for url in urls or []]
    instances = [
        {"filename": f"bench-{index}.jpg", "target": "logo", **source}
        for index, source in enumerate(sources)
    ]
    return orjson.dumps({"instances": instances})


@dataclass
class LoadResult:
    latencies_s: list[float] = field(default_factory=list)
    images: int = 0
    errors: int = 0
    wall_s: float = 0.0
    predictions: list[float] = field(default_factory=list)  # first result of each answer
    first_error: str = ""

    def percentile_ms(self, q: float) -> float:
        return float(np.percentile(self.latencies_s, q) * 1000) if self.latencies_s else 0.0

    @property
    def images_per_s(self) -> float:
        return self.images / self.wall_s if self.wall_s else 0.0


async def run_load(
    session: aiohttp.ClientSession,
    url: str,
    bodies: list[bytes],
    images_per_request: int,
    requests: int,
    concurrency: int,
) -> LoadResult:
    """Send `requests` requests (cycling through `bodies`) with `concurrency` in flight."""
    result = LoadResult()
    order = itertools.cycle(bodies)
    remaining = iter(range(requests))
    headers = {"Content-Type": "application/json"}

    async def client() -> None:
        for _ in remaining:
            body = next(order)
            started = time.perf_counter()
            try:
                async with session.post(url, data=body, headers=headers) as response:
                    answer = await response.read()
                    status = response.status
            except aiohttp.ClientError as error:
                result.errors += 1
                result.first_error = result.first_error or repr(error)
                continue
            result.latencies_s.append(time.perf_counter() - started)
            problem = check_answer(status, answer, images_per_request)
            if problem:
                result.errors += 1
                result.first_error = result.first_error or problem
                continue
            result.images += images_per_request
            result.predictions.append(orjson.loads(answer)["predictions"][0]["prediction"])

    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(concurrency)))
    result.wall_s = time.perf_counter() - started
    return result


def check_answer(status: int, answer: bytes, images_per_request: int) -> str:
    """'' for a good answer, else what is wrong with it."""
    if status != 200:
        return f"HTTP {status}: {answer[:200]!r}"
    predictions = orjson.loads(answer).get("predictions", [])
    if len(predictions) != images_per_request:
        return f"{len(predictions)} predictions for {images_per_request} instances"
    failed = [p["error"] for p in predictions if "error" in p]
    return f"instance error: {failed[0]}" if failed else ""
