"""Host tools started off the event loop (sandbox.spawn)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import time

import pytest

from lambdalet.sandbox import spawn


async def test_run_returns_status_and_both_streams() -> None:
    rc, out = await spawn.run(["sh", "-c", "echo out; echo err >&2; exit 3"])
    assert rc == 3
    assert out.split() == [b"out", b"err"]


async def test_run_kills_a_tool_past_its_limit() -> None:
    t = time.monotonic()
    with pytest.raises(spawn.ToolTimeout, match="sleep timed out"):
        await spawn.run(["sleep", "5"], 0.2)
    assert time.monotonic() - t < 3


async def test_run_does_not_stall_the_event_loop() -> None:
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    task = asyncio.create_task(ticker())
    await spawn.run(["sleep", "0.3"])
    task.cancel()
    assert ticks >= 10  # the loop kept running while the tool ran


async def test_wait_and_stop_a_long_lived_tool() -> None:
    proc = await spawn.start(["sleep", "30"], stdin=subprocess.DEVNULL)
    with pytest.raises(TimeoutError):
        await spawn.wait(proc, 0.05)
    await spawn.stop(proc, 1.0)
    assert proc.returncode == -15
    quick = await spawn.start(["sh", "-c", "exit 7"])
    assert await spawn.wait(quick, 5) == 7
    assert await spawn.wait(quick) == 7  # already reaped: same answer


async def test_stop_kills_what_ignores_sigterm() -> None:
    r, w = os.pipe()
    proc = await spawn.start(
        ["sh", "-c", "trap '' TERM; echo ready; sleep 30"], stdout=w, stdin=subprocess.DEVNULL
    )
    os.close(w)
    assert os.read(r, 16) == b"ready\n"
    os.close(r)
    await spawn.stop(proc, 0.2)
    assert proc.returncode == -9
