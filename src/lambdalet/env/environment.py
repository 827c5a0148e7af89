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
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from lambdalet.clock import Clock
from lambdalet.env import log_lines
from lambdalet.env import rapi_protocol as rp
from lambdalet.env.launch import Launcher, LaunchPlan, RuntimeMounts
from lambdalet.env.lifecycle import (
    EnvEvent,
    EnvState,
    RuntimeEvent,
    RuntimeState,
    env_machine,
    runtime_machine,
)
from lambdalet.env.log_sink import FunctionLog, LogStream
from lambdalet.env.runtime_api import InSandboxServer, RapiRefused, build_app
from lambdalet.model import FunctionRecord, InvokeInput, InvokeOutput
from lambdalet.sandbox.base import (
    ProcessExit,
    ProcessRole,
    Sandbox,
    SandboxBackend,
    SandboxSpec,
    SpawnError,
)

log = logging.getLogger(__name__)

MIB = 1024 * 1024


@dataclass(frozen=True)
class EnvSettings:
    init_timeout_s: float = 10.0
    bill_init: bool = True
    init_type: str = "on-demand"


@dataclass
class _Answer:
    kind: Literal["response", "error", "too_large", "crash", "init_error"]
    body: bytes = b""
    content_type: str | None = None
    error_type: str | None = None
    exit: ProcessExit | None = None


@dataclass(frozen=True)
class _InitResult:
    ok: bool
    duration_ms: float
    status: str = "success"  # success | error | timeout
    error_type: str | None = None
    #: what a caller gets when this init ran inside its invoke and failed
    caller_body: bytes = b""


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


