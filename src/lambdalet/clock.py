"""Time, injected: reading it, waiting on it, and scheduling on it.

Lifecycle code (``env/``, ``control/pool.py``) never calls ``asyncio.sleep``,
``asyncio.timeout`` or ``loop.call_later`` itself: it asks its :class:`Clock`.
:class:`SystemClock` delegates to the running event loop (whose time *is*
``time.monotonic``); :class:`FakeClock` (``lambdalet.fake_clock``) only moves when a
test advances it, so an init timeout of 10 s or an idle spin-down of 300 s is tested
in microseconds.

Deadlines are in :meth:`Clock.monotonic` seconds, as ``asyncio.timeout_at`` takes
them.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from types import TracebackType
from typing import Protocol


class Handle(Protocol):
    """A scheduled call; :meth:`cancel` makes sure it will not run."""

    def cancel(self) -> None: ...

    def cancelled(self) -> bool: ...

    def when(self) -> float:
        """The clock time it runs at."""
        ...


class Timeout(Protocol):
    """``async with clock.timeout_at(deadline):`` raises ``TimeoutError`` at the
    deadline (``None``: never), like ``asyncio.Timeout``; :meth:`reschedule` moves it."""

    async def __aenter__(self) -> Timeout: ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc_val: BaseException | None,
        exc_tb: TracebackType | None,
    ) -> bool | None: ...

    def when(self) -> float | None: ...

    def reschedule(self, when: float | None) -> None: ...

    def expired(self) -> bool: ...


class Clock(Protocol):
    def monotonic(self) -> float:
        """Seconds on a monotonic clock (the time deadlines are given in)."""
        ...

    def wall(self) -> float:
        """Seconds since the Unix epoch."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Wait ``seconds`` of this clock's time (at least one pass of the loop)."""
        ...

    def timeout_at(self, deadline: float | None) -> Timeout:
        """A timeout at ``deadline`` (monotonic seconds; ``None``: no deadline)."""
        ...

    def timeout(self, delay: float | None) -> Timeout:
        """A timeout ``delay`` seconds from now (negative: already due; ``None``: none)."""
        ...

    def call_at(self, when: float, callback: Callable[[], object]) -> Handle:
        """Run ``callback`` at monotonic time ``when`` (soon, if that has passed)."""
        ...

    def call_later(self, delay: float, callback: Callable[[], object]) -> Handle:
        """Run ``callback`` ``delay`` seconds from now."""
        ...


class SystemClock:
    """The real time of the running event loop."""

    def monotonic(self) -> float:
        # the default loop's time() is time.monotonic(): deadlines computed from this
        # are valid for loop.call_at and asyncio.timeout_at
        return time.monotonic()

    def wall(self) -> float:
        return time.time()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))

    def timeout_at(self, deadline: float | None) -> Timeout:
        return asyncio.timeout_at(deadline)

    def timeout(self, delay: float | None) -> Timeout:
        return asyncio.timeout(delay)

    def call_at(self, when: float, callback: Callable[[], object]) -> Handle:
        return asyncio.get_running_loop().call_at(when, callback)

    def call_later(self, delay: float, callback: Callable[[], object]) -> Handle:
        return asyncio.get_running_loop().call_later(max(0.0, delay), callback)
