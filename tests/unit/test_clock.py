"""The fake clock keeps asyncio's rules for sleeping, timeouts and scheduled calls, on
time that only a test moves; the system clock delegates to the loop."""

from __future__ import annotations

import asyncio

import pytest

from lambdalet.clock import Clock, SystemClock
from lambdalet.fake_clock import FakeClock


async def test_calls_run_in_time_order_with_the_clock_at_their_time() -> None:
    clock = FakeClock(start=100.0)
    ran: list[tuple[str, float]] = []
    clock.call_later(3, lambda: ran.append(("c", clock.monotonic())))
    clock.call_later(1, lambda: ran.append(("a", clock.monotonic())))
    clock.call_at(102.0, lambda: ran.append(("b", clock.monotonic())))
    await clock.advance(2.5)
    assert ran == [("a", 101.0), ("b", 102.0)]
    assert clock.monotonic() == 102.5
    await clock.advance(0.5)
    assert ran[-1] == ("c", 103.0)


async def test_same_time_calls_run_in_the_order_they_were_made() -> None:
    clock = FakeClock()
    ran: list[int] = []
    for i in range(5):
        clock.call_later(1, lambda i=i: ran.append(i))
    await clock.advance(1)
    assert ran == [0, 1, 2, 3, 4]


async def test_a_call_scheduled_inside_the_step_runs_within_it() -> None:
    clock = FakeClock(start=0.0)
    ran: list[float] = []

    def first() -> None:
        ran.append(clock.monotonic())
        clock.call_later(1, lambda: ran.append(clock.monotonic()))

    clock.call_later(1, first)
    await clock.advance(5)
    assert ran == [1.0, 2.0]


async def test_cancelled_calls_do_not_run() -> None:
    clock = FakeClock()
    ran: list[str] = []
    keep = clock.call_later(1, lambda: ran.append("keep"))
    drop = clock.call_later(1, lambda: ran.append("drop"))
    drop.cancel()
    assert drop.cancelled() and not keep.cancelled()
    assert clock.pending() == [keep.when()]
    await clock.advance(10)
    assert ran == ["keep"]


async def test_a_call_already_due_runs_without_advancing() -> None:
    clock = FakeClock()
    ran: list[str] = []
    clock.call_later(0, lambda: ran.append("now"))
    clock.call_at(clock.monotonic() - 5, lambda: ran.append("past"))
    await clock.settle()
    assert ran == ["now", "past"]


async def test_sleep_wakes_at_its_time_and_not_before() -> None:
    clock = FakeClock(start=0.0)
    task = asyncio.create_task(clock.sleep(5))
    await clock.advance(4.999)
    assert not task.done()
    await clock.advance(0.001)
    assert task.done()
    assert clock.pending() == []


async def test_a_cancelled_sleep_leaves_nothing_scheduled() -> None:
    clock = FakeClock()
    task = asyncio.create_task(clock.sleep(5))
    await clock.settle()
    assert len(clock.pending()) == 1
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert clock.pending() == []


async def _wait_within(clock: Clock, seconds: float, done: asyncio.Future[None]) -> str:
    try:
        async with clock.timeout(seconds):
            await done
    except TimeoutError:
        return "timed out"
    return "done"


async def test_a_timeout_fires_at_its_deadline() -> None:
    clock = FakeClock()
    never: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    task = asyncio.create_task(_wait_within(clock, 10, never))
    await clock.advance(9.9)
    assert not task.done()
    await clock.advance(0.1)
    assert task.done() and task.result() == "timed out"
    # the awaited future was cancelled with the block, as asyncio.timeout does
    assert never.cancelled()


async def test_a_timeout_does_not_fire_when_the_work_finishes_first() -> None:
    clock = FakeClock()
    done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    task = asyncio.create_task(_wait_within(clock, 10, done))
    await clock.advance(5)
    done.set_result(None)
    await clock.settle()
    assert task.result() == "done"
    assert clock.pending() == []
    await clock.advance(100)  # nothing left to fire


async def test_a_zero_timeout_is_spent_at_once() -> None:
    clock = FakeClock()
    never: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    task = asyncio.create_task(_wait_within(clock, 0, never))
    await clock.settle()
    assert task.result() == "timed out"


async def test_timeout_at_takes_a_deadline_in_clock_time() -> None:
    clock = FakeClock(start=50.0)
    deadline = clock.monotonic() + 3

    async def wait() -> str:
        try:
            async with clock.timeout_at(deadline) as t:
                assert t.when() == deadline
                await asyncio.get_running_loop().create_future()
        except TimeoutError:
            return "timed out"
        return "done"

    task = asyncio.create_task(wait())
    await clock.advance(2)
    assert not task.done()
    await clock.advance(1)
    assert task.result() == "timed out"


async def test_a_rescheduled_timeout_fires_at_the_new_deadline() -> None:
    clock = FakeClock(start=0.0)
    seen: list[str] = []
    entered = asyncio.Event()
    timeouts = []

    async def wait() -> None:
        try:
            async with clock.timeout(2) as t:
                timeouts.append(t)
                entered.set()
                await asyncio.get_running_loop().create_future()
        except TimeoutError:
            seen.append(f"timed out at {clock.monotonic()}")

    task = asyncio.create_task(wait())
    await entered.wait()
    timeouts[0].reschedule(5.0)
    await clock.advance(4)
    assert seen == []
    timeouts[0].reschedule(None)  # no deadline at all
    await clock.advance(100)
    assert seen == [] and not task.done()
    timeouts[0].reschedule(clock.monotonic() + 1)
    await clock.advance(1)
    assert seen == ["timed out at 105.0"]
    assert timeouts[0].expired()


async def test_a_foreign_cancel_inside_a_timeout_stays_a_cancel() -> None:
    clock = FakeClock()
    never: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    task = asyncio.create_task(_wait_within(clock, 10, never))
    await clock.settle()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert clock.pending() == []


async def test_wall_time_moves_with_monotonic_time() -> None:
    clock = FakeClock(start=10.0, wall=1_000.0)
    await clock.advance(2.5)
    assert (clock.monotonic(), clock.wall()) == (12.5, 1_002.5)
    with pytest.raises(ValueError):
        await clock.advance(-1)


async def test_system_clock_delegates_to_the_loop() -> None:
    clock = SystemClock()
    loop = asyncio.get_running_loop()
    # deadlines from monotonic() are the loop's own time
    assert abs(clock.monotonic() - loop.time()) < 1.0
    ran = asyncio.Event()
    handle = clock.call_later(0, ran.set)
    assert handle.when() <= loop.time() + 0.01
    await asyncio.wait_for(ran.wait(), 5)
    cancelled = clock.call_at(loop.time() + 60, ran.clear)
    cancelled.cancel()
    assert cancelled.cancelled()
    never: asyncio.Future[None] = loop.create_future()
    assert await _wait_within(clock, 0, never) == "timed out"
    await clock.sleep(0)
