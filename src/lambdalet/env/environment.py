"""One execution environment: a sandbox, its in-sandbox API server and its lifecycle.

The lifecycle decisions are the transition table in ``lifecycle``; this class
does the I/O each state calls for (spawn, freeze, thaw, kill, log) and turns
what the runtime and the sandbox report into lifecycle events.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import secrets
import signal
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from lambdalet.clock import Clock, Handle
from lambdalet.env import extensions as ext_protocol
from lambdalet.env import log_lines
from lambdalet.env import rapi_protocol as rp
from lambdalet.env import telemetry_protocol as tp
from lambdalet.env.debug import DEBUG_TIMEOUT_S, PortForward
from lambdalet.env.extensions import Extensions, external_extensions
from lambdalet.env.extensions_api import add_routes as add_extension_routes
from lambdalet.env.launch import Launcher, LaunchPlan, RuntimeMounts
from lambdalet.env.lifecycle import (
    EnvEvent,
    EnvState,
    ExtensionEvent,
    ExtensionState,
    RuntimeEvent,
    RuntimeState,
    env_machine,
    runtime_machine,
)
from lambdalet.env.log_sink import FunctionLog, LogStream
from lambdalet.env.mailbox import Mailbox
from lambdalet.env.observer import EnvObserver, InitReport, InvokeReport
from lambdalet.env.outcome import InvokeOutcome, function_error_type
from lambdalet.env.rapi_protocol import RapiRefused
from lambdalet.env.runtime_api import InSandboxServer, build_app
from lambdalet.env.telemetry import TelemetryHub
from lambdalet.env.telemetry_protocol import iso_time
from lambdalet.model import FunctionRecord, InvokeInput, InvokeOutput
from lambdalet.runtimes.envvars import log_stream_name
from lambdalet.sandbox.base import (
    ProcessExit,
    ProcessRole,
    Sandbox,
    SandboxBackend,
    SandboxSpec,
    SpawnError,
)
from lambdalet.streaming import ResponseStream

log = logging.getLogger(__name__)

MIB = 1024 * 1024
#: how many lifecycle events an environment remembers for the dashboard
TIMELINE_LENGTH = 200
#: the longest one teardown step (server close, sandbox destroy) may take
RELEASE_STEP_TIMEOUT_S = 20.0


@dataclass(frozen=True)
class EnvSettings:
    init_timeout_s: float = 10.0
    bill_init: bool = True
    init_type: str = "on-demand"
    #: how long an environment that finished an invoke stays thawed before it is frozen
    #: (0: at once).  An invoke that arrives within it skips a freeze and a thaw, two
    #: cgroup writes that cost ~15 % of a warm invoke (docs/performance.md).
    freeze_delay_s: float = 0.0
    #: the runtime waits for a debugger on this port (env/debug.py); Init and invokes may
    #: then take up to DEBUG_TIMEOUT_S
    debug_port: int | None = None


@dataclass
class _Answer:
    kind: Literal["response", "error", "too_large", "crash", "init_error", "ext_error"]
    body: bytes = b""
    content_type: str | None = None
    error_type: str | None = None
    exit: ProcessExit | None = None
    #: bytes the runtime produced when they were not all kept in ``body`` (streamed)
    produced: int | None = None


@dataclass(frozen=True)
class _InitResult:
    ok: bool
    duration_ms: float
    status: str = "success"  # success | error | timeout
    error_type: str | None = None
    #: what a caller gets when this init ran inside its invoke and failed
    caller_body: bytes = b""


#: Content-Type of a streamed response whose runtime named none (Node's default)
STREAM_CONTENT_TYPE = "application/octet-stream"


class StreamedAnswer:
    """A response the runtime streams (``Lambda-Runtime-Function-Response-Mode: streaming``).

    Chunks go to the streaming caller as they arrive; without one (a buffered Invoke of
    a streaming function) they are kept, up to the buffered limit, for the reply.  The
    answer is delivered when the body ends, with the error of its trailers if any.
    """

    def __init__(
        self,
        deliver: Callable[[_Answer], None],
        caller: ResponseStream | None,
        content_type: str | None,
    ) -> None:
        self._deliver = deliver
        self._caller = caller
        self._content_type = content_type
        self._kept: list[bytes] = []
        self._too_large = False
        self.size = 0

    def write(self, chunk: bytes) -> None:
        self.size += len(chunk)
        if self._caller is not None:
            self._caller.push(chunk)
        elif not self._too_large:
            if self.size > rp.MAX_RESPONSE_BYTES:
                self._too_large = True
                self._kept.clear()
            else:
                self._kept.append(chunk)

    async def room(self) -> None:
        if self._caller is not None:
            await self._caller.room()

    def end(self, error_type: str | None, error_body: bytes | None) -> None:
        if error_type or error_body:
            body = rp.caller_error_body(error_body or b"", None, error_type)
            self._deliver(
                _Answer(
                    "error",
                    body=body,
                    error_type=rp.internal_error_type(error_type),
                    produced=self.size,
                )
            )
        elif self._too_large:
            self._deliver(_Answer("too_large", produced=self.size))
        else:
            self._deliver(
                _Answer(
                    "response",
                    body=b"".join(self._kept),
                    content_type=self._content_type,
                    produced=self.size,
                )
            )


async def _let_output_arrive() -> None:
    """Let the loop read what the runtime wrote before it called next.

    Its output pipes are read by loop callbacks; the first yield lets the
    current batch of ready callbacks run, the second runs after a fresh poll,
    so every byte written before the runtime's last request is in the log
    before END and REPORT.
    """
    await asyncio.sleep(0)
    await asyncio.sleep(0)


def new_trace_id(now: float) -> str:
    return f"Root=1-{int(now):08x}-{secrets.token_hex(12)};Parent={secrets.token_hex(8)};Sampled=0"


class Environment:
    """Owns one sandbox for its whole life.  One invoke at a time."""

    def __init__(
        self,
        *,
        env_id: str,
        function: FunctionRecord,
        backend: SandboxBackend,
        launcher: Launcher,
        function_log: FunctionLog,
        clock: Clock,
        settings: EnvSettings,
        on_settled: Callable[[Environment], None] | None = None,
        observer: EnvObserver | None = None,
    ) -> None:
        self.env_id = env_id
        self.function = function
        self._backend = backend
        self._launcher = launcher
        self._clock = clock
        self._settings = settings
        self._on_settled = on_settled
        self._observer = observer
        self.machine = env_machine()
        self.runtime = runtime_machine()
        self.extensions = Extensions()
        self.log_stream_name = log_stream_name(
            function.version, now=datetime.fromtimestamp(clock.wall(), UTC)
        )
        self.stream = LogStream(function_log, self.log_stream_name, clock.wall)
        self.created_at = clock.wall()
        self.invocations = 0

        self._sandbox: Sandbox | None = None
        self._server: InSandboxServer | None = None
        self._mounts: RuntimeMounts | None = None
        self._plan: LaunchPlan | None = None
        self._ext_env: Mapping[str, str] = {}
        self.telemetry: TelemetryHub | None = None
        self._runtime_pid: int | None = None
        #: a future per live process, resolved when it exits (for the shutdown sequence)
        self._exits: dict[int, asyncio.Future[ProcessExit]] = {}
        self._oom_seen = 0
        # the runtime's pending next, the event it holds, and what the platform waits for
        self._runtime_mailbox: Mailbox[rp.Event] = Mailbox()
        self._current: rp.Event | None = None
        #: gates: resolved with None when open, or with the failure that broke them
        self._registered_gate: asyncio.Future[_Answer | None] | None = None
        self._init_gate: asyncio.Future[_Answer | None] | None = None
        self._answer: asyncio.Future[_Answer] | None = None
        #: where the current invoke's streamed response goes (a streaming caller), if anywhere
        self._caller_stream: ResponseStream | None = None
        self._done_gate: asyncio.Future[_Answer | None] | None = None
        self._init_error: _Answer | None = None
        self._runtime_done_at: float | None = None
        #: when the runtime's answer began to arrive and when it was complete (monotonic)
        self._answer_started_at: float | None = None
        self._answer_done_at: float | None = None
        #: Init Duration to show on the first invoke's REPORT after a successful Init phase
        self._unreported_init_ms: float | None = None
        self._task: asyncio.Task[None] | None = None
        self.frozen = False
        self._freeze_timer: Handle | None = None
        self._function_init_marked = False
        self._debug_forward: PortForward | None = None
        #: what happened to this environment, for the dashboard: (epoch s, event, detail)
        self.timeline: deque[tuple[float, str, str]] = deque(maxlen=TIMELINE_LENGTH)

    def __repr__(self) -> str:
        fn = self.function
        return f"<Environment {self.env_id} {fn.name}:{fn.version} {self.state.value}>"

    @property
    def state(self) -> EnvState:
        return self.machine.state

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Build the sandbox and run the Init phase (at most ``init_timeout_s``).

        A failed Init leaves the environment in ``NeedsInit``: the first invoke
        re-runs Init inside itself, as Lambda does.
        """
        self._mounts = await self._launcher.mounts(self.function)
        spec = SandboxSpec(
            env_id=self.env_id,
            memory_mb=self.function.memory_mb,
            ephemeral_mb=self.function.ephemeral_mb,
            code_dir=self.function.code_dir,
            layer_dirs=tuple(layer.code_dir for layer in self.function.layers),
            runtime_dir=self._mounts.runtime_dir,
            lang_dir=self._mounts.lang_dir,
            lang_layers=tuple(self._mounts.lang_layers),
            image_rootfs=self._mounts.image_rootfs,
        )
        try:
            self._sandbox = await self._backend.create(spec, self._on_log, self._on_exit)
            app = build_app(self)
            add_extension_routes(app, self)
            self._server = InSandboxServer(app, self._sandbox.runtime_api_socket)
            await self._server.start()
        except BaseException:
            self.machine.fire(EnvEvent.SHUTDOWN)
            await self._release()
            raise
        sandbox = self._sandbox
        view = sandbox.view
        self.telemetry = TelemetryHub(
            view.runtime_api.rpartition(":")[0], sandbox.socket_inside, self._clock
        )
        self._plan = self._launcher.plan(
            self.function, view, self.log_stream_name, self._settings.init_type
        )
        self._ext_env = self._launcher.extension_env(self.function, view, self._settings.init_type)
        if self._settings.debug_port is not None:
            await self._start_debugging(self._settings.debug_port)
        deadline = self._clock.monotonic() + self._settings.init_timeout_s
        result = await self._init("init", deadline)
        if result.ok:
            if self._settings.init_type == "on-demand":
                self._unreported_init_ms = result.duration_ms
            self._freeze_soon()

    async def invoke(self, request: InvokeInput) -> InvokeOutput:
        """Run one invocation; returns as soon as the caller's answer is known."""
        if self.state not in (EnvState.IDLE, EnvState.NEEDS_INIT):
            raise RuntimeError(f"{self!r} cannot take an invoke")
        caller: asyncio.Future[InvokeOutput] = asyncio.get_running_loop().create_future()
        self._task = asyncio.create_task(self._run_invoke(request, caller))
        return await caller

    async def shutdown(self, reason: str = "spindown") -> None:
        """Shutdown phase: SHUTDOWN to extensions within the budget, then everything killed."""
        if self.state in (EnvState.DEAD, EnvState.SHUTTING_DOWN):
            return
        self.machine.fire(EnvEvent.SHUTDOWN)
        self._mark("shutdown_start", f"reason={reason}")
        log.debug("%r shutting down (%s)", self, reason)
        if self._task is not None and not self._task.done():
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        if self._sandbox is not None:
            with contextlib.suppress(Exception):
                await self._stop_processes(reason)
        await self._release()

    async def _start_debugging(self, port: int) -> None:
        """The runtime will wait for a debugger on ``port``, reachable on the host's loopback."""
        assert self._sandbox is not None and self._plan is not None
        self._plan = await self._launcher.with_debugger(
            self._plan, self.function, self._sandbox.view, port
        )
        self.stream.line(
            f"lambdalet: the runtime waits for a debugger on 127.0.0.1:{port} "
            f"(Init and invokes may take {DEBUG_TIMEOUT_S:.0f} s)"
        )
        if self._backend.info().network == "namespace":
            forward = PortForward(port, self._sandbox.socket_inside)
            try:
                await forward.start()
            except OSError as e:
                self.stream.line(f"lambdalet: cannot forward debugger port {port}: {e}")
                return
            self._debug_forward = forward

    async def _release(self) -> None:
        if self._debug_forward is not None:
            await self._debug_forward.close()
            self._debug_forward = None
        self._cancel_freeze()
        self._fail_waiters()
        self.extensions.cancel_waiters()
        if self.telemetry is not None:
            await self.telemetry.reset()
        if self._server is not None:
            with contextlib.suppress(Exception):
                async with self._clock.timeout(RELEASE_STEP_TIMEOUT_S):
                    await self._server.close()
            self._server = None
        if self._sandbox is not None:
            try:
                async with self._clock.timeout(RELEASE_STEP_TIMEOUT_S):
                    await self._sandbox.destroy()
            except Exception:
                # a stuck teardown must not stop the server from shutting down;
                # what it left behind is swept at the next start
                log.exception("destroying sandbox of %r", self)
            self._sandbox = None
        if self.state is EnvState.SHUTTING_DOWN:
            self.machine.fire(EnvEvent.SHUTDOWN_DONE)
            self._mark("shutdown_done")

    # ------------------------------------------------------------------ init

    def _mark(self, event: str, detail: str = "") -> None:
        self.timeline.append((self._clock.wall(), event, detail))

    def _emit(self, type_: str, record: Mapping[str, object]) -> None:
        if self.telemetry is not None:
            self.telemetry.emit(type_, record)

    def _listening(self) -> bool:
        """True when a telemetry record would go anywhere (a subscriber, or Init's backlog).

        The invoke path builds its larger records (spans, timestamps) only then.
        """
        return self.telemetry is not None and self.telemetry.active

    async def _init(self, phase: str, deadline: float, request_id: str = "") -> _InitResult:
        assert self._sandbox is not None and self._plan is not None and self._mounts is not None
        fn = self.function
        self.machine.fire(EnvEvent.INIT)
        self._function_init_marked = False
        self._mark("init_start", f"phase={phase}")
        started = self._clock.monotonic()
        self.stream.line(
            log_lines.init_start(self._mounts.runtime_version, self._mounts.runtime_version_arn)
        )
        for note in self._mounts.notes:
            self.stream.line(note)
        init_type = self._settings.init_type
        self._emit(
            "platform.initStart",
            {
                "initializationType": init_type,
                "phase": phase,
                "functionName": fn.name,
                "functionVersion": fn.version,
                "instanceId": self.log_stream_name,
                "instanceMaxMemory": fn.memory_mb,
                "runtimeVersion": self._mounts.runtime_version,
                "runtimeVersionArn": self._mounts.runtime_version_arn,
            },
        )
        self.runtime = runtime_machine()
        self.extensions = Extensions()
        self._init_error = None
        loop = asyncio.get_running_loop()
        self._registered_gate = loop.create_future()
        self._init_gate = loop.create_future()
        failure: _Answer | None = None
        timed_out = False
        try:
            async with self._clock.timeout_at(deadline):
                failure = await self._launch_extensions(request_id)
                if failure is None and self.extensions.unregistered():
                    # extension init: the runtime starts only once every extension registered
                    failure = await self._registered_gate
                if failure is None:
                    # the end of Extension init; Runtime and Function init follow
                    self._mark("runtime_start")
                    failure = await self._start_runtime(request_id)
                if failure is None:
                    self._check_gates()
                    failure = await self._init_gate
        except TimeoutError:
            timed_out = True
        self._registered_gate = self._init_gate = None
        duration_ms = (self._clock.monotonic() - started) * 1000.0
        if failure is None and not timed_out:
            self.machine.fire(EnvEvent.INIT_DONE)
            self._init_done(phase, duration_ms)
            self._observe_init(phase, duration_ms, "success")
            self._mark("init_done", f"phase={phase}")
            return _InitResult(True, duration_ms)

        if timed_out:
            status, error_type, body = "timeout", "Runtime.Unknown", b""
            self.machine.fire(EnvEvent.TIMEOUT)
        else:
            assert failure is not None
            status = "error"
            error_type, body = self._init_failure_details(failure, request_id)
            self.machine.fire(EnvEvent.INIT_FAILED)
        self.stream.line(log_lines.init_report(duration_ms, phase, status, error_type))
        self._observe_init(phase, duration_ms, status)
        self._mark("init_failed", f"status={status}")
        record: dict[str, object] = {
            "initializationType": init_type,
            "phase": phase,
            "status": status,
            "errorType": error_type,
        }
        self._emit("platform.initRuntimeDone", record)
        self._emit("platform.initReport", {**record, "metrics": {"durationMs": duration_ms}})
        await self._reset("timeout" if timed_out else "failure")
        return _InitResult(False, duration_ms, status, error_type, body)

    def _observe_init(self, phase: str, duration_ms: float, status: str) -> None:
        if self._observer is not None:
            fn = self.function
            self._observer.init_reported(
                InitReport(
                    fn.name, fn.version, phase, self._settings.init_type, duration_ms, status
                )
            )

    async def _launch_extensions(self, request_id: str) -> _Answer | None:
        """Start every file in /opt/extensions, all at once, each in its own process group."""
        assert self._sandbox is not None
        view = self._sandbox.view
        if self._mounts is not None and self._mounts.image_rootfs is not None:
            # an image brings its extensions in its own /opt/extensions
            found = external_extensions([self._mounts.image_rootfs / "opt"])
        else:
            found = external_extensions([layer.code_dir for layer in self.function.layers])
        for name in found:
            try:
                pid = await self._sandbox.spawn(
                    ProcessRole.EXTENSION,
                    name,
                    [f"{view.opt_dir}/extensions/{name}"],
                    self._ext_env,
                    "/",
                )
            except SpawnError as e:
                return _Answer(
                    "crash",
                    error_type="Extension.LaunchError",
                    body=rp.function_error(
                        "Extension.LaunchError", request_id, f"extension {name}: {e}"
                    ),
                )
            self._track(pid)
            self.extensions.launch(name, pid)
        return None

    async def _start_runtime(self, request_id: str) -> _Answer | None:
        assert self._sandbox is not None and self._plan is not None
        if self._plan.entrypoint_error is not None:
            etype, detail = self._plan.entrypoint_error
            return _Answer(
                "crash", error_type=etype, body=rp.function_error(etype, request_id, detail)
            )
        try:
            pid = await self._sandbox.spawn(
                ProcessRole.RUNTIME, "runtime", self._plan.argv, self._plan.env, self._plan.cwd
            )
        except SpawnError as e:
            return _Answer(
                "crash",
                error_type="Runtime.InvalidEntrypoint",
                body=rp.function_error("Runtime.InvalidEntrypoint", request_id, str(e)),
            )
        self._runtime_pid = pid
        self._track(pid)
        return None

    def _init_done(self, phase: str, duration_ms: float) -> None:
        init_type = self._settings.init_type
        if init_type != "on-demand":
            # initialized ahead of time: its Init is reported on its own, never on a REPORT
            self.stream.line(log_lines.init_report(duration_ms, phase, "success", None))
        self.extensions.registration_open = False
        for ext in self.extensions.registered():
            self.stream.line(log_lines.extension(ext.name, "Ready", ext.events))
            self._emit(
                "platform.extension",
                {"name": ext.name, "state": "Ready", "events": list(ext.events)},
            )
        done = {"initializationType": init_type, "phase": phase, "status": "success"}
        self._emit("platform.initRuntimeDone", done)
        self._emit("platform.initReport", {**done, "metrics": {"durationMs": duration_ms}})
        if self.telemetry is not None:
            self.telemetry.close_subscriptions()

    def _init_failure_details(self, failure: _Answer, request_id: str) -> tuple[str, bytes]:
        """(errorType for logs, body for a caller) of a failed Init."""
        if self._init_error is not None:
            posted = self._init_error
            etype = rp.internal_error_type(posted.error_type)
            if posted.error_type and etype == "Runtime.Unknown":
                etype = posted.error_type
            return etype, rp.caller_error_body(posted.body, posted.content_type, posted.error_type)
        if failure.kind == "ext_error":
            etype = failure.error_type or "Extension.InitError"
            detail = failure.body.decode(errors="replace")
            return etype, rp.function_error(etype, request_id, detail)
        if failure.kind == "crash" and failure.exit is not None:
            if failure.exit.role is ProcessRole.EXTENSION:
                detail = f"exit code {failure.exit.describe()}"
                return "Extension.Crash", rp.function_error("Extension.Crash", request_id, detail)
            etype = self._exit_error_type(failure.exit)
            return etype, rp.exit_error(request_id, failure.exit.describe())
        return failure.error_type or "Runtime.Unknown", failure.body

    # ------------------------------------------------------------------ invoke

    async def _run_invoke(self, request: InvokeInput, caller: asyncio.Future[InvokeOutput]) -> None:
        try:
            await self._invoke_phase(request, caller)
        except asyncio.CancelledError:
            if not caller.done():
                caller.set_exception(RuntimeError("environment shut down during the invoke"))
            raise
        except Exception as e:
            log.exception("invoke on %r failed", self)
            if not caller.done():
                caller.set_exception(e)
            if self.state not in (EnvState.SHUTTING_DOWN, EnvState.DEAD):
                await self.shutdown("failure")
        finally:
            self.invocations += 1
            if self._on_settled is not None:
                self._on_settled(self)

    async def _invoke_phase(
        self, request: InvokeInput, caller: asyncio.Future[InvokeOutput]
    ) -> None:
        assert self._sandbox is not None
        fn = self.function
        rid = request.request_id
        started = self._clock.monotonic()
        timeout_s = DEBUG_TIMEOUT_S if self._settings.debug_port is not None else fn.timeout_s
        deadline = started + timeout_s
        deadline_ms = int((self._clock.wall() + timeout_s) * 1000)
        trace_id = request.trace_id or new_trace_id(self._clock.wall())
        if request.log_tail:
            self.stream.start_capture()

        def answer(payload: bytes, error: str | None) -> None:
            if not caller.done() and not request.log_tail:
                caller.set_result(
                    InvokeOutput(payload=payload, executed_version=fn.version, function_error=error)
                )

        init_ms = self._unreported_init_ms
        self._unreported_init_ms = None
        #: an Init that ran as part of this invoke makes it a cold start, shown with its time
        cold_init_ms = init_ms
        if self.state is EnvState.NEEDS_INIT:
            # suppressed init: runs inside this invoke, on this invoke's clock
            self._thaw()
            result = await self._init("invoke", deadline, rid)
            cold_init_ms = result.duration_ms
            if not result.ok:
                self.stream.line(log_lines.start(rid, fn.version))
                if result.status == "timeout":
                    payload = rp.timed_out(rid, timeout_s)
                else:
                    payload = result.caller_body or rp.unknown_error(rid)
                self._finish_report(
                    request,
                    caller,
                    started,
                    None,
                    InvokeOutcome.init_failure(result.status, result.error_type),
                    payload,
                    "Unhandled",
                    trace_id,
                    cap=result.status == "timeout",
                    cold_init_ms=cold_init_ms,
                )
                return

        self.machine.fire(EnvEvent.INVOKE)
        self._thaw()
        self._mark("invoke_start", rid)
        self.stream.line(log_lines.start(rid, fn.version))
        tracing = {"type": "X-Amzn-Trace-Id", "value": trace_id}
        self._emit("platform.start", {"requestId": rid, "version": fn.version, "tracing": tracing})
        event = rp.Event(
            request_id=rid,
            payload=request.payload,
            deadline_ms=deadline_ms,
            invoked_function_arn=request.invoked_arn,
            trace_id=trace_id,
            client_context=request.client_context,
        )
        loop = asyncio.get_running_loop()
        self._answer = loop.create_future()
        self._caller_stream = request.stream
        self._done_gate = None
        self._runtime_done_at = self._answer_started_at = self._answer_done_at = None
        released = self._clock.monotonic()
        released_wall = self._clock.wall()
        invoke_event = ext_protocol.invoke_event(rid, deadline_ms, request.invoked_arn, trace_id)
        for ext in self.extensions.registered():
            if ext.subscribed("INVOKE") and ext.alive:
                self.extensions.deliver(ext, invoke_event)
        self._release_event(event)

        reply: tuple[bytes, str | None] | None = None
        outcome = InvokeOutcome.success()
        failure: EnvEvent | None = None
        reason = "failure"
        produced = 0
        try:
            async with self._clock.timeout_at(deadline):
                got = await self._answer
                if got.kind in ("crash", "ext_error"):
                    reply = (self._crash_body(got, rid), "Unhandled")
                    outcome, failure = InvokeOutcome.crash(self._crash_type(got)), EnvEvent.CRASH
                else:
                    self.machine.fire(EnvEvent.RESPONSE)
                    reply = self._reply_for(got)
                    produced = len(got.body) if got.produced is None else got.produced
                    answer(*reply)
                    if got.kind == "too_large":
                        outcome = InvokeOutcome.platform_error("Function.ResponseSizeTooLarge")
                    elif got.kind == "error":
                        outcome = InvokeOutcome.function_error(
                            function_error_type(got.body, got.error_type)
                        )
                    # the invoke phase lasts until the runtime and every INVOKE extension
                    # ask for their next event
                    self._done_gate = loop.create_future()
                    self._check_gates()
                    after = await self._done_gate
                    if after is not None:
                        # a process died after the answer: the caller keeps the answer
                        if outcome.report_status is None:
                            outcome = InvokeOutcome.crash(self._crash_type(after))
                        failure = EnvEvent.CRASH
        except TimeoutError:
            reply = reply or (rp.timed_out(rid, timeout_s), "Unhandled")
            outcome, failure = InvokeOutcome.timeout(), EnvEvent.TIMEOUT
            reason = "timeout"

        assert reply is not None
        await _let_output_arrive()
        reset_first = failure is not None and not self.extensions.registered()
        if reset_first:
            # no extensions: the reset is an immediate kill (0 ms budget), so it is over
            # before the caller hears of the failure and the next invoke finds this
            # environment (and its /tmp) ready
            assert failure is not None
            self.machine.fire(failure)
            await self._reset(reason)
        runtime_done = self._runtime_done_at or self._clock.monotonic()
        if self._listening():
            self._emit(
                "platform.runtimeDone",
                {
                    "requestId": rid,
                    "status": _telemetry_status(outcome),
                    **(
                        {"errorType": outcome.error_type}
                        if outcome.error_type and outcome.report_status
                        else {}
                    ),
                    "metrics": {
                        "durationMs": round((runtime_done - released) * 1000.0, 3),
                        "producedBytes": produced,
                    },
                    "spans": self._runtime_spans(released, released_wall, runtime_done),
                    "tracing": tracing,
                },
            )
        self._finish_report(
            request,
            caller,
            started,
            init_ms,
            outcome,
            reply[0],
            reply[1],
            trace_id,
            cap=outcome.report_status == "timeout",
            cold_init_ms=cold_init_ms,
            extension_overhead_ms=(
                max(0.0, (self._clock.monotonic() - runtime_done) * 1000.0)
                if self._runtime_done_at is not None
                else None
            ),
        )
        if failure is not None:
            if not reset_first:
                self.machine.fire(failure)
                await self._reset(reason)
        else:
            self.machine.fire(EnvEvent.INVOKE_DONE)
            self._freeze_soon()

    def _runtime_spans(
        self, released: float, released_wall: float, runtime_done: float
    ) -> list[dict[str, object]]:
        """responseLatency, responseDuration, runtimeOverhead of platform.runtimeDone."""
        started, done = self._answer_started_at, self._answer_done_at
        if started is None or done is None:
            return []

        def span(name: str, a: float, b: float) -> dict[str, object]:
            return {
                "name": name,
                "start": iso_time(released_wall + (a - released)),
                "durationMs": round(max(0.0, b - a) * 1000.0, 3),
            }

        return [
            span("responseLatency", released, started),
            span("responseDuration", started, done),
            span("runtimeOverhead", done, max(done, runtime_done)),
        ]

    @staticmethod
    def _reply_for(got: _Answer) -> tuple[bytes, str | None]:
        if got.kind == "response":
            return got.body, None
        if got.kind == "error":
            return got.body, "Unhandled"
        return rp.response_too_large(), "Unhandled"

    def _crash_type(self, got: _Answer) -> str:
        if got.kind == "ext_error":
            return got.error_type or "Extension.ExitError"
        if got.exit is not None and got.exit.role is ProcessRole.EXTENSION:
            return "Extension.Crash"
        return self._exit_error_type(got.exit)

    def _crash_body(self, got: _Answer, request_id: str) -> bytes:
        if got.kind == "ext_error":
            return rp.function_error(
                "Extension.ExitError", request_id, got.body.decode(errors="replace")
            )
        assert got.exit is not None
        if got.exit.role is ProcessRole.EXTENSION:
            return rp.function_error(
                "Extension.Crash",
                request_id,
                f"Extension {got.exit.name} exited with error: {got.exit.describe()}",
            )
        return rp.exit_error(request_id, got.exit.describe())

    def _finish_report(
        self,
        request: InvokeInput,
        caller: asyncio.Future[InvokeOutput],
        started: float,
        init_ms: float | None,
        outcome: InvokeOutcome,
        payload: bytes,
        function_error: str | None,
        trace_id: str,
        *,
        cap: bool = False,
        extension_overhead_ms: float | None = None,
        cold_init_ms: float | None = None,
    ) -> None:
        """END and REPORT, telemetry's platform.report, the observers.  ``init_ms`` is the
        REPORT's Init Duration; ``cold_init_ms`` the Init this invoke began with (also an
        Init that ran inside it, failed or not), for the views that show cold starts."""
        status, error_type = outcome.report_status, outcome.report_error_type
        fn = self.function
        duration_ms = (self._clock.monotonic() - started) * 1000.0
        if cap:
            duration_ms = min(duration_ms, fn.timeout_s * 1000.0)
        assert self._sandbox is not None
        used_mb = min(math.ceil(self._sandbox.memory_peak_bytes() / MIB), fn.memory_mb)
        billed = log_lines.billed_ms(duration_ms, init_ms, self._settings.bill_init)
        self._mark("invoke_end", f"status={outcome.kind.value}")
        self._emit("platform.end", {"requestId": request.request_id})
        # END and REPORT in one write: one system call less per invoke
        self.stream.lines(
            log_lines.end(request.request_id),
            log_lines.Report(
                request_id=request.request_id,
                duration_ms=duration_ms,
                billed_ms=billed,
                memory_mb=fn.memory_mb,
                max_memory_used_mb=used_mb,
                init_duration_ms=init_ms,
                status=status,
                error_type=error_type,
            ).line(),
        )
        if self._listening():
            metrics: dict[str, object] = {
                "durationMs": round(duration_ms, 3),
                "billedDurationMs": billed,
                "memorySizeMB": fn.memory_mb,
                "maxMemoryUsedMB": used_mb,
            }
            if init_ms is not None:
                metrics["initDurationMs"] = round(init_ms, 3)
            report: dict[str, object] = {
                "requestId": request.request_id,
                "status": _telemetry_status(outcome),
                "metrics": metrics,
                "tracing": {"type": "X-Amzn-Trace-Id", "value": trace_id},
            }
            if status is not None and error_type:
                report["errorType"] = error_type
            if extension_overhead_ms is not None:
                report["spans"] = [
                    {
                        "name": "extensionOverhead",
                        "start": iso_time(self._clock.wall() - extension_overhead_ms / 1000.0),
                        "durationMs": round(extension_overhead_ms, 3),
                    }
                ]
            self._emit("platform.report", report)
        if self._observer is not None:
            self._observer.invoke_reported(
                InvokeReport(
                    fn.name,
                    fn.version,
                    duration_ms,
                    cold_init_ms,
                    outcome,
                    used_mb,
                    request_id=request.request_id,
                    env_id=self.env_id,
                    billed_ms=billed,
                    time=self._clock.wall(),
                    function_error=function_error,
                    log_stream=self.log_stream_name,
                )
            )
        if caller.done():
            return
        tail = self.stream.stop_capture() if request.log_tail else None
        caller.set_result(
            InvokeOutput(
                payload=payload,
                executed_version=fn.version,
                function_error=function_error,
                log_result=tail,
            )
        )

    # ------------------------------------------------------------------ reset and shutdown

    async def _reset(self, reason: str) -> None:
        """Shutdown sequence for a reset: every process goes; the sandbox and /tmp stay."""
        self._mark("reset", f"reason={reason}")
        await self._stop_processes(reason)
        self.machine.fire(EnvEvent.RESET_DONE)
        if self._sandbox is not None:
            await self._sandbox.prepare_restart()

    async def _stop_processes(self, reason: str) -> None:
        """The Shutdown phase's sequence (contract §2.9), ending with nothing running.

        No extensions: everything is killed at once.  Internal extensions only:
        the runtime gets SIGTERM and 500 ms.  External extensions: SIGTERM and
        300 ms for the runtime, then SHUTDOWN to subscribed extensions, the rest
        of 2,000 ms for them to exit, then SIGKILL.
        """
        assert self._sandbox is not None
        sandbox = self._sandbox
        self._fail_waiters()
        self._thaw()
        externals = [e for e in self.extensions.external() if e.alive and e.pid is not None]
        internal = self.extensions.has_internal()
        if externals or internal:
            budget = 2.0 if externals else 0.5
            runtime_grace = 0.5 if internal else 0.3
            started = self._clock.monotonic()
            deadline_ms = int((self._clock.wall() + budget) * 1000)
            pid = self._runtime_pid
            if pid is not None and pid in self._exits:
                await sandbox.signal(pid, signal.SIGTERM)
                await _wait_for(self._clock, self._exits[pid], runtime_grace)
                await sandbox.signal(pid, signal.SIGKILL)
            if externals:
                if self.telemetry is not None:
                    # the last batches (this invoke's report) go out before SHUTDOWN
                    await self.telemetry.flush(min(0.3, budget / 4))
                shutdown = ext_protocol.shutdown_event(reason, deadline_ms)
                waiting = []
                for ext in externals:
                    assert ext.pid is not None
                    if ext.subscribed("SHUTDOWN") and ext.state is not ExtensionState.LAUNCHED:
                        self.extensions.deliver(ext, shutdown)
                        if ext.pid in self._exits:
                            waiting.append(self._exits[ext.pid])
                    else:
                        await sandbox.signal(ext.pid, signal.SIGKILL)
                remaining = budget - (self._clock.monotonic() - started)
                if waiting and remaining > 0:
                    await _wait_for(
                        self._clock, asyncio.gather(*waiting, return_exceptions=True), remaining
                    )
        self.extensions.cancel_waiters()
        await sandbox.kill_all()
        self._runtime_pid = None
        self._current = None
        self._exits.clear()
        if self.telemetry is not None:
            await self.telemetry.reset()

    def _exit_error_type(self, exit: ProcessExit | None) -> str:
        if self._sandbox is not None:
            ooms = self._sandbox.oom_kills()
            if ooms > self._oom_seen:
                self._oom_seen = ooms
                return "Runtime.OutOfMemory"
        return "Runtime.ExitError"

    # ------------------------------------------------------------------ freeze

    def _freeze_soon(self) -> None:
        """Freeze now, or after ``freeze_delay_s`` unless an invoke takes the environment."""
        delay = self._settings.freeze_delay_s
        if delay <= 0:
            self._freeze()
        elif self._freeze_timer is None:
            self._freeze_timer = self._clock.call_later(delay, self._freeze_idle)

    def _freeze_idle(self) -> None:
        self._freeze_timer = None
        if self.state is EnvState.IDLE:
            self._freeze()

    def _cancel_freeze(self) -> None:
        if self._freeze_timer is not None:
            self._freeze_timer.cancel()
            self._freeze_timer = None

    def _freeze(self) -> None:
        self._cancel_freeze()
        if self._sandbox is not None and not self.frozen:
            if self.telemetry is not None:
                self.telemetry.pause()
            self._sandbox.freeze()
            self.frozen = True
            self._mark("frozen")

    def _thaw(self) -> None:
        self._cancel_freeze()
        if self._sandbox is not None and self.frozen:
            self._sandbox.thaw()
            self.frozen = False
            self._mark("thawed")
            if self.telemetry is not None:
                self.telemetry.resume()

    # ------------------------------------------------------------------ gates

    def _check_gates(self) -> None:
        """Open the Init gate or the invoke-done gate when every participant called next."""
        exts = self.extensions
        runtime_waits = self.runtime.state is RuntimeState.READY
        gate = self._registered_gate
        if gate is not None and not gate.done() and not exts.unregistered():
            gate.set_result(None)
        gate = self._init_gate
        if (
            gate is not None
            and not gate.done()
            and runtime_waits
            and not exts.unregistered()
            and exts.all_ready()
        ):
            gate.set_result(None)
        gate = self._done_gate
        if gate is not None and not gate.done() and runtime_waits and exts.all_ready("INVOKE"):
            gate.set_result(None)

    def _break_gates(self, failure: _Answer) -> None:
        """A participant failed: whoever the platform is waiting for learns it."""
        for fut in (self._registered_gate, self._init_gate, self._answer, self._done_gate):
            if fut is not None and not fut.done():
                fut.set_result(failure)
                return

    # ------------------------------------------------------------------ sandbox callbacks

    def _track(self, pid: int) -> None:
        self._exits[pid] = asyncio.get_running_loop().create_future()

    def _on_log(self, role: ProcessRole, name: str, line: bytes) -> None:
        self.stream.raw(line)
        if self.telemetry is not None:
            self.telemetry.log_line(
                "function" if role is ProcessRole.RUNTIME else "extension", line
            )

    def _on_exit(self, exit: ProcessExit) -> None:
        fut = self._exits.pop(exit.pid, None)
        if fut is not None and not fut.done():
            fut.set_result(exit)
        if self.state in (EnvState.SHUTTING_DOWN, EnvState.RESETTING, EnvState.DEAD):
            return
        if exit.role is ProcessRole.RUNTIME:
            if exit.pid != self._runtime_pid:
                return
            self._runtime_pid = None
        else:
            ext = self.extensions.by_pid(exit.pid)
            if ext is None or not ext.alive:
                return
            ext.machine.fire(ExtensionEvent.EXIT)
            if self.state is EnvState.IDLE:
                return
        self._break_gates(_Answer("crash", exit=exit))

    def _fail_waiters(self) -> None:
        self._runtime_mailbox.cancel()

    # ------------------------------------------------------------------ Runtime API target

    def _release_event(self, event: rp.Event) -> None:
        self._current = event
        if self._runtime_mailbox.put(event):
            self.runtime.fire(RuntimeEvent.EVENT)

    async def runtime_next(self) -> rp.Event:
        if self.state in (EnvState.SHUTTING_DOWN, EnvState.DEAD):
            # a next that arrives after _fail_waiters() would keep the server from closing
            raise RapiRefused(rp.invalid_transition(self.runtime.state.value, "Ready"))
        if self.runtime.state is RuntimeState.RUNNING and self._current is not None:
            # a repeated next while holding an event gets the same event again
            return self._current
        if not self.runtime.allows(RuntimeEvent.NEXT):
            raise RapiRefused(rp.invalid_transition(self.runtime.state.value, "Ready"))
        previous = self.runtime.state
        self.runtime.fire(RuntimeEvent.NEXT)
        if previous is RuntimeState.STARTED:
            # registration closes with the runtime's first next
            self.extensions.registration_open = False
        elif previous is RuntimeState.RESPONSE_SENT:
            self._current = None
            self._runtime_done_at = self._clock.monotonic()
        self._check_gates()
        kept = self._runtime_mailbox.take_kept()
        if kept is not None:
            self.runtime.fire(RuntimeEvent.EVENT)
            return kept
        return await self._runtime_mailbox.wait()

    def _check_answer(self, request_id: str, target: RuntimeEvent) -> None:
        if self._current is None or request_id != self._current.request_id:
            raise RapiRefused(rp.INVALID_REQUEST_ID)
        if not self.runtime.allows(target):
            raise RapiRefused(rp.invalid_transition(self.runtime.state.value, target.value))
        self.runtime.fire(target)

    def runtime_answer_started(self) -> None:
        if self.state is EnvState.INVOKING and self._answer_started_at is None:
            self._answer_started_at = self._clock.monotonic()

    def _deliver(self, got: _Answer) -> None:
        if self._answer_done_at is None:
            self._answer_done_at = self._clock.monotonic()
        fut = self._answer
        if fut is not None and not fut.done():
            fut.set_result(got)

    def runtime_response(self, request_id: str, body: bytes, content_type: str | None) -> None:
        self._check_answer(request_id, RuntimeEvent.RESPONSE)
        self._deliver(_Answer("response", body=body, content_type=content_type))

    def runtime_stream_start(self, request_id: str, content_type: str | None) -> StreamedAnswer:
        self._check_answer(request_id, RuntimeEvent.RESPONSE)
        fut = self._answer
        assert fut is not None
        caller = self._caller_stream
        if caller is not None:
            caller.start(content_type or STREAM_CONTENT_TYPE)

        def deliver(got: _Answer) -> None:
            if fut is self._answer:
                self._deliver(got)

        return StreamedAnswer(deliver, caller, content_type)

    def runtime_response_too_large(self, request_id: str) -> None:
        self._check_answer(request_id, RuntimeEvent.RESPONSE)
        self._deliver(_Answer("too_large"))

    def runtime_error(
        self, request_id: str, body: bytes, content_type: str | None, error_type: str | None
    ) -> None:
        self._check_answer(request_id, RuntimeEvent.ERROR)
        self._deliver(
            _Answer(
                "error",
                body=rp.caller_error_body(body, content_type, error_type),
                content_type=content_type,
                error_type=rp.internal_error_type(error_type),
            )
        )

    def runtime_init_error(
        self, body: bytes, content_type: str | None, error_type: str | None
    ) -> None:
        if not self.runtime.allows(RuntimeEvent.INIT_ERROR):
            raise RapiRefused(rp.invalid_transition(self.runtime.state.value, "InitError"))
        self.runtime.fire(RuntimeEvent.INIT_ERROR)
        posted = _Answer("init_error", body=body, content_type=content_type, error_type=error_type)
        self._init_error = posted
        gate = self._init_gate
        if gate is not None and not gate.done():
            gate.set_result(posted)

    def runtime_function_init(self) -> None:
        # once per Init phase, and only while it runs: the timeline's Runtime/Function split
        if self.state is EnvState.INITIALIZING and not self._function_init_marked:
            self._function_init_marked = True
            self._mark("function_init_start")

    # ------------------------------------------------------------------ Extensions API target

    def extension_register(
        self, name: str | None, events: list[str], features: list[str]
    ) -> tuple[str, dict[str, str]]:
        ext = self.extensions.register(name, events)
        body = {
            "functionName": self.function.name,
            "functionVersion": self.function.version,
            "handler": self.function.handler,
        }
        if "accountId" in features:
            body["accountId"] = _account_of(self.function.arn)
        self._check_gates()
        return ext.ext_id, body

    async def extension_next(self, ext_id: str) -> bytes:
        ext = self.extensions.get(ext_id)
        if self.state in (EnvState.SHUTTING_DOWN, EnvState.DEAD):
            # a next that arrives after the waiters were failed would hold the server open
            raise RapiRefused(ext_protocol.invalid_state(ext.name, ext.state.value, "Ready"))
        if ext.state is ExtensionState.RUNNING:
            # it was handed an event while not waiting: this call picks it up
            held = ext.mailbox.take_kept()
            if held is not None:
                return held
        if not ext.machine.allows(ExtensionEvent.NEXT):
            raise RapiRefused(ext_protocol.invalid_state(ext.name, ext.state.value, "Ready"))
        ext.machine.fire(ExtensionEvent.NEXT)
        self._check_gates()
        kept = ext.mailbox.take_kept()
        if kept is not None:
            # an event that came while it was not waiting (e.g. SHUTDOWN during Init)
            ext.machine.fire(ExtensionEvent.EVENT)
            return kept
        return await ext.mailbox.wait()

    def extension_error(self, ext_id: str, kind: str, error_type: str, body: bytes) -> None:
        ext = self.extensions.get(ext_id)
        event = ExtensionEvent.INIT_ERROR if kind == "init" else ExtensionEvent.EXIT_ERROR
        initializing = self.state is EnvState.INITIALIZING
        if (kind == "init") != initializing or not ext.machine.allows(event):
            raise RapiRefused(ext_protocol.invalid_state(ext.name, ext.state.value, kind))
        ext.machine.fire(event)
        ext.error_type = error_type
        fatal = "Extension.InitError" if kind == "init" else "Extension.ExitError"
        message = body.decode(errors="replace") or f"extension {ext.name}: {error_type}"
        self._break_gates(_Answer("ext_error", body=message.encode(), error_type=fatal))

    def telemetry_subscribe(self, ext_id: str, sub: tp.Subscription) -> None:
        ext = self.extensions.get(ext_id)
        assert self.telemetry is not None
        self.telemetry.subscribe(ext.name, sub)
        types = [t.capitalize() for t in sub.types]
        if sub.api == "telemetry":
            self.stream.line(log_lines.telemetry(ext.name, "Subscribed", types))
            self.telemetry.emit(
                "platform.telemetrySubscription",
                {"name": ext.name, "state": "Subscribed", "types": list(sub.types)},
            )
        else:
            self.telemetry.emit(
                "platform.logsSubscription",
                {"name": ext.name, "state": "Subscribed", "types": list(sub.types)},
            )


def _telemetry_status(outcome: InvokeOutcome) -> str:
    """Telemetry's status: timeout; failure for Sandbox.* errors; error otherwise (success
    for an error the handler raised, as on REPORT)."""
    status, error_type = outcome.report_status, outcome.error_type
    if status is None:
        return "success"
    if status == "timeout":
        return "timeout"
    if error_type and error_type.startswith("Sandbox."):
        return "failure"
    return "error"


def _account_of(arn: str) -> str:
    parts = arn.split(":")
    return parts[4] if len(parts) > 4 else ""


async def _wait_for(clock: Clock, aw: Awaitable[object], timeout_s: float) -> None:
    with contextlib.suppress(TimeoutError, asyncio.CancelledError):
        async with clock.timeout(max(0.0, timeout_s)):
            await aw


def env_id_for(function_name: str) -> str:
    return f"{function_name.lower()[:20].replace('_', '-')}-{os.urandom(5).hex()}"
