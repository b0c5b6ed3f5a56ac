"""A real local HTTP server that serves test images (and misbehaves on purpose when asked)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from aiohttp import web

from .server_process import free_port

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class HeldResponse:
    """A URL whose answer the image server holds until the test releases it. A request that
    asked for it is provably in flight, and cannot finish, until then; no clock involved."""

    url: str = ""
    arrived: threading.Event = field(default_factory=threading.Event)
    released: threading.Event = field(default_factory=threading.Event)

    async def wait_until_requested(self, by: asyncio.Future) -> None:
        """Until the model server has asked for the URL (`by` must still be running)."""
        while not self.arrived.is_set():
            assert not by.done(), f"the request ended before fetching {self.url}: {by.result()}"
            await asyncio.sleep(0.01)

    def release(self) -> None:
        self.released.set()


class ImageServer:
    """aiohttp server on 127.0.0.1 in its own thread and event loop, independent of tests'."""

    def __init__(self) -> None:
        self.port = free_port()
        self.files: dict[str, tuple[bytes, str]] = {}
        self.routes: dict[str, Handler] = {}
        self._loop = asyncio.new_event_loop()
        self._runner: web.AppRunner | None = None
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}/{path.lstrip('/')}"

    def add_file(self, path: str, data: bytes, content_type: str = "image/jpeg") -> str:
        self.files[path.lstrip("/")] = (data, content_type)
        return self.url(path)

    def add_route(self, path: str, handler: Handler) -> str:
        self.routes[path.lstrip("/")] = handler
        return self.url(path)

    def add_held_file(
        self, path: str, data: bytes, content_type: str = "image/jpeg"
    ) -> HeldResponse:
        held = HeldResponse()

        async def handler(_request: web.Request) -> web.Response:
            held.arrived.set()
            while not held.released.is_set():
                await asyncio.sleep(0.01)
            return web.Response(body=data, content_type=content_type)

        held.url = self.add_route(path, handler)
        return held

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        path = request.match_info["path"]
        if path in self.routes:
            return await self.routes[path](request)
        if path in self.files:
            data, content_type = self.files[path]
            return web.Response(body=data, content_type=content_type)
        return web.Response(status=404, text="not found")

    def start(self) -> ImageServer:
        app = web.Application()
        app.router.add_get("/{path:.*}", self._dispatch)
        self._runner = web.AppRunner(app, access_log=None)
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start_site(), self._loop).result(30)
        return self

    async def _start_site(self) -> None:
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    async def _stop_site(self) -> None:
        """Cancel the handlers still running, then close: a hostile route may stall far longer
        than its test, and aiohttp would wait for it (its client has gone)."""
        for task in asyncio.all_tasks():
            if task is not asyncio.current_task():
                task.cancel()
        await self._runner.cleanup()

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self._stop_site(), self._loop).result(30)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()
