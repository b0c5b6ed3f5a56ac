"""The image budget (admission.py) in process: ImageAdmission admits up to MAX_IMAGES_IN_FLIGHT
images at once, queues the rest, refuses with ServiceOverloaded what waits past
MAX_QUEUE_WAIT_S, and gives every slot back however a request ends.

Who is inside and in which order is shown by events each request sets, never by a clock.
`loop_turns` only lets every ready task run to its next suspension point (a count of event-loop
turns, not a wait), before asserting that a request is still outside. The 503 answer itself stays
end to end in test_predict_api.py."""

from __future__ import annotations

import asyncio
import random

import pytest

from model_server.logo_detection.admission import ImageAdmission, ServiceOverloaded

DEADLOCK_GUARD_S = 10  # only a stuck test ever reaches it


async def loop_turns(turns: int = 20) -> None:
    """Let every task that can run, run (waiting requests park on the budget's condition)."""
    for _ in range(turns):
        await asyncio.sleep(0)


class Request:
    """A request holding `count` images inside admit() until the test lets it out."""

    def __init__(
        self, admission: ImageAdmission, count: int, name: str, log: list[str] | None = None
    ) -> None:
        self.admission = admission
        self.count = count
        self.name = name
        self.log = log if log is not None else []
        self.inside = asyncio.Event()
        self.done_inside = asyncio.Event()  # set it first to pass straight through
        self.in_flight_on_entry: int | None = None
        self.task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        async with self.admission.admit(self.count):
            self.in_flight_on_entry = self.admission.in_flight
            self.log.append(f"{self.name} in")
            self.inside.set()
            await self.done_inside.wait()
            self.log.append(f"{self.name} out")

    async def let_out(self) -> None:
        self.done_inside.set()
        await asyncio.wait_for(self.task, DEADLOCK_GUARD_S)


async def all_inside(*requests: Request) -> None:
    await asyncio.wait_for(
        asyncio.gather(*(request.inside.wait() for request in requests)), DEADLOCK_GUARD_S
    )


async def holding_everything(admission: ImageAdmission, log: list[str] | None = None) -> Request:
    """A request admitted with the whole budget, so that every next one has to wait."""
    holder = Request(admission, admission.capacity, "holder", log)
    await all_inside(holder)
    return holder


async def refused_at_once(admission: ImageAdmission, count: int = 1) -> str:
    """What a request that may not wait (max_wait_s=0) is told."""
    with pytest.raises(ServiceOverloaded) as refused:
        async with admission.admit(count):
            pytest.fail("admitted beyond the budget")
    return str(refused.value)


async def test_requests_are_admitted_together_up_to_the_budget():
    admission = ImageAdmission(3, max_wait_s=0)
    requests = [Request(admission, 1, name) for name in "abc"]
    await all_inside(*requests)  # all three inside at once: none has been let out
    assert admission.in_flight == 3
    assert not any(request.task.done() for request in requests)
    assert await refused_at_once(admission) == (
        "the server is busy (3 images in flight); retry shortly"
    )
    assert admission.in_flight == 3  # the refused request took nothing
    for request in requests:
        await request.let_out()
    assert admission.in_flight == 0


async def test_a_request_holds_one_slot_per_image():
    admission = ImageAdmission(5, max_wait_s=0)
    three, two = Request(admission, 3, "three"), Request(admission, 2, "two")
    await all_inside(three, two)
    assert (three.in_flight_on_entry, two.in_flight_on_entry) in {(3, 5), (5, 2)}
    assert admission.in_flight == 5
    await refused_at_once(admission)
    await three.let_out()
    assert admission.in_flight == 2
    await refused_at_once(admission, 4)  # 2 + 4 > 5
    fits = Request(admission, 3, "fits")
    await all_inside(fits)
    assert admission.in_flight == 5
    await fits.let_out()
    await two.let_out()
    assert admission.in_flight == 0


async def test_a_request_larger_than_the_budget_takes_all_of_it_and_is_not_refused():
    admission = ImageAdmission(4, max_wait_s=0)
    huge = Request(admission, 50, "huge")
    await all_inside(huge)
    assert admission.in_flight == 4
    await refused_at_once(admission)
    await huge.let_out()
    assert admission.in_flight == 0


