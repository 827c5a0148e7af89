"""The Shutdown phase's sequence (contract §2.9): budgets, SHUTDOWN, escalation.

No extensions: everything is killed at once.  Internal extensions only: the runtime
gets SIGTERM and 500 ms.  External extensions: SIGTERM and 300 ms for the runtime,
then SHUTDOWN to the subscribed extensions (after telemetry's last batches), the rest
of 2,000 ms for them to exit, then SIGKILL for everything in the sandbox.  Every wait
runs on the injected clock.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Awaitable

from lambdalet.clock import Clock
from lambdalet.env import extensions as ext_protocol
from lambdalet.env.extensions import Extensions
from lambdalet.env.lifecycle import ExtensionState
from lambdalet.env.processes import Processes
from lambdalet.env.telemetry import TelemetryHub

#: the whole budget with external extensions, and with internal ones only
EXTERNAL_BUDGET_S = 2.0
INTERNAL_BUDGET_S = 0.5
#: how long the runtime has between SIGTERM and SIGKILL
RUNTIME_GRACE_S = 0.3
RUNTIME_GRACE_INTERNAL_S = 0.5
#: at most this (and a quarter of the budget) for telemetry's last batches
TELEMETRY_FLUSH_S = 0.3


async def wait_for(clock: Clock, aw: Awaitable[object], timeout_s: float) -> None:
    """Wait for ``aw`` at most ``timeout_s``; a timeout ends the wait, nothing more."""
    with contextlib.suppress(TimeoutError, asyncio.CancelledError):
        async with clock.timeout(max(0.0, timeout_s)):
            await aw


async def stop_processes(
    procs: Processes,
    clock: Clock,
    extensions: Extensions,
    telemetry: TelemetryHub | None,
    reason: str,
) -> None:
    """Run the sequence; ends with nothing running in the sandbox."""
    sandbox = procs.sandbox
    externals = [e for e in extensions.external() if e.alive and e.pid is not None]
    internal = extensions.has_internal()
    if externals or internal:
        budget = EXTERNAL_BUDGET_S if externals else INTERNAL_BUDGET_S
        runtime_grace = RUNTIME_GRACE_INTERNAL_S if internal else RUNTIME_GRACE_S
        started = clock.monotonic()
        deadline_ms = int((clock.wall() + budget) * 1000)
        pid = procs.runtime_pid
        runtime_exit = procs.exit_of(pid) if pid is not None else None
        if pid is not None and runtime_exit is not None:
            await sandbox.signal(pid, signal.SIGTERM)
            await wait_for(clock, runtime_exit, runtime_grace)
            await sandbox.signal(pid, signal.SIGKILL)
        if externals:
            if telemetry is not None:
                # the last batches (this invoke's report) go out before SHUTDOWN
                await telemetry.flush(min(TELEMETRY_FLUSH_S, budget / 4))
            shutdown = ext_protocol.shutdown_event(reason, deadline_ms)
            waiting = []
            for ext in externals:
                assert ext.pid is not None
                if ext.subscribed("SHUTDOWN") and ext.state is not ExtensionState.LAUNCHED:
                    ext.deliver(shutdown)
                    if (fut := procs.exit_of(ext.pid)) is not None:
                        waiting.append(fut)
                else:
                    await sandbox.signal(ext.pid, signal.SIGKILL)
            remaining = budget - (clock.monotonic() - started)
            if waiting and remaining > 0:
                await wait_for(clock, asyncio.gather(*waiting, return_exceptions=True), remaining)
    extensions.cancel_waiters()
    await sandbox.kill_all()
    procs.forget()
