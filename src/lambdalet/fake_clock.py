"""A :class:`~lambdalet.clock.Clock` that only moves when a test moves it.

Give it wherever the code takes a clock (``Environment``, ``Pool``); then::

    clock = FakeClock()
    task = asyncio.create_task(env.start())   # Init begins, its 10 s timeout is scheduled
    await clock.settle()                      # let every task run until all of them wait
    await clock.advance(10)                   # the timeout fires; ``task`` sees TimeoutError
    await task

:meth:`FakeClock.advance` runs every call that falls due within the step in time order
(setting :meth:`monotonic` to each one's time as it runs), letting the loop settle after
each, so that a callback that schedules another one inside the step sees it run too.
A call scheduled at or before the current time runs on the next pass of the loop, as
with ``loop.call_soon`` (a zero budget is spent at once, without advancing).

Sleeping (``clock.sleep``), timeouts (``clock.timeout`` / ``timeout_at``, rescheduled
with ``reschedule``) and scheduled calls (``call_later`` / ``call_at``) all go through
the same queue.  An exception raised by a callback run by ``advance`` propagates to the
test.  Real I/O still happens in real time: a test driving real sockets or pipes
waits on them itself.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import Callable
from types import TracebackType

from lambdalet.clock import Timeout

#: loop passes ``settle`` makes at most (a task that keeps yielding never lets it end)
SETTLE_ROUNDS = 1000


class FakeHandle:
    def __init__(self, when: float, callback: Callable[[], object]) -> None:
        self._when = when
        self._callback: Callable[[], object] | None = callback
        self._cancelled = False

    def __repr__(self) -> str:
        state = " cancelled" if self._cancelled else ""
        return f"<FakeHandle when={self._when}{state} {self._callback!r}>"

    def when(self) -> float:
        return self._when

    def cancel(self) -> None:
        self._cancelled = True
        self._callback = None

    def cancelled(self) -> bool:
        return self._cancelled

    def run(self) -> None:
        callback = self._callback
        if callback is None:
            return
        self._callback = None
        callback()


class FakeTimeout:
    """``asyncio.Timeout``'s rules on fake time: at the deadline the task that entered
    is cancelled, and leaving the block turns that cancellation into ``TimeoutError``."""

    def __init__(self, clock: FakeClock, when: float | None) -> None:
        self._clock = clock
        self._when = when
        self._handle: FakeHandle | None = None
        self._task: asyncio.Task[object] | None = None
        self._cancelling = 0
        self._state = "created"  # created, entered, expiring, expired, exited

    def __repr__(self) -> str:
        return f"<FakeTimeout [{self._state}] when={self._when}>"

    def when(self) -> float | None:
        return self._when

    def expired(self) -> bool:
        return self._state in ("expiring", "expired")

    def reschedule(self, when: float | None) -> None:
        if self._state != "entered":
            raise RuntimeError(f"cannot reschedule a timeout that is {self._state}")
        self._when = when
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        if when is not None:
            self._handle = self._clock.call_at(when, self._on_timeout)

    async def __aenter__(self) -> Timeout:
        task = asyncio.current_task()
        if task is None:
            raise RuntimeError("a timeout must be used inside a task")
        if self._state != "created":
            raise RuntimeError("a timeout is entered once")
        self._task = task
        self._cancelling = task.cancelling()
        self._state = "entered"
        self.reschedule(self._when)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc_val: BaseException | None,
        exc_tb: TracebackType | None,
    ) -> bool | None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        if self._state == "expiring":
            self._state = "expired"
            assert self._task is not None
            if self._task.uncancel() <= self._cancelling and exc_type is asyncio.CancelledError:
                raise TimeoutError from exc_val
        elif self._state == "entered":
            self._state = "exited"
        return None

    def _on_timeout(self) -> None:
        assert self._task is not None
        self._task.cancel()
        self._state = "expiring"
        self._handle = None


class FakeClock:
    """Monotonic time starts at ``start`` and wall time at ``wall``; both move together."""

    def __init__(self, start: float = 1000.0, wall: float = 1_800_000_000.0) -> None:
        self._now = start
        self._wall_offset = wall - start
        self._queue: list[tuple[float, int, FakeHandle]] = []
        self._order = itertools.count()

    def __repr__(self) -> str:
        return f"<FakeClock {self._now} pending={len(self.pending())}>"

    # ------------------------------------------------------------------ Clock

    def monotonic(self) -> float:
        return self._now

    def wall(self) -> float:
        return self._now + self._wall_offset

    def call_at(self, when: float, callback: Callable[[], object]) -> FakeHandle:
        handle = FakeHandle(when, callback)
        if when <= self._now:
            asyncio.get_running_loop().call_soon(handle.run)
        else:
            heapq.heappush(self._queue, (when, next(self._order), handle))
        return handle

    def call_later(self, delay: float, callback: Callable[[], object]) -> FakeHandle:
        return self.call_at(self._now + max(0.0, delay), callback)

    async def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        woken: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        def wake() -> None:
            if not woken.done():
                woken.set_result(None)

        handle = self.call_later(seconds, wake)
        try:
            await woken
        finally:
            handle.cancel()

    def timeout_at(self, deadline: float | None) -> Timeout:
        return FakeTimeout(self, deadline)

    def timeout(self, delay: float | None) -> Timeout:
        return FakeTimeout(self, None if delay is None else self._now + delay)

    # ------------------------------------------------------------------ for tests

    def pending(self) -> list[float]:
        """The times of the calls still scheduled (not cancelled), soonest first."""
        return sorted(when for when, _, h in self._queue if not h.cancelled())

    async def settle(self) -> None:
        """Let every task and ready callback run until all of them wait (on this clock,
        a future or I/O).  Time does not move."""
        loop = asyncio.get_running_loop()
        ready = getattr(loop, "_ready", None)  # CPython's run queue; else a fixed count
        for _ in range(SETTLE_ROUNDS if ready is not None else 100):
            await asyncio.sleep(0)
            if ready is not None and not ready:
                return

    async def advance(self, seconds: float) -> None:
        """Move time forward by ``seconds``, running what falls due in order."""
        if seconds < 0:
            raise ValueError("time does not go backwards")
        await self.advance_to(self._now + seconds)

    async def advance_to(self, when: float) -> None:
        await self.settle()
        while self._queue and self._queue[0][0] <= when:
            due, _, handle = heapq.heappop(self._queue)
            if handle.cancelled():
                continue
            self._now = max(self._now, due)
            handle.run()
            await self.settle()
        self._now = max(self._now, when)
        await self.settle()