async def test_no_queue_wait_admits_what_fits_without_waiting():
    """MAX_QUEUE_WAIT_S=0 means "never wait", not "always refuse"."""
    admission = ImageAdmission(2, max_wait_s=0)
    async with admission.admit(1):
        async with admission.admit(1):
            assert admission.in_flight == 2
            await refused_at_once(admission)
        async with admission.admit(1):
            assert admission.in_flight == 2
    assert admission.in_flight == 0


async def test_beyond_the_budget_a_request_waits_until_enough_is_released():
    admission = ImageAdmission(2)
    log: list[str] = []
    first, second = Request(admission, 1, "first", log), Request(admission, 1, "second", log)
    await all_inside(first, second)
    waiting = Request(admission, 2, "waiting", log)
    await loop_turns()
    assert not waiting.inside.is_set() and admission.in_flight == 2
    await first.let_out()
    await loop_turns()
    assert not waiting.inside.is_set(), "admitted with one free slot for two images"
    await second.let_out()
    await all_inside(waiting)
    assert waiting.in_flight_on_entry == 2
    assert log == ["first in", "second in", "first out", "second out", "waiting in"]
    await waiting.let_out()
    assert admission.in_flight == 0


async def test_waiting_requests_of_one_size_are_admitted_in_arrival_order():
    admission = ImageAdmission(1)
    log: list[str] = []
    holder = await holding_everything(admission, log)
    waiting = []
    for index in range(6):
        waiting.append(Request(admission, 1, f"w{index}", log))
        waiting[-1].done_inside.set()  # each passes straight through once admitted
        await loop_turns()
    assert log == ["holder in"]
    await holder.let_out()
    await asyncio.wait_for(asyncio.gather(*(w.task for w in waiting)), DEADLOCK_GUARD_S)
    assert log == ["holder in", "holder out"] + [
        f"w{i} {step}" for i in range(6) for step in ("in", "out")
    ]
    assert {w.in_flight_on_entry for w in waiting} == {1}  # one at a time: never two inside
    assert admission.in_flight == 0


async def test_a_wait_past_the_limit_is_refused_and_takes_nothing():
    admission = ImageAdmission(1, max_wait_s=0.01)
    holder = await holding_everything(admission)
    with pytest.raises(ServiceOverloaded, match=r"busy \(1 images in flight\)"):
        async with admission.admit(1):
            pytest.fail("admitted beyond the budget")
    assert admission.in_flight == 1
    await holder.let_out()
    # nothing is left locked or counted: the next request is admitted
    after = Request(admission, 1, "after")
    await all_inside(after)
    assert after.in_flight_on_entry == 1
    await after.let_out()
    assert admission.in_flight == 0


async def test_an_exception_inside_releases_the_slots_and_propagates():
    admission = ImageAdmission(2)
    with pytest.raises(ZeroDivisionError):
        async with admission.admit(2):
            assert admission.in_flight == 2
            _ = 1 / 0
    assert admission.in_flight == 0
    both = Request(admission, 2, "both")
    await all_inside(both)
    await both.let_out()


async def test_an_exception_inside_wakes_the_waiting_request():
    admission = ImageAdmission(1)
    fail_now = asyncio.Event()

    async def failing() -> None:
        async with admission.admit(1):
            await fail_now.wait()
            raise RuntimeError("a bug in the request")

    failing_task = asyncio.create_task(failing())
    await loop_turns()
    assert admission.in_flight == 1
    waiting = Request(admission, 1, "waiting")
    await loop_turns()
    assert not waiting.inside.is_set()
    fail_now.set()
    await all_inside(waiting)
    with pytest.raises(RuntimeError, match="a bug in the request"):
        await failing_task
    await waiting.let_out()
    assert admission.in_flight == 0


