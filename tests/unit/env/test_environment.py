"""Every lifecycle rule of one ``Environment``, on the fake sandbox backend.

The environment is real (its Runtime and Extensions APIs answer real HTTP on
loopback); its sandbox is ``tests/fakes/sandbox.py``: scripted runtimes and
extensions, and a record of what was done to the sandbox (spawn, signal,
freeze, thaw, kill_all, destroy).  The rules are those of docs/lifecycle.md and
the contract (§2.9 shutdown, §4 the environment), as the integration tests
prove them on real sandboxes.  Time is a ``FakeClock``: a test that waits for a
timeout advances it (after waiting for the script to reach the point it hangs at),
so a 10 s Init limit or a 2 s shutdown budget costs nothing and shows exactly.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import signal
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import pytest

from lambdalet.env.environment import Environment, EnvSettings
from lambdalet.env.lifecycle import EnvState
from lambdalet.env.log_files import FunctionLog, LogLimits
from lambdalet.env.log_records import plain_text, read_events
from lambdalet.env.observer import InitReport, InvokeReport
from lambdalet.fake_clock import FakeClock
from lambdalet.model import FunctionRecord, InvokeInput, InvokeOutput, LayerRef
from lambdalet.sandbox.base import ProcessRole
from tests.fakes.clock import run_out
from tests.fakes.records import ARN, function_record
from tests.fakes.sandbox import (
    FakeBackend,
    FakeLauncher,
    FakeProcess,
    FakeSandbox,
    answering,
    exits_in_init,
    exits_in_invoke,
    extension,
    extension_layer,
    hangs_in_init,
    hangs_in_invoke,
    reports_init_error,
)

#: time is fake: a test that waits for it without advancing it would hang, so fail fast
pytestmark = pytest.mark.timeout(30)


class Observer:
    def __init__(self) -> None:
        self.inits: list[InitReport] = []
        self.invokes: list[InvokeReport] = []

    def invoke_reported(self, report: InvokeReport) -> None:
        self.invokes.append(report)

    def init_reported(self, report: InitReport) -> None:
        self.inits.append(report)

    def throttled(self, function: str, version: str, reason: str) -> None:
        pass


def function(root: Path, *, timeout_s: int = 3) -> FunctionRecord:
    return function_record(root, timeout_s=timeout_s)


class Rig:
    """One environment on the fake backend, its log and its observer."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.backend = FakeBackend(root / "sandboxes", runtime=answering())
        self.launcher = FakeLauncher()
        self.observer = Observer()
        self.logs_dir = root / "logs"
        self._log = FunctionLog(self.logs_dir, "fn", LogLimits())
        #: Lambda's limits; time moves only when a test advances it
        self.clock = FakeClock()
        self.settings = EnvSettings(init_timeout_s=10.0, freeze_delay_s=0.0)
        self.fn = function(root)
        self.envs: list[Environment] = []
        self.settled: list[Environment] = []
        self._settled_event = asyncio.Event()
        self._ids = 0

    def make(self) -> Environment:
        env = Environment(
            env_id=f"fn-{len(self.envs)}",
            function=self.fn,
            backend=self.backend,
            launcher=self.launcher,
            function_log=self._log,
            clock=self.clock,
            settings=self.settings,
            on_settled=self._on_settled,
            observer=self.observer,
        )
        self.envs.append(env)
        return env

    async def started(self) -> Environment:
        env = self.make()
        await env.start()
        return env

    @property
    def sandbox(self) -> FakeSandbox:
        return self.backend.sandboxes[-1]

    def request(self, payload: bytes = b'{"n":1}') -> InvokeInput:
        self._ids += 1
        return InvokeInput(self.fn, ARN, f"req-{self._ids}", payload)

    async def invoke(self, env: Environment, payload: bytes = b'{"n":1}') -> InvokeOutput:
        return await env.invoke(self.request(payload))

    def log(self) -> str:
        return plain_text(read_events(self.logs_dir, "fn"))

    def lines(self, prefix: str) -> list[str]:
        return [line for line in self.log().splitlines() if line.startswith(prefix)]

    def report(self, n: int = -1) -> dict[str, str]:
        """The fields of the n-th REPORT line."""
        line = self.lines("REPORT")[n]
        return dict(field.split(": ", 1) for field in line.rstrip("\t").split("\t"))

    def _on_settled(self, env: Environment) -> None:
        self.settled.append(env)
        self._settled_event.set()

    async def settle(self, env: Environment) -> None:
        """Wait until the environment's invoke phase is over (its pool would be told)."""
        while env not in self.settled:
            self._settled_event.clear()
            await self._settled_event.wait()
        self.settled.remove(env)

    async def close(self) -> None:
        await run_out(self.clock, asyncio.gather(*(env.shutdown() for env in self.envs)))
        self._log.close()


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    r = Rig(tmp_path)
    yield r
    await r.close()