def new_log_stream(version: str, now: float) -> str:
    day = time.strftime("%Y/%m/%d", time.gmtime(now))
    return f"{day}/[{version}]{secrets.token_hex(16)}"


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
    ) -> None:
        self.env_id = env_id
        self.function = function
        self._backend = backend
        self._launcher = launcher
        self._clock = clock
        self._settings = settings
        self._on_settled = on_settled
        self.machine = env_machine()
        self.runtime = runtime_machine()
        self.log_stream_name = new_log_stream(function.version, clock.wall())
        self.stream = LogStream(function_log, self.log_stream_name)
        self.created_at = clock.wall()
        self.invocations = 0
        self.last_used = clock.monotonic()

        self._sandbox: Sandbox | None = None
        self._server: InSandboxServer | None = None
        self._mounts: RuntimeMounts | None = None
        self._plan: LaunchPlan | None = None
        self._runtime_pid: int | None = None
        self._oom_seen = 0
        # the runtime's pending next, the event it holds, and what the platform waits for
        self._next_waiter: asyncio.Future[rp.Event] | None = None
        self._current: rp.Event | None = None
        self._queued: rp.Event | None = None
        self._init_gate: asyncio.Future[_Answer | None] | None = None
        self._answer: asyncio.Future[_Answer] | None = None
        self._next_after_answer: asyncio.Future[_Answer | None] | None = None
        self._init_error: _Answer | None = None
        #: Init Duration to show on the first invoke's REPORT after a successful Init phase
        self._unreported_init_ms: float | None = None
        self._task: asyncio.Task[None] | None = None
        self.frozen = False

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
        )
        try:
            self._sandbox = await self._backend.create(spec, self._on_log, self._on_exit)
            self._server = InSandboxServer(build_app(self), self._sandbox.runtime_api_socket)
            await self._server.start()
        except BaseException:
            self.machine.fire(EnvEvent.SHUTDOWN)
            await self._release()
            raise
        self._plan = self._launcher.plan(
            self.function, self._sandbox.view, self.log_stream_name, self._settings.init_type
        )
        deadline = self._clock.monotonic() + self._settings.init_timeout_s
        result = await self._init("init", deadline)
        if result.ok:
            self._unreported_init_ms = result.duration_ms
            self._freeze()

    async def invoke(self, request: InvokeInput) -> InvokeOutput:
        """Run one invocation; returns as soon as the caller's answer is known."""
        if self.state not in (EnvState.IDLE, EnvState.NEEDS_INIT):
            raise RuntimeError(f"{self!r} cannot take an invoke")
        caller: asyncio.Future[InvokeOutput] = asyncio.get_running_loop().create_future()
        self._task = asyncio.create_task(self._run_invoke(request, caller))
        return await caller

    async def shutdown(self, reason: str = "spindown") -> None:
        """Shutdown phase.  Without extensions the runtime is killed at once (0 ms budget)."""
        if self.state in (EnvState.DEAD, EnvState.SHUTTING_DOWN):
            return
        self.machine.fire(EnvEvent.SHUTDOWN)
        log.debug("%r shutting down (%s)", self, reason)
        if self._task is not None and not self._task.done():
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        await self._release()

    async def _release(self) -> None:
        self._fail_waiters()
        if self._server is not None:
            with contextlib.suppress(Exception):
                await self._server.close()
            self._server = None
        if self._sandbox is not None:
            try:
                await self._sandbox.destroy()
            except Exception:
                log.exception("destroying sandbox of %r", self)
            self._sandbox = None
        if self.state is EnvState.SHUTTING_DOWN:
            self.machine.fire(EnvEvent.SHUTDOWN_DONE)

    # ------------------------------------------------------------------ init

    async def _init(self, phase: str, deadline: float, request_id: str = "") -> _InitResult:
        assert self._sandbox is not None and self._plan is not None and self._mounts is not None
        self.machine.fire(EnvEvent.INIT)
        started = self._clock.monotonic()
        self.stream.line(
            log_lines.init_start(self._mounts.runtime_version, self._mounts.runtime_version_arn)
        )
        for note in self._mounts.notes:
            self.stream.line(note)
        self.runtime = runtime_machine()
        self._init_error = None
        loop = asyncio.get_running_loop()
        gate: asyncio.Future[_Answer | None] = loop.create_future()
        self._init_gate = gate
        failure: _Answer | None = None
        timed_out = False
        if self._plan.entrypoint_error is not None:
            etype, detail = self._plan.entrypoint_error
            failure = _Answer(
                "crash", error_type=etype, body=rp.function_error(etype, request_id, detail)
            )
        else:
            try:
                self._runtime_pid = await self._sandbox.spawn(
                    ProcessRole.RUNTIME, "runtime", self._plan.argv, self._plan.env, self._plan.cwd
                )
            except SpawnError as e:
                failure = _Answer(
                    "crash",
                    error_type="Runtime.InvalidEntrypoint",
                    body=rp.function_error("Runtime.InvalidEntrypoint", request_id, str(e)),
                )
        if failure is None:
            try:
                async with asyncio.timeout(max(0.0, deadline - self._clock.monotonic())):
                    failure = await gate
            except TimeoutError:
                timed_out = True
        self._init_gate = None
        duration_ms = (self._clock.monotonic() - started) * 1000.0
        if failure is None and not timed_out:
            self.machine.fire(EnvEvent.INIT_DONE)
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
        await self._reset()
        return _InitResult(False, duration_ms, status, error_type, body)

    def _init_failure_details(self, failure: _Answer, request_id: str) -> tuple[str, bytes]:
        """(errorType for logs, body for a caller) of a failed Init."""
        if self._init_error is not None:
            posted = self._init_error
            etype = rp.internal_error_type(posted.error_type)
            if posted.error_type and etype == "Runtime.Unknown":
                etype = posted.error_type
            return etype, rp.caller_error_body(posted.body, posted.content_type, posted.error_type)
        if failure.kind == "crash" and failure.exit is not None:
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
            self.last_used = self._clock.monotonic()
            if self._on_settled is not None:
                self._on_settled(self)

    async def _invoke_phase(
        self, request: InvokeInput, caller: asyncio.Future[InvokeOutput]
    ) -> None:
        assert self._sandbox is not None
        fn = self.function
        rid = request.request_id
        started = self._clock.monotonic()
        deadline = started + fn.timeout_s
        deadline_ms = int((self._clock.wall() + fn.timeout_s) * 1000)
        if request.log_tail:
            self.stream.start_capture()

        def answer(payload: bytes, error: str | None) -> None:
            if not caller.done() and not request.log_tail:
                caller.set_result(
                    InvokeOutput(payload=payload, executed_version=fn.version, function_error=error)
                )

        init_ms = self._unreported_init_ms
        self._unreported_init_ms = None
        if self.state is EnvState.NEEDS_INIT:
            # suppressed init: runs inside this invoke, on this invoke's clock
            self._thaw()
            result = await self._init("invoke", deadline, rid)
            if not result.ok:
                self.stream.line(log_lines.start(rid, fn.version))
                if result.status == "timeout":
                    payload = rp.timed_out(rid, fn.timeout_s)
                else:
                    payload = result.caller_body or rp.unknown_error(rid)
                self._finish_report(
                    request,
                    caller,
                    started,
                    None,
                    result.status,
                    result.error_type,
                    payload,
                    "Unhandled",
                    cap=result.status == "timeout",
                )
                return

        self.machine.fire(EnvEvent.INVOKE)
        self._thaw()
        self.stream.line(log_lines.start(rid, fn.version))
        event = rp.Event(
            request_id=rid,
            payload=request.payload,
            deadline_ms=deadline_ms,
            invoked_function_arn=request.invoked_arn,
            trace_id=request.trace_id or new_trace_id(self._clock.wall()),
            client_context=request.client_context,
        )
        loop = asyncio.get_running_loop()
        self._answer = loop.create_future()
        self._next_after_answer = None
        self._release_event(event)

        reply: tuple[bytes, str | None] | None = None
        status: str | None = None
        etype: str | None = None
        failure: EnvEvent | None = None
        try:
            async with asyncio.timeout(max(0.0, deadline - self._clock.monotonic())):
                got = await self._answer
                if got.kind == "crash":
                    assert got.exit is not None
                    reply = (rp.exit_error(rid, got.exit.describe()), "Unhandled")
                    status, etype, failure = (
                        "error",
                        self._exit_error_type(got.exit),
                        EnvEvent.CRASH,
                    )
                else:
                    self.machine.fire(EnvEvent.RESPONSE)
                    reply = self._reply_for(got)
                    answer(*reply)
                    if got.kind == "too_large":
                        status, etype = "error", "Function.ResponseSizeTooLarge"
                    # the invoke phase lasts until the runtime asks for the next event
                    self._next_after_answer = loop.create_future()
                    after = await self._next_after_answer
                    if after is not None:
                        # the runtime died after answering: the caller keeps the answer
                        status = "error"
                        etype = etype or self._exit_error_type(after.exit)
                        failure = EnvEvent.CRASH
        except TimeoutError:
            reply = reply or (rp.timed_out(rid, fn.timeout_s), "Unhandled")
            status, etype, failure = "timeout", "Sandbox.Timedout", EnvEvent.TIMEOUT

        assert reply is not None
        await _let_output_arrive()
        self._finish_report(
            request,
            caller,
            started,
            init_ms,
            status,
            etype,
            reply[0],
            reply[1],
            cap=status == "timeout",
        )
        if failure is not None:
            await self._after_failure(failure)
        else:
            self.machine.fire(EnvEvent.INVOKE_DONE)
            self._freeze()

    @staticmethod
    def _reply_for(got: _Answer) -> tuple[bytes, str | None]:
        if got.kind == "response":
            return got.body, None
        if got.kind == "error":
            return got.body, "Unhandled"
        return rp.response_too_large(), "Unhandled"

    def _finish_report(
        self,
        request: InvokeInput,
        caller: asyncio.Future[InvokeOutput],
        started: float,
        init_ms: float | None,
        status: str | None,
        error_type: str | None,
        payload: bytes,
        function_error: str | None,
        *,
        cap: bool = False,
    ) -> None:
        fn = self.function
        duration_ms = (self._clock.monotonic() - started) * 1000.0
        if cap:
            duration_ms = min(duration_ms, fn.timeout_s * 1000.0)
        assert self._sandbox is not None
        used_mb = math.ceil(self._sandbox.memory_peak_bytes() / MIB)
        self.stream.line(log_lines.end(request.request_id))
        self.stream.line(
            log_lines.Report(
                request_id=request.request_id,
                duration_ms=duration_ms,
                billed_ms=log_lines.billed_ms(duration_ms, init_ms, self._settings.bill_init),
                memory_mb=fn.memory_mb,
                max_memory_used_mb=min(used_mb, fn.memory_mb),
                init_duration_ms=init_ms,
                status=status,
                error_type=error_type,
            ).line()
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

    async def _after_failure(self, event: EnvEvent) -> None:
        self.machine.fire(event)
        await self._reset()

    async def _reset(self) -> None:
        """Kill every process of the environment; the sandbox and /tmp stay."""
        assert self._sandbox is not None
        self._fail_waiters()
        self._thaw()
        await self._sandbox.kill_all()
        self._runtime_pid = None
        self._current = None
        self._queued = None
        self.machine.fire(EnvEvent.RESET_DONE)

    def _exit_error_type(self, exit: ProcessExit | None) -> str:
        if self._sandbox is not None:
            ooms = self._sandbox.oom_kills()
            if ooms > self._oom_seen:
                self._oom_seen = ooms
                return "Runtime.OutOfMemory"
        return "Runtime.ExitError"

    # ------------------------------------------------------------------ freeze

    def _freeze(self) -> None:
        if self._sandbox is not None and not self.frozen:
            self._sandbox.freeze()
            self.frozen = True

    def _thaw(self) -> None:
        if self._sandbox is not None and self.frozen:
            self._sandbox.thaw()
            self.frozen = False

    # ------------------------------------------------------------------ sandbox callbacks

    def _on_log(self, role: ProcessRole, name: str, line: bytes) -> None:
        self.stream.raw(line)

    def _on_exit(self, exit: ProcessExit) -> None:
        if exit.role is not ProcessRole.RUNTIME or exit.pid != self._runtime_pid:
            return
        self._runtime_pid = None
        crash = _Answer("crash", exit=exit)
        for fut in (self._init_gate, self._answer, self._next_after_answer):
            if fut is not None and not fut.done():
                fut.set_result(crash)
                return

    def _fail_waiters(self) -> None:
        for fut in (self._next_waiter,):
            if fut is not None and not fut.done():
                fut.cancel()
        self._next_waiter = None

    # ------------------------------------------------------------------ Runtime API target

    def _release_event(self, event: rp.Event) -> None:
        self._current = event
        waiter = self._next_waiter
        if waiter is not None and not waiter.done():
            self.runtime.fire(RuntimeEvent.EVENT)
            self._next_waiter = None
            waiter.set_result(event)
        else:
            self._queued = event

    async def runtime_next(self) -> rp.Event:
        if self.runtime.state is RuntimeState.RUNNING and self._current is not None:
            # a repeated next while holding an event gets the same event again
            return self._current
        if not self.runtime.allows(RuntimeEvent.NEXT):
            raise RapiRefused(rp.invalid_transition(self.runtime.state.value, "Ready"))
        previous = self.runtime.state
        self.runtime.fire(RuntimeEvent.NEXT)
        if previous is RuntimeState.STARTED:
            gate = self._init_gate
            if gate is not None and not gate.done():
                gate.set_result(None)
        elif previous is RuntimeState.RESPONSE_SENT:
            self._current = None
            fut = self._next_after_answer
            if fut is not None and not fut.done():
                fut.set_result(None)
        if self._queued is not None:
            event, self._queued = self._queued, None
            self.runtime.fire(RuntimeEvent.EVENT)
            return event
        if self._next_waiter is not None and not self._next_waiter.done():
            self._next_waiter.cancel()
        waiter: asyncio.Future[rp.Event] = asyncio.get_running_loop().create_future()
        self._next_waiter = waiter
        try:
            return await waiter
        finally:
            if self._next_waiter is waiter:
                self._next_waiter = None

    def _check_answer(self, request_id: str, target: RuntimeEvent) -> None:
        if self._current is None or request_id != self._current.request_id:
            raise RapiRefused(rp.INVALID_REQUEST_ID)
        if not self.runtime.allows(target):
            raise RapiRefused(rp.invalid_transition(self.runtime.state.value, target.value))
        self.runtime.fire(target)

    def _deliver(self, got: _Answer) -> None:
        fut = self._answer
        if fut is not None and not fut.done():
            fut.set_result(got)

    def runtime_response(self, request_id: str, body: bytes, content_type: str | None) -> None:
        self._check_answer(request_id, RuntimeEvent.RESPONSE)
        self._deliver(_Answer("response", body=body, content_type=content_type))

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


def env_id_for(function_name: str) -> str:
    return f"{function_name.lower()[:20].replace('_', '-')}-{os.urandom(5).hex()}"