async def test_cancelling_a_request_inside_releases_its_slots_to_the_waiting_one():
    """A request whose task is cancelled while it holds its slots (a shutdown, a caller gone)."""
    admission = ImageAdmission(3)
    log: list[str] = []
    holder = await holding_everything(admission, log)
    waiting = Request(admission, 2, "waiting", log)
    await loop_turns()
    assert not waiting.inside.is_set()
    holder.task.cancel()
    await all_inside(waiting)
    assert holder.task.cancelled()
    assert log == ["holder in", "waiting in"]  # the holder never got out normally
    assert admission.in_flight == 2
    await waiting.let_out()
    assert admission.in_flight == 0


async def test_cancelling_a_waiting_request_takes_nothing_and_skips_no_one():
    admission = ImageAdmission(1)
    log: list[str] = []
    holder = await holding_everything(admission, log)
    gone = Request(admission, 1, "gone", log)
    await loop_turns()
    behind = Request(admission, 1, "behind", log)
    await loop_turns()
    gone.task.cancel()
    await loop_turns()
    assert gone.task.cancelled()
    assert admission.in_flight == 1
    await holder.let_out()
    await all_inside(behind)
    assert "gone in" not in log
    assert behind.in_flight_on_entry == 1
    await behind.let_out()
    assert admission.in_flight == 0


async def test_a_burst_never_exceeds_or_leaks_the_budget():
    """Many requests of every size, some failing, some cancelled inside or while waiting: at
    every admission the images inside fit the budget, and at the end nothing is held.
    (A cancellation landing in the release itself: the test below.)"""
    capacity = 7
    admission = ImageAdmission(capacity)
    rng = random.Random(20260611)
    inside: dict[int, int] = {}  # request -> images it holds, while in its body
    # at each admission: (images in bodies, in_flight); in_flight also counts requests that
    # have left their body and are still giving their slots back
    seen: list[tuple[int, int]] = []

    async def one(index: int, count: int, fails: bool) -> None:
        async with admission.admit(count):
            inside[index] = min(count, capacity)
            seen.append((sum(inside.values()), admission.in_flight))
            try:
                for _ in range(rng.randrange(1, 4)):
                    await asyncio.sleep(0)
                if fails:
                    raise ValueError(index)
            finally:
                del inside[index]

    tasks = [
        asyncio.create_task(one(i, rng.randrange(1, 10), rng.random() < 0.2)) for i in range(80)
    ]
    for task in rng.sample(tasks, 15):  # some inside, some still queued, some not yet started
        await loop_turns(rng.randrange(0, 4))
        task.cancel()
    outcomes = await asyncio.wait_for(
        asyncio.gather(*tasks, return_exceptions=True), DEADLOCK_GUARD_S
    )
    failures = [o for o in outcomes if isinstance(o, BaseException)]
    assert all(isinstance(f, (ValueError, asyncio.CancelledError)) for f in failures), failures
    assert any(isinstance(f, ValueError) for f in failures)
    assert any(isinstance(f, asyncio.CancelledError) for f in failures)
    assert len(seen) > 40
    assert all(held <= in_flight <= capacity for held, in_flight in seen), seen
    assert max(in_flight for _, in_flight in seen) == capacity, "the budget was never full"
    assert admission.in_flight == 0 and inside == {}
    admission.max_wait_s = 0  # and nothing is left locked: the whole budget, at once
    async with admission.admit(capacity):
        assert admission.in_flight == capacity


async def test_a_request_cancelled_while_giving_its_slots_back_still_gives_them_back():
    """Two requests leave while a third waits; the second is cancelled as it leaves. Every
    interleaving of a few loop turns is tried; after all three are gone nothing may be held."""
    leaked = []
    for first_to_second in range(5):
        for second_to_cancel in range(5):
            admission = ImageAdmission(2)
            first, second = Request(admission, 1, "first"), Request(admission, 1, "second")
            await all_inside(first, second)
            waiting = Request(admission, 1, "waiting")
            await loop_turns()
            first.done_inside.set()
            await loop_turns(first_to_second)
            second.done_inside.set()
            await loop_turns(second_to_cancel)
            second.task.cancel()
            await all_inside(waiting)
            await first.let_out()
            await waiting.let_out()
            await asyncio.gather(second.task, return_exceptions=True)
            if admission.in_flight:
                leaked.append((first_to_second, second_to_cancel, admission.in_flight))
    assert leaked == []