# ---------------------------------------------------------------------- Init


async def test_init_succeeds_and_the_first_invoke_reports_it(rig: Rig) -> None:
    env = await rig.started()
    assert env.state is EnvState.IDLE
    assert rig.sandbox.ops[:2] == [("spawn", ProcessRole.RUNTIME, "runtime"), ("freeze",)]
    assert rig.lines("INIT_START") and not rig.lines("INIT_REPORT")

    out = await rig.invoke(env, b'{"a":1}')
    assert out.payload == b'{"a":1}' and out.function_error is None
    await rig.settle(env)
    report = rig.report()
    assert report["REPORT RequestId"] == "req-1"
    assert "Init Duration" in report
    assert report["Memory Size"] == "128 MB"

    await rig.invoke(env)
    await rig.settle(env)
    assert "Init Duration" not in rig.report()
    assert [i.status for i in rig.observer.inits] == ["success"]


async def test_init_timeout_resets_and_the_first_invoke_retries_init(rig: Rig) -> None:
    rig.backend.runtime = hangs_in_init()
    env = rig.make()
    starting = asyncio.create_task(env.start())
    await rig.backend.reached("hanging")
    await rig.clock.advance(9.999)
    assert env.state is EnvState.INITIALIZING
    await rig.clock.advance(0.001)
    await starting
    sandbox = rig.sandbox
    assert env.state is EnvState.NEEDS_INIT
    (report,) = rig.lines("INIT_REPORT")
    # Error Type: the cause AWS logs after an Init timeout (contract §9: Runtime.Unknown)
    assert re.fullmatch(
        r"INIT_REPORT Init Duration: 10000.00 ms\tPhase: init\tStatus: timeout"
        r"\tError Type: Runtime.Unknown",
        report,
    )
    # a reset: every process killed, the sandbox (and its /tmp) kept for the retry
    assert sandbox.live_names() == [] and not sandbox.destroyed
    assert sandbox.count("kill_all") == 1 and sandbox.count("prepare_restart") == 1

    rig.backend.runtime = answering()
    out = await rig.invoke(env, b'"again"')
    assert out.payload == b'"again"' and out.function_error is None
    await rig.settle(env)
    assert len(rig.backend.sandboxes) == 1 and rig.sandbox is sandbox
    assert len(rig.lines("INIT_START")) == 2
    # the retried Init ran inside the invoke: its time is in Duration, no Init Duration
    assert "Init Duration" not in rig.report() and "Status" not in rig.report()
    assert [(i.phase, i.status) for i in rig.observer.inits] == [
        ("init", "timeout"),
        ("invoke", "success"),
    ]
    assert env.state is EnvState.IDLE


async def test_a_suppressed_init_that_hangs_times_out_on_the_invoke_deadline(rig: Rig) -> None:
    rig.backend.runtime = hangs_in_init()
    env = rig.make()
    starting = asyncio.create_task(env.start())
    await rig.backend.reached("hanging")
    await rig.clock.advance(10)
    await starting
    calling = asyncio.create_task(rig.invoke(env))
    await rig.backend.reached("hanging")
    await rig.clock.advance(3)  # the function's timeout, not the Init limit
    out = await calling
    await rig.settle(env)
    assert out.function_error == "Unhandled"
    assert json.loads(out.payload) == {
        "errorType": "Sandbox.Timedout",
        "errorMessage": "RequestId: req-1 Error: Task timed out after 3.00 seconds",
    }
    assert rig.lines("INIT_REPORT")[-1].startswith("INIT_REPORT Init Duration: 3000.00 ms")
    assert rig.lines("INIT_REPORT")[-1].endswith(
        "Phase: invoke\tStatus: timeout\tError Type: Runtime.Unknown"
    )
    report = rig.report()
    assert report["Status"] == "timeout" and report["Duration"] == "3000.00 ms"
    assert env.state is EnvState.NEEDS_INIT


