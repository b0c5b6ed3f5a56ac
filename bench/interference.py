"""What a 50-image request does to everything else: health-check latency while it runs, and the
latency of a 1-image upload sent a quarter of the way into it (the Upload Wizard's bursts).

The tests prove these properties from events (the request is held in flight by the test's image
server); how fast they hold depends on the machine, so the numbers live here.
"""

from __future__ import annotations

import asyncio
import time

import aiohttp
import numpy as np

from .load import check_answer

HEADERS = {"Content-Type": "application/json"}


async def _timed_predict(
    session: aiohttp.ClientSession, url: str, body: bytes, images: int
) -> tuple[float, float]:
    """(start, end) in perf_counter seconds; raises on a wrong answer."""
    started = time.perf_counter()
    async with session.post(url, data=body, headers=HEADERS) as response:
        answer, status = await response.read(), response.status
    problem = check_answer(status, answer, images)
    if problem:
        raise RuntimeError(problem)
    return started, time.perf_counter()


async def _poll_health(
    session: aiohttp.ClientSession, url: str, until: asyncio.Future
) -> list[float]:
    latencies = []
    while not until.done():
        started = time.perf_counter()
        async with session.get(url) as response:
            await response.read()
        latencies.append(time.perf_counter() - started)
        await asyncio.sleep(0.01)
    return latencies


async def measure(
    session: aiohttp.ClientSession,
    base_url: str,
    predict_url: str,
    big_body: bytes,
    small_body: bytes,
    rounds: int,
) -> dict:
    """`rounds` 50-image requests, each with health polling and one 1-image request beside it."""
    start, end = await _timed_predict(session, predict_url, big_body, 50)
    alone_s = end - start
    health_s: list[float] = []
    small_s, big_s, small_first = [], [], 0
    for _ in range(rounds):
        big = asyncio.ensure_future(_timed_predict(session, predict_url, big_body, 50))
        health = asyncio.ensure_future(_poll_health(session, f"{base_url}/v2/health/live", big))
        await asyncio.sleep(alone_s / 4)
        small_start, small_end = await _timed_predict(session, predict_url, small_body, 1)
        big_start, big_end = await big
        health_s += await health
        small_s.append(small_end - small_start)
        big_s.append(big_end - big_start)
        small_first += small_end < big_end
    return {
        "rounds": rounds,
        "big_alone_ms": alone_s * 1000,
        "big_p50_ms": float(np.median(big_s) * 1000),
        "small_p50_ms": float(np.median(small_s) * 1000),
        "small_max_ms": float(np.max(small_s) * 1000),
        "small_ended_first": small_first,
        "health_checks": len(health_s),
        "health_p50_ms": float(np.median(health_s) * 1000) if health_s else 0.0,
        "health_max_ms": float(np.max(health_s) * 1000) if health_s else 0.0,
    }


def markdown(result: dict) -> str:
    return (
        f"Beside a 50-image request ({result['rounds']} rounds; alone it took "
        f"{result['big_alone_ms']:.0f} ms, {result['big_p50_ms']:.0f} ms p50 with company): "
        f"`/v2/health/live` answered in {result['health_p50_ms']:.1f} ms p50, "
        f"{result['health_max_ms']:.1f} ms at worst ({result['health_checks']} checks); a 1-image "
        f"request sent a quarter of the way in took {result['small_p50_ms']:.0f} ms p50, "
        f"{result['small_max_ms']:.0f} ms at worst, and ended first in "
        f"{result['small_ended_first']}/{result['rounds']} rounds."
    )
