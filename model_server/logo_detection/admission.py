"""Bound the images in flight across all requests, so bursts queue instead of exhausting memory."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator


class ServiceOverloaded(Exception):
    """No capacity within the wait limit: answered as HTTP 503 with Retry-After."""


class ImageAdmission:
    def __init__(self, max_images_in_flight: int, max_wait_s: float = 30.0) -> None:
        self.capacity = max_images_in_flight
        self.max_wait_s = max_wait_s
        self.in_flight = 0
        self._changed: asyncio.Condition | None = None
        self._notifying: set[asyncio.Task[None]] = (
            set()
        )  # kept, so a pending wake-up isn't collected

    @contextlib.asynccontextmanager
    async def admit(self, count: int) -> AsyncIterator[None]:
        """Hold `count` slots for the duration of a request (waits, then 503s)."""
        count = min(count, self.capacity)  # a request can never need more than everything
        changed = self._condition()
        async with changed:
            try:
                if self.in_flight + count > self.capacity:  # checked first: MAX_QUEUE_WAIT_S=0
                    await asyncio.wait_for(  # means "never wait", not "always refuse"
                        changed.wait_for(lambda: self.in_flight + count <= self.capacity),
                        self.max_wait_s,
                    )
            except TimeoutError:
                raise ServiceOverloaded(
                    f"the server is busy ({self.in_flight} images in flight); retry shortly"
                ) from None
            self.in_flight += count
        try:
            yield
        finally:
            # Given back before any await: a cancellation landing while the lock is contended
            # must not keep the slots forever. Waiters are then woken under the lock.
            self.in_flight -= count
            self._background_notify(changed)

    def _background_notify(self, changed: asyncio.Condition) -> None:
        task = asyncio.get_running_loop().create_task(self._notify(changed))
        self._notifying.add(task)
        task.add_done_callback(self._notifying.discard)

    @staticmethod
    async def _notify(changed: asyncio.Condition) -> None:
        async with changed:
            changed.notify_all()

    def _condition(self) -> asyncio.Condition:
        if self._changed is None:
            self._changed = asyncio.Condition()
        return self._changed