async def test_init_error_is_reported_then_returned_by_the_first_invoke(rig: Rig) -> None:
    rig.backend.runtime = reports_init_error("Runtime.ImportModuleError", "No module named 'x'")
    env = await rig.started()
    assert env.state is EnvState.NEEDS_INIT
    assert rig.lines("INIT_REPORT")[0].endswith(
        "Phase: init\tStatus: error\tError Type: Runtime.ImportModuleError"
    )
    out = await rig.invoke(env)
    await rig.settle(env)
    assert out.function_error == "Unhandled"
    body = json.loads(out.payload)
    assert body["errorType"] == "Runtime.ImportModuleError"
    assert body["errorMessage"] == "No module named 'x'"
    assert rig.lines("INIT_REPORT")[-1].endswith(
        "Phase: invoke\tStatus: error\tError Type: Runtime.ImportModuleError"
    )
    assert rig.report()["Status"] == "error"
    assert rig.report()["Error Type"] == "Runtime.ImportModuleError"
    assert [(i.phase, i.status) for i in rig.observer.inits] == [
        ("init", "error"),
        ("invoke", "error"),
    ]


async def test_runtime_exit_during_init_is_an_exit_error(rig: Rig) -> None:
    rig.backend.runtime = exits_in_init(2, output="dying in init")
    env = await rig.started()
    assert env.state is EnvState.NEEDS_INIT
    assert "dying in init" in rig.log()
    assert rig.lines("INIT_REPORT")[0].endswith("Status: error\tError Type: Runtime.ExitError")
    out = await rig.invoke(env)
    assert json.loads(out.payload) == {
        "errorType": "Runtime.ExitError",
        "errorMessage": "RequestId: req-1 Error: Runtime exited with error: exit status 2",
    }


async def test_a_runtime_that_cannot_be_started_is_an_invalid_entrypoint(rig: Rig) -> None:
    rig.backend.runtime = None  # spawn fails: no such file
    env = await rig.started()
    assert rig.lines("INIT_REPORT")[0].endswith("Error Type: Runtime.InvalidEntrypoint")
    out = await rig.invoke(env)
    assert json.loads(out.payload)["errorType"] == "Runtime.InvalidEntrypoint"


# ---------------------------------------------------------------------- Invoke


async def test_runtime_crash_during_invoke_resets_and_keeps_the_sandbox(rig: Rig) -> None:
    rig.backend.runtime = exits_in_invoke(3)
    env = await rig.started()
    sandbox = rig.sandbox
    out = await rig.invoke(env)
    await rig.settle(env)
    assert out.function_error == "Unhandled"
    assert json.loads(out.payload) == {
        "errorType": "Runtime.ExitError",
        "errorMessage": "RequestId: req-1 Error: Runtime exited with error: exit status 3",
    }
    report = rig.report()
    assert (report["Status"], report["Error Type"]) == ("error", "Runtime.ExitError")
    assert env.state is EnvState.NEEDS_INIT
    assert sandbox.count("kill_all") == 1 and not sandbox.destroyed

    rig.backend.runtime = answering()
    again = await rig.invoke(env, b"2")
    await rig.settle(env)
    assert again.payload == b"2"
    assert rig.backend.sandboxes == [sandbox]
    assert len(rig.lines("INIT_START")) == 2 and "Init Duration" not in rig.report()


async def test_an_oom_kill_is_reported_as_out_of_memory(rig: Rig) -> None:
    async def hog(p: FakeProcess) -> int:
        await p.next()
        p.sandbox.memory_peak = 300 * 1024 * 1024
        p.oom()
        return 0

    rig.backend.runtime = hog
    env = await rig.started()
    out = await rig.invoke(env)
    await rig.settle(env)
    body = json.loads(out.payload)
    assert body["errorType"] == "Runtime.ExitError"
    assert body["errorMessage"].endswith("Runtime exited with error: signal: killed")
    report = rig.report()
    assert report["Error Type"] == "Runtime.OutOfMemory"
    assert report["Max Memory Used"] == "128 MB"  # capped at the memory size
    assert env.state is EnvState.NEEDS_INIT


