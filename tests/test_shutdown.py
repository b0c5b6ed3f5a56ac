"""Graceful shutdown (issue 6): on SIGTERM the server stops accepting, finishes what is in flight
(within SHUTDOWN_GRACE_PERIOD_S), and exits 0 with a clean log, as Kubernetes expects.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import threading
import time

import aiohttp
import pytest
from aiohttp import web
from PIL import Image

from bench.harness.server_process import ServerProcess

from .conftest import loopback_fetch_settings

pytestmark = pytest.mark.asyncio

DIRTY_LOG_MARKERS = ("Traceback", "Exception ignored", "Unclosed", "Task was destroyed")


def png(index: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (320, 240), (index * 5, 255 - index * 5, 128)).save(buffer, "PNG")
    return buffer.getvalue()


def assert_clean(log: str) -> None:
    dirty = [marker for marker in DIRTY_LOG_MARKERS if marker in log]
    assert not dirty, f"{dirty} in the server log:\n{log}"


async def wait_for_log(server: ServerProcess, text: str, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while text not in server.log():
        assert time.monotonic() < deadline, f"{text!r} never logged:\n{server.log()}"
        await asyncio.sleep(0.05)


async def test_sigterm_finishes_the_request_in_flight_then_exits_0(image_server, http):
    """The 50 images are held by our image server until SIGTERM has been delivered, so the
    request is provably in flight (mid-fetch) when shutdown starts."""
    release = threading.Event()
    arrived: list[int] = []

    def gated(index: int):
        async def handler(request: web.Request) -> web.Response:
            arrived.append(index)
            while not release.is_set():
                await asyncio.sleep(0.02)
            return web.Response(body=png(index), content_type="image/png")

        return handler

    urls = [image_server.add_route(f"shutdown/{i}.png", gated(i)) for i in range(50)]
    body = {
        "instances": [
            {"filename": f"{i}.png", "target": "logo", "url": url} for i, url in enumerate(urls)
        ]
    }
    server = ServerProcess(
        fetch_read_timeout_s=60, fetch_total_timeout_s=60, **loopback_fetch_settings(image_server)
    ).start()
    try:
        request = asyncio.ensure_future(http.post(server.predict_url, json=body))
        while not arrived:
            assert not request.done(), "the request ended before any image was fetched"
            await asyncio.sleep(0.02)
        server.process.terminate()  # SIGTERM
        await wait_for_log(server, "Waiting for connections to close")  # after it stops listening
        with pytest.raises(aiohttp.ClientConnectionError):  # no longer accepting
            async with http.get(f"{server.url}/v2/health/live") as answer:
                await answer.read()
        release.set()
        async with await request as answer:
            status, result = answer.status, await answer.json()
        exit_code = await asyncio.to_thread(server.process.wait, 60)
    finally:
        release.set()
        server.stop()
    assert status == 200, result
    assert [p["filename"] for p in result["predictions"]] == [f"{i}.png" for i in range(50)]
    assert all("prediction" in p for p in result["predictions"]), result
    assert exit_code == 0, server.log()
    assert_clean(server.log())


async def test_a_request_outlasting_the_grace_period_does_not_hold_up_the_exit(image_server, http):
    """Past SHUTDOWN_GRACE_PERIOD_S the server gives up on what is left and still exits 0, well
    before Kubernetes' SIGKILL (terminationGracePeriodSeconds is longer)."""
    release, arrived = threading.Event(), threading.Event()

    async def never_done(request: web.Request) -> web.Response:
        arrived.set()
        while not release.is_set():
            await asyncio.sleep(0.05)
        return web.Response(body=png(0), content_type="image/png")

    url = image_server.add_route("shutdown/stuck.png", never_done)
    server = ServerProcess(
        shutdown_grace_period_s=1,
        fetch_read_timeout_s=120,
        fetch_total_timeout_s=120,
        **loopback_fetch_settings(image_server),
    ).start()
    try:
        body = {"instances": [{"filename": "stuck.png", "target": "logo", "url": url}]}
        request = asyncio.ensure_future(http.post(server.predict_url, json=body))
        while not arrived.is_set():
            assert not request.done(), "the request ended before the image was fetched"
            await asyncio.sleep(0.02)
        server.process.terminate()
        # the image stays held until after the exit (fetch timeout 120 s): only the grace
        # period can end the request
        exit_code = await asyncio.to_thread(server.process.wait, 100)
        with contextlib.suppress(aiohttp.ClientError):
            (await request).release()
    finally:
        release.set()
        server.stop()
    assert exit_code == 0, server.log()
    assert "timeout graceful shutdown exceeded" in server.log()


async def test_idle_sigterm_exits_0_with_a_clean_log():
    server = ServerProcess(cpu_threads=1).start()
    exit_code = server.stop()
    log = server.log()
    assert exit_code == 0, log
    assert_clean(log)
    assert "(1 CPU threads" in log, "CPU_THREADS did not size the thread pools"
