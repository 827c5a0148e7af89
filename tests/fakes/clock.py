"""Helpers for tests on ``lambdalet.fake_clock.FakeClock``."""

from __future__ import annotations

import asyncio

from lambdalet.fake_clock import FakeClock


async def run_out(clock: FakeClock, work: asyncio.Future[object], limit_s: float = 120.0) -> None:
    """Await ``work`` that may wait on time (shutdown budgets), moving the clock a second
    at a time as needed: a fixture's teardown must end even after a test failed half-way."""
    waited = 0.0
    while not work.done() and waited < limit_s:
        await clock.advance(1.0)
        waited += 1.0
    await work