async def test_a_handler_error_is_passed_through_without_a_reset(rig: Rig) -> None:
    async def raises(p: FakeProcess) -> int:
        while True:
            inv = await p.next()
            await p.fail(inv.request_id, "ValueError", "boom")

    rig.backend.runtime = raises
    env = await rig.started()
    out = await rig.invoke(env)
    await rig.settle(env)
    assert out.function_error == "Unhandled"
    assert json.loads(out.payload) == {"errorType": "ValueError", "errorMessage": "boom"}
    assert "Status" not in rig.report()
    assert env.state is EnvState.IDLE and rig.sandbox.count("kill_all") == 0


async def test_invoke_timeout_resets_with_the_duration_capped(rig: Rig) -> None:
    rig.backend.runtime = hangs_in_invoke()
    env = await rig.started()
    calling = asyncio.create_task(rig.invoke(env))
    await rig.backend.reached("hanging")
    await rig.clock.advance(2.999)
    assert env.state is EnvState.INVOKING
    await rig.clock.advance(0.001)
    out = await calling
    await rig.settle(env)
    assert json.loads(out.payload) == {
        "errorType": "Sandbox.Timedout",
        "errorMessage": "RequestId: req-1 Error: Task timed out after 3.00 seconds",
    }
    report = rig.report()
    assert report["Status"] == "timeout" and report["Duration"] == "3000.00 ms"
    assert "Error Type" not in report
    assert env.state is EnvState.NEEDS_INIT and rig.sandbox.count("kill_all") == 1


# ---------------------------------------------------------------------- extensions


def with_extensions(rig: Rig, **scripts: object) -> None:
    layer = extension_layer(rig.root, *scripts)
    rig.fn = replace(rig.fn, layers=(LayerRef(f"{ARN}-ext:1", 1, layer),))
    for name, script in scripts.items():
        rig.backend.extensions[name] = script  # type: ignore[assignment]


async def test_init_waits_for_extensions_and_reports_them_ready(rig: Rig) -> None:
    seen_before_register: list[list[str]] = []

    async def slow_to_register(p: FakeProcess) -> int:
        await p.request("GET", "/2018-06-01/ping")  # a round trip before registering
        seen_before_register.append(p.sandbox.live_names())
        return await extension(("INVOKE", "SHUTDOWN"))(p) or 0

    with_extensions(rig, watcher=slow_to_register)
    env = await rig.started()
    assert seen_before_register == [["watcher"]], "the runtime started before registration"
    assert env.state is EnvState.IDLE
    spawns = [op for op in rig.sandbox.ops if op[0] == "spawn"]
    # the runtime starts only once every extension registered
    assert spawns == [
        ("spawn", ProcessRole.EXTENSION, "watcher"),
        ("spawn", ProcessRole.RUNTIME, "runtime"),
    ]
    assert rig.lines("EXTENSION") == [
        "EXTENSION\tName: watcher\tState: Ready\tEvents: [INVOKE, SHUTDOWN]"
    ]


async def test_the_invoke_timeout_covers_extensions_after_the_answer(rig: Rig) -> None:
    stuck = asyncio.Event()

    async def hang_on_invoke(event: dict[str, object]) -> None:
        if event.get("eventType") == "INVOKE":
            rig.backend.mark("extension busy")
            await stuck.wait()

    with_extensions(rig, slow=extension(on_event=hang_on_invoke))
    env = await rig.started()
    out = await rig.invoke(env, b"42")
    # the caller has the runtime's answer while the extension still works
    assert out.payload == b"42" and out.function_error is None
    await rig.backend.reached("extension busy")
    assert env.state is EnvState.RESPONDED
    await rig.clock.advance(3)  # the function's timeout
    # the reset's shutdown sequence: the extension is busy, so it is killed at the budget
    await rig.clock.advance(2)
    await rig.settle(env)
    report = rig.report()
    assert report["Status"] == "timeout" and report["Duration"] == "3000.00 ms"
    assert env.state is EnvState.NEEDS_INIT


async def test_an_extension_crash_during_invoke_resets(rig: Rig) -> None:
    async def crasher(p: FakeProcess) -> int:
        await p.register()
        await p.ext_next()
        return 4

    rig.fn = function(rig.root, timeout_s=3)
    with_extensions(rig, crasher=crasher)
    # the runtime is still working when the extension dies (had it answered first, the
    # caller would have its answer and only the reset would follow)
    rig.backend.runtime = hangs_in_invoke()
    env = await rig.started()
    out = await rig.invoke(env)
    await rig.settle(env)
    assert out.function_error == "Unhandled"
    body = json.loads(out.payload)
    assert body["errorType"] == "Extension.Crash"
    assert "crasher" in body["errorMessage"] and "exit status 4" in body["errorMessage"]
    assert rig.report()["Error Type"] == "Extension.Crash"
    assert env.state is EnvState.NEEDS_INIT


