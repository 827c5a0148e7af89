"""One execution environment: a sandbox, its in-sandbox API server and its lifecycle.

The orchestrator.  The lifecycle decisions are the transition tables in ``lifecycle``;
this class drives one sandbox through them, doing the I/O each state calls for.  The
parts it drives each live in their own module:

- ``flow``: the Runtime and Extensions API targets and the gates they open or break,
  over ``participants`` (the runtime and ``extensions``, serving ``next`` one way)
- ``cycle``: one invoke's state, dropped with the invoke
- ``failure`` / ``outcome``: what a failure was, as AWS error types
- ``reporter`` / ``report``: log lines, telemetry records, observer reports
- ``freezer``, ``shutdown``: freezing between invokes; the Shutdown phase's budgets
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from lambdalet.clock import Clock
from lambdalet.env import extensions as ext_protocol
from lambdalet.env import failure as fl
from lambdalet.env import rapi_protocol as rp
from lambdalet.env import report as rpt
from lambdalet.env.cycle import InvokeCycle
from lambdalet.env.debug import DEBUG_TIMEOUT_S, PortForward
from lambdalet.env.extensions import Extensions, external_extensions
from lambdalet.env.extensions_api import add_routes as add_extension_routes
from lambdalet.env.failure import Answer, AnswerKind
from lambdalet.env.flow import Flow
from lambdalet.env.freezer import Freezer
from lambdalet.env.gates import Gate
from lambdalet.env.launch import Launcher, LaunchPlan, RuntimeMounts
from lambdalet.env.lifecycle import EnvEvent, EnvState, env_machine
from lambdalet.env.log_sink import FunctionLog, LogStream
from lambdalet.env.observer import EnvObserver
from lambdalet.env.outcome import ErrorType, InvokeOutcome, function_error_type
from lambdalet.env.participants import RuntimeParticipant
from lambdalet.env.reporter import Reporter
from lambdalet.env.runtime_api import InSandboxServer, build_app
from lambdalet.env.settings import EnvSettings
from lambdalet.env.shutdown import ProcessExits, stop_processes
from lambdalet.env.telemetry import TelemetryHub
from lambdalet.env.telemetry_protocol import Subscription
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

__all__ = ["EnvSettings", "Environment", "env_id_for", "new_trace_id"]

log = logging.getLogger(__name__)

#: how many lifecycle events an environment remembers for the dashboard
TIMELINE_LENGTH = 200
#: the longest one teardown step (server close, sandbox destroy) may take
RELEASE_STEP_TIMEOUT_S = 20.0


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
        self.machine = env_machine()
        self.log_stream_name = log_stream_name(
            function.version, now=datetime.fromtimestamp(clock.wall(), UTC)
        )
        self.stream = LogStream(function_log, self.log_stream_name, clock.wall)
        self.created_at = clock.wall()
        self.invocations = 0
        #: what happened to this environment, for the dashboard: (epoch s, event, detail)
        self.timeline: deque[tuple[float, str, str]] = deque(maxlen=TIMELINE_LENGTH)
        self.flow = Flow(clock, function, lambda: self.state, self._function_init, self._subscribe)
        self._report = Reporter(env_id, function, settings, self.stream, clock, observer)
        self._freezer = Freezer(clock, settings.freeze_delay_s, self._mark)

        self._sandbox: Sandbox | None = None
        self._server: InSandboxServer | None = None
        self._mounts: RuntimeMounts | None = None
        self._plan: LaunchPlan | None = None
        self._ext_env: Mapping[str, str] = {}
        self.telemetry: TelemetryHub | None = None
        self._runtime_pid: int | None = None
        self._exits = ProcessExits()
        self._oom_seen = 0
        #: Init Duration to show on the first invoke's REPORT after a successful Init phase
        self._unreported_init_ms: float | None = None
        self._task: asyncio.Task[None] | None = None
        self._function_init_marked = False
        self._debug_forward: PortForward | None = None

    def __repr__(self) -> str:
        fn = self.function
        return f"<Environment {self.env_id} {fn.name}:{fn.version} {self.state.value}>"

    @property
    def state(self) -> EnvState:
        return self.machine.state

    @property
    def frozen(self) -> bool:
        return self._freezer.frozen

    @property
    def runtime(self) -> RuntimeParticipant:
        return self.flow.runtime

    @property
    def extensions(self) -> Extensions:
        return self.flow.extensions

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Build the sandbox and run the Init phase (at most ``init_timeout_s``).

        A failed Init leaves the environment in ``NeedsInit``: the first invoke
        re-runs Init inside itself, as Lambda does.
        """
        fn = self.function
        self._mounts = mounts = await self._launcher.mounts(fn)
        spec = SandboxSpec(
            env_id=self.env_id,
            memory_mb=fn.memory_mb,
            ephemeral_mb=fn.ephemeral_mb,
            code_dir=fn.code_dir,
            layer_dirs=tuple(layer.code_dir for layer in fn.layers),
            runtime_dir=mounts.runtime_dir,
            lang_dir=mounts.lang_dir,
            lang_layers=tuple(mounts.lang_layers),
            image_rootfs=mounts.image_rootfs,
        )
        try:
            self._sandbox = await self._backend.create(spec, self._on_log, self._on_exit)
            app = build_app(self.flow)
            add_extension_routes(app, self.flow)
            self._server = InSandboxServer(app, self._sandbox.runtime_api_socket)
            await self._server.start()
        except BaseException:
            self.machine.fire(EnvEvent.SHUTDOWN)
            await self._release()
            raise
        sandbox, view = self._sandbox, self._sandbox.view
        host_ip = view.runtime_api.rpartition(":")[0]
        self.telemetry = TelemetryHub(host_ip, sandbox.socket_inside, self._clock)
        self._report.telemetry = self.telemetry
        self._freezer.attach(sandbox, self.telemetry)
        init_type = self._settings.init_type
        self._plan = self._launcher.plan(fn, view, self.log_stream_name, init_type)
        self._ext_env = self._launcher.extension_env(fn, view, init_type)
        if self._settings.debug_port is not None:
            await self._start_debugging(self._settings.debug_port)
        deadline = self._clock.monotonic() + self._settings.init_timeout_s
        result = await self._init("init", deadline)
        if result.ok:
            if init_type == "on-demand":
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
        self._freezer.cancel()
        self.flow.cancel_waiters()
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
            self._freezer.attach(None, None)
        if self.state is EnvState.SHUTTING_DOWN:
            self.machine.fire(EnvEvent.SHUTDOWN_DONE)
            self._mark("shutdown_done")

    def _mark(self, event: str, detail: str = "") -> None:
        self.timeline.append((self._clock.wall(), event, detail))

    # ------------------------------------------------------------------ init

    async def _init(self, phase: str, deadline: float, request_id: str = "") -> _InitResult:
        assert self._mounts is not None
        self.machine.fire(EnvEvent.INIT)
        self._function_init_marked = False
        self._mark("init_start", f"phase={phase}")
        started = self._clock.monotonic()
        self._report.init_started(phase, self._mounts)
        registered, initialized = self.flow.begin_init()
        failure: Answer | None = None
        timed_out = False
        try:
            async with self._clock.timeout_at(deadline):
                failure = await self._launch_extensions(request_id)
                if failure is None and self.extensions.unregistered():
                    # extension init: the runtime starts only once every extension registered
                    failure = await registered.wait()
                if failure is None:
                    # the end of Extension init; Runtime and Function init follow
                    self._mark("runtime_start")
                    failure = await self._start_runtime(request_id)
                if failure is None:
                    self.flow.check_gates()
                    failure = await initialized.wait()
        except TimeoutError:
            timed_out = True
        self.flow.end_init()
        duration_ms = (self._clock.monotonic() - started) * 1000.0
        if failure is None and not timed_out:
            self.machine.fire(EnvEvent.INIT_DONE)
            self.extensions.registration_open = False
            self._report.init_succeeded(phase, duration_ms, self.extensions.registered())
            self._mark("init_done", f"phase={phase}")
            return _InitResult(True, duration_ms)
        error_type: str
        if timed_out:
            status, error_type, body = "timeout", ErrorType.RUNTIME_UNKNOWN, b""
            self.machine.fire(EnvEvent.TIMEOUT)
        else:
            assert failure is not None
            status = "error"
            posted = self.flow.init_error
            error_type, body = fl.init_failure(failure, posted, request_id, self._exit_type)
            self.machine.fire(EnvEvent.INIT_FAILED)
        self._report.init_failed(phase, duration_ms, status, error_type)
        self._mark("init_failed", f"status={status}")
        await self._reset("timeout" if timed_out else "failure")
        return _InitResult(False, duration_ms, status, error_type, body)

    async def _launch_extensions(self, request_id: str) -> Answer | None:
        """Start every file in /opt/extensions, all at once, each in its own process group."""
        assert self._sandbox is not None
        opt = self._sandbox.view.opt_dir
        if self._mounts is not None and self._mounts.image_rootfs is not None:
            # an image brings its extensions in its own /opt/extensions
            found = external_extensions([self._mounts.image_rootfs / "opt"])
        else:
            found = external_extensions([layer.code_dir for layer in self.function.layers])
        for name in found:
            argv = [f"{opt}/extensions/{name}"]
            try:
                pid = await self._sandbox.spawn(
                    ProcessRole.EXTENSION, name, argv, self._ext_env, "/"
                )
            except SpawnError as e:
                detail = f"extension {name}: {e}"
                return fl.crash(ErrorType.EXTENSION_LAUNCH_ERROR, request_id, detail)
            self._exits.track(pid)
            self.extensions.launch(name, pid)
        return None

    async def _start_runtime(self, request_id: str) -> Answer | None:
        assert self._sandbox is not None and self._plan is not None
        plan = self._plan
        if plan.entrypoint_error is not None:
            etype, detail = plan.entrypoint_error
            body = rp.function_error(etype, request_id, detail)
            return Answer(AnswerKind.CRASH, error_type=etype, body=body)
        try:
            pid = await self._sandbox.spawn(
                ProcessRole.RUNTIME, "runtime", plan.argv, plan.env, plan.cwd
            )
        except SpawnError as e:
            return fl.crash(ErrorType.RUNTIME_INVALID_ENTRYPOINT, request_id, str(e))
        self._runtime_pid = pid
        self._exits.track(pid)
        return None

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
            self.flow.cycle = None
            self.invocations += 1
            if self._on_settled is not None:
                self._on_settled(self)

    async def _invoke_phase(
        self, request: InvokeInput, caller: asyncio.Future[InvokeOutput]
    ) -> None:
        fn = self.function
        debugging = self._settings.debug_port is not None
        cycle = InvokeCycle(
            request=request,
            caller=caller,
            version=fn.version,
            clock=self._clock,
            started=self._clock.monotonic(),
            timeout_s=DEBUG_TIMEOUT_S if debugging else fn.timeout_s,
            trace_id=request.trace_id or new_trace_id(self._clock.wall()),
        )
        rid = cycle.request_id
        if request.log_tail:
            self.stream.start_capture()
        init_ms, self._unreported_init_ms = self._unreported_init_ms, None
        #: an Init that ran as part of this invoke makes it a cold start, shown with its time
        cold_init_ms = init_ms
        if self.state is EnvState.NEEDS_INIT:
            # suppressed init: runs inside this invoke, on this invoke's clock
            self._freezer.thaw()
            result = await self._init("invoke", cycle.deadline, rid)
            cold_init_ms = result.duration_ms
            if not result.ok:
                self._report.invoke_started(cycle)
                if result.status == "timeout":
                    payload = rp.timed_out(rid, cycle.timeout_s)
                else:
                    payload = result.caller_body or rp.unknown_error(rid)
                outcome = InvokeOutcome.init_failure(result.status, result.error_type)
                end = rpt.InvokeEnd(outcome, payload, "Unhandled", None, cold_init_ms)
                self._invoke_ended(cycle, end)
                return

        self.machine.fire(EnvEvent.INVOKE)
        self._freezer.thaw()
        self._mark("invoke_start", rid)
        self._report.invoke_started(cycle)
        self.flow.cycle = cycle
        deadline_ms = int((self._clock.wall() + cycle.timeout_s) * 1000)
        cycle.release()
        invoke_event = ext_protocol.invoke_event(
            rid, deadline_ms, request.invoked_arn, cycle.trace_id
        )
        for ext in self.extensions.registered():
            if ext.subscribed("INVOKE") and ext.alive:
                ext.deliver(invoke_event)
        self.runtime.deliver(
            rp.Event(
                request_id=rid,
                payload=request.payload,
                deadline_ms=deadline_ms,
                invoked_function_arn=request.invoked_arn,
                trace_id=cycle.trace_id,
                client_context=request.client_context,
            )
        )
        reply, outcome, failure, produced = await self._await_answer(cycle)
        await _let_output_arrive()
        reason = "timeout" if failure is EnvEvent.TIMEOUT else "failure"
        reset_first = failure is not None and not self.extensions.registered()
        if failure is not None and reset_first:
            # no extensions: the reset is an immediate kill (0 ms budget), so it is over
            # before the caller hears of the failure and the next invoke finds this
            # environment (and its /tmp) ready
            self.machine.fire(failure)
            await self._reset(reason)
        runtime_done = cycle.runtime_done_at or self._clock.monotonic()
        self._report.runtime_done(cycle, outcome, produced, runtime_done)
        overhead_ms = None
        if cycle.runtime_done_at is not None:
            overhead_ms = max(0.0, (self._clock.monotonic() - runtime_done) * 1000.0)
        self._invoke_ended(
            cycle, rpt.InvokeEnd(outcome, *reply, init_ms, cold_init_ms, overhead_ms)
        )
        if failure is not None:
            if not reset_first:
                self.machine.fire(failure)
                await self._reset(reason)
        else:
            self.machine.fire(EnvEvent.INVOKE_DONE)
            self._freeze_soon()

    async def _await_answer(
        self, cycle: InvokeCycle
    ) -> tuple[tuple[bytes, str | None], InvokeOutcome, EnvEvent | None, int]:
        """Wait for the runtime's answer and the end of the invoke phase, within the
        deadline: (reply, outcome, the failure event if any, bytes produced)."""
        rid = cycle.request_id
        reply: tuple[bytes, str | None] | None = None
        outcome = InvokeOutcome.success()
        failure: EnvEvent | None = None
        produced = 0
        try:
            async with self._clock.timeout_at(cycle.deadline):
                got = await cycle.answer.wait()
                assert got is not None
                if got.failed:
                    reply = (fl.crash_body(got, rid), "Unhandled")
                    outcome = InvokeOutcome.crash(fl.crash_type(got, self._exit_type))
                    failure = EnvEvent.CRASH
                else:
                    self.machine.fire(EnvEvent.RESPONSE)
                    reply = fl.reply_for(got)
                    produced = len(got.body) if got.produced is None else got.produced
                    cycle.reply_early(*reply)
                    outcome = _answer_outcome(got)
                    # the invoke phase lasts until the runtime and every INVOKE extension
                    # ask for their next event
                    cycle.done = Gate("invoke done")
                    self.flow.check_gates()
                    after = await cycle.done.wait()
                    if after is not None:
                        # a process died after the answer: the caller keeps the answer
                        if outcome.report_status is None:
                            outcome = InvokeOutcome.crash(fl.crash_type(after, self._exit_type))
                        failure = EnvEvent.CRASH
        except TimeoutError:
            reply = reply or (rp.timed_out(rid, cycle.timeout_s), "Unhandled")
            outcome, failure = InvokeOutcome.timeout(), EnvEvent.TIMEOUT
        assert reply is not None
        return reply, outcome, failure, produced

    def _invoke_ended(self, cycle: InvokeCycle, end: rpt.InvokeEnd) -> None:
        assert self._sandbox is not None
        self._mark("invoke_end", f"status={end.outcome.kind.value}")
        self._report.invoke_ended(cycle, end, self._sandbox.memory_peak_bytes())

    # ------------------------------------------------------------------ reset, freeze

    async def _reset(self, reason: str) -> None:
        """Shutdown sequence for a reset: every process goes; the sandbox and /tmp stay."""
        self._mark("reset", f"reason={reason}")
        await self._stop_processes(reason)
        self.machine.fire(EnvEvent.RESET_DONE)
        if self._sandbox is not None:
            await self._sandbox.prepare_restart()

    async def _stop_processes(self, reason: str) -> None:
        assert self._sandbox is not None
        self.runtime.cancel()
        self._freezer.thaw()
        await stop_processes(
            self._sandbox,
            self._clock,
            self.extensions,
            self._runtime_pid,
            self._exits,
            self.telemetry,
            reason,
        )
        self._runtime_pid = None
        self.runtime.current = None
        if self.telemetry is not None:
            await self.telemetry.reset()

    def _exit_type(self) -> ErrorType:
        if self._sandbox is not None:
            ooms = self._sandbox.oom_kills()
            if ooms > self._oom_seen:
                self._oom_seen = ooms
                return ErrorType.RUNTIME_OUT_OF_MEMORY
        return ErrorType.RUNTIME_EXIT_ERROR

    def _freeze_soon(self) -> None:
        self._freezer.freeze_soon(lambda: self.state is EnvState.IDLE)

    # ------------------------------------------------------------------ callbacks

    def _on_log(self, role: ProcessRole, name: str, line: bytes) -> None:
        self.stream.raw(line)
        if self.telemetry is not None:
            self.telemetry.log_line(
                "function" if role is ProcessRole.RUNTIME else "extension", line
            )

    def _on_exit(self, exit: ProcessExit) -> None:
        self._exits.exited(exit)
        if self.state in (EnvState.SHUTTING_DOWN, EnvState.RESETTING, EnvState.DEAD):
            return
        runtime_pid = self._runtime_pid
        if exit.role is ProcessRole.RUNTIME and exit.pid == runtime_pid:
            self._runtime_pid = None
        self.flow.process_exited(exit, runtime_pid)

    def _function_init(self) -> None:
        # once per Init phase, and only while it runs: the timeline's Runtime/Function split
        if self.state is EnvState.INITIALIZING and not self._function_init_marked:
            self._function_init_marked = True
            self._mark("function_init_start")

    def _subscribe(self, ext_name: str, sub: Subscription) -> None:
        assert self.telemetry is not None
        self.telemetry.subscribe(ext_name, sub)
        self._report.subscribed(ext_name, sub)


def _answer_outcome(got: Answer) -> InvokeOutcome:
    if got.kind is AnswerKind.TOO_LARGE:
        return InvokeOutcome.platform_error(ErrorType.FUNCTION_RESPONSE_SIZE_TOO_LARGE)
    if got.kind is AnswerKind.ERROR:
        return InvokeOutcome.function_error(function_error_type(got.body, got.error_type))
    return InvokeOutcome.success()


def env_id_for(function_name: str) -> str:
    return f"{function_name.lower()[:20].replace('_', '-')}-{os.urandom(5).hex()}"