async def test_an_extension_init_error_fails_init(rig: Rig) -> None:
    async def gives_up(p: FakeProcess) -> int:
        await p.register()
        await p.ext_error("init", "Extension.ConfigInvalid")
        return 1

    with_extensions(rig, picky=gives_up)
    env = await rig.started()
    assert env.state is EnvState.NEEDS_INIT
    assert rig.lines("INIT_REPORT")[0].endswith("Status: error\tError Type: Extension.InitError")


# ---------------------------------------------------------------------- shutdown


async def test_shutdown_without_extensions_kills_at_once(rig: Rig) -> None:
    env = await rig.started()
    sandbox = rig.sandbox
    await env.shutdown()
    assert env.state is EnvState.DEAD
    # thawed first, no SIGTERM, everything killed, then the sandbox destroyed
    assert sandbox.ops[-3:] == [("thaw",), ("kill_all",), ("destroy",)]
    assert [e.signal for e in sandbox.exits] == [signal.SIGKILL]


async def test_shutdown_sends_sigterm_then_shutdown_to_extensions(rig: Rig) -> None:
    seen: list[dict[str, object]] = []

    async def record(event: dict[str, object]) -> None:
        seen.append(event)

    with_extensions(rig, rec=extension(on_event=record))
    env = await rig.started()
    sandbox = rig.sandbox
    await env.shutdown("spindown")
    (event,) = seen
    assert event["eventType"] == "SHUTDOWN" and event["shutdownReason"] == "spindown"
    # the runtime gets SIGTERM (its default action ends it) before the extensions hear
    assert ("signal", "runtime", signal.SIGTERM) in sandbox.ops
    runtime_exit, ext_exit = sandbox.exits
    assert runtime_exit.signal == signal.SIGTERM
    assert ext_exit.name == "rec" and ext_exit.exit_code == 0
    assert env.state is EnvState.DEAD


async def test_an_extension_that_ignores_shutdown_is_killed_at_the_budget(rig: Rig) -> None:
    async def ignore(event: dict[str, object]) -> None:
        if event.get("eventType") == "SHUTDOWN":
            rig.backend.mark("got SHUTDOWN")
            await asyncio.Event().wait()

    with_extensions(rig, stubborn=extension(on_event=ignore))
    env = await rig.started()
    sandbox = rig.sandbox
    started = rig.clock.monotonic()
    stopping = asyncio.create_task(env.shutdown())
    await rig.backend.reached("got SHUTDOWN")
    await rig.clock.advance(1.999)
    assert sandbox.live_names() == ["stubborn"]
    await rig.clock.advance(0.001)
    await stopping
    assert rig.clock.monotonic() - started == pytest.approx(2.0)
    assert [e.signal for e in sandbox.exits if e.name == "stubborn"] == [signal.SIGKILL]


async def test_a_runtime_that_ignores_sigterm_gets_its_grace_then_sigkill(rig: Rig) -> None:
    async def stubborn_runtime(p: FakeProcess) -> int:
        def ignore() -> None:
            p.print("SIGTERM ignored")
            p.mark("SIGTERM ignored")

        p.on_sigterm = ignore
        with contextlib.suppress(AssertionError):  # its next is refused at shutdown
            while True:
                inv = await p.next()
                await p.respond(inv.request_id, b"ok")
        await asyncio.Event().wait()  # and it carries on regardless
        return 0

    rig.backend.runtime = stubborn_runtime
    with_extensions(rig, ext=extension())
    env = await rig.started()
    sandbox = rig.sandbox
    stopping = asyncio.create_task(env.shutdown())
    await rig.backend.reached("SIGTERM ignored")
    await rig.clock.advance(0.299)
    assert sandbox.live_names() == ["ext", "runtime"]
    await rig.clock.advance(0.001)  # the runtime's 300 ms
    await stopping
    assert "SIGTERM ignored" in rig.log()
    names = [op[1:] for op in sandbox.ops if op[0] == "signal"]
    assert names[:2] == [("runtime", signal.SIGTERM), ("runtime", signal.SIGKILL)]


# ---------------------------------------------------------------------- freeze


async def test_freeze_after_init_and_thaw_before_the_event(rig: Rig) -> None:
    env = await rig.started()
    sandbox = rig.sandbox
    assert env.frozen and sandbox.frozen
    await rig.invoke(env)
    await rig.settle(env)
    assert sandbox.ops[1:] == [("freeze",), ("thaw",), ("freeze",)]
    assert env.frozen


async def test_the_freeze_delay_lets_a_quick_next_invoke_skip_freeze_and_thaw(rig: Rig) -> None:
    rig.settings = replace(rig.settings, freeze_delay_s=0.01)  # the server's default
    env = await rig.started()
    sandbox = rig.sandbox
    assert not env.frozen
    for _ in range(3):
        await rig.invoke(env)
        await rig.settle(env)
    assert sandbox.count("freeze") == 0 and sandbox.count("thaw") == 0


async def test_an_idle_environment_is_frozen_after_the_freeze_delay(rig: Rig) -> None:
    rig.settings = replace(rig.settings, freeze_delay_s=0.01)
    env = await rig.started()
    await rig.invoke(env)
    await rig.settle(env)
    await rig.clock.advance(0.009)
    assert not env.frozen
    await rig.clock.advance(0.001)
    assert env.frozen
    assert rig.sandbox.ops[-1] == ("freeze",)
    await rig.invoke(env)
    assert rig.sandbox.ops[-2:] == [("freeze",), ("thaw",)]


# ---------------------------------------------------------------------- REPORT


async def test_report_fields(rig: Rig) -> None:
    env = await rig.started()
    rig.sandbox.memory_peak = 50 * 1024 * 1024 + 1
    await rig.invoke(env)
    await rig.settle(env)
    line = rig.lines("REPORT")[-1]
    assert line.endswith("\t"), "Lambda ends REPORT with a TAB"
    report = rig.report()
    assert list(report) == [
        "REPORT RequestId",
        "Duration",
        "Billed Duration",
        "Memory Size",
        "Max Memory Used",
        "Init Duration",
    ]
    duration = float(report["Duration"].removesuffix(" ms"))
    init = float(report["Init Duration"].removesuffix(" ms"))
    # the first invoke bills its Init too, rounded up to the millisecond
    billed = int(report["Billed Duration"].removesuffix(" ms"))
    # REPORT shows durations to 1/100 ms: the bill is their sum rounded up, within that
    assert duration + init - 0.01 <= billed < duration + init + 1.01
    assert report["Max Memory Used"] == "51 MB"
    assert rig.lines("START")[-1] == "START RequestId: req-1 Version: $LATEST"
    assert rig.lines("END")[-1] == "END RequestId: req-1"
    (seen,) = rig.observer.invokes
    assert seen.request_id == "req-1" and seen.max_memory_used_mb == 51 and seen.billed_ms == billed


async def test_with_internal_extensions_only_the_runtime_gets_500_ms_after_sigterm(
    rig: Rig,
) -> None:
    async def runtime_with_internal_extension(p: FakeProcess) -> int:
        def ignore() -> None:
            p.mark("SIGTERM ignored")

        p.on_sigterm = ignore
        p.name = "in-process-agent"  # registers under a name no launched file has
        await p.register(("INVOKE",))

        async def agent() -> None:  # the extension's own thread: it waits for events
            with contextlib.suppress(AssertionError):
                while True:
                    await p.ext_next()

        agent_task = asyncio.create_task(agent())
        with contextlib.suppress(AssertionError):  # its next is refused at shutdown
            while True:
                inv = await p.next()
                await p.respond(inv.request_id, b"ok")
        try:
            await asyncio.Event().wait()
        finally:
            agent_task.cancel()
        return 0

    rig.backend.runtime = runtime_with_internal_extension
    env = await rig.started()
    assert [e.name for e in env.extensions.registered()] == ["in-process-agent"]
    sandbox = rig.sandbox
    stopping = asyncio.create_task(env.shutdown())
    await rig.backend.reached("SIGTERM ignored")
    await rig.clock.advance(0.499)
    assert sandbox.live_names() == ["in-process-agent"]
    await rig.clock.advance(0.001)
    await stopping
    signals = [op[2] for op in sandbox.ops if op[0] == "signal"]
    assert signals == [signal.SIGTERM, signal.SIGKILL]
