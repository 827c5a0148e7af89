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
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from lambdalet.clock import Clock
from lambdalet.env import failure as fl
from lambdalet.env import rapi_protocol as rp
from lambdalet.env import report as rpt
from lambdalet.env.cycle import InvokeCycle, new_trace_id
from lambdalet.env.debug import DEBUG_TIMEOUT_S, PortForward
from lambdalet.env.extensions import Extensions, external_extensions
from lambdalet.env.extensions_api import add_routes as add_extension_routes
from lambdalet.env.failure import Answer
from lambdalet.env.flow import Flow
from lambdalet.env.freezer import Freezer
from lambdalet.env.launch import Launcher, LaunchPlan, RuntimeMounts, sandbox_spec
from lambdalet.env.lifecycle import EnvEvent, EnvState, env_machine
from lambdalet.env.log_sink import FunctionLog, LogStream
from lambdalet.env.observer import EnvObserver
from lambdalet.env.outcome import ErrorType, InvokeOutcome
from lambdalet.env.participants import RuntimeParticipant
from lambdalet.env.processes import Processes
from lambdalet.env.reporter import Reporter
from lambdalet.env.runtime_api import InSandboxServer, build_app
from lambdalet.env.settings import EnvSettings
from lambdalet.env.shutdown import stop_processes
from lambdalet.env.telemetry import TelemetryHub
from lambdalet.env.telemetry_protocol import Subscription
from lambdalet.model import FunctionRecord, InvokeInput, InvokeOutput
from lambdalet.runtimes.envvars import log_stream_name
from lambdalet.sandbox.base import ProcessExit, ProcessRole, Sandbox, SandboxBackend

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
        self._procs: Processes | None = None
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
        spec = sandbox_spec(self.env_id, fn, mounts)
        try:
            self._sandbox = await self._backend.create(spec, self._on_log, self._on_exit)
            self._procs = Processes(self._sandbox)
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
        assert self._mounts is not None and self._procs is not None and self._plan is not None
        procs = self._procs
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
                names = self._extension_names()
                failure = await procs.launch_extensions(
                    names, self._ext_env, self.extensions, request_id
                )
                if failure is None and self.extensions.unregistered():
                    # extension init: the runtime starts only once every extension registered
                    failure = await registered.wait()
                if failure is None:
                    # the end of Extension init; Runtime and Function init follow
                    self._mark("runtime_start")
                    failure = await procs.start_runtime(self._plan, request_id)
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

    def _extension_names(self) -> list[str]:
        """The files in /opt/extensions: the layers' (or an image's own)."""
        if self._mounts is not None and self._mounts.image_rootfs is not None:
            return list(external_extensions([self._mounts.image_rootfs / "opt"]))
        return list(external_extensions([layer.code_dir for layer in self.function.layers]))

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
        cycle.release()
        invoke_event = cycle.extension_event()
        for ext in self.extensions.registered():
            if ext.subscribed("INVOKE") and ext.alive:
                ext.deliver(invoke_event)
        self.runtime.deliver(cycle.runtime_event())
        settled = await cycle.settle(self._responded, self.flow.check_gates, self._exit_type)
        reply, outcome, failure = settled.reply, settled.outcome, settled.failure
        await self._report.output_arrived()
        reason = "timeout" if failure is EnvEvent.TIMEOUT else "failure"
        reset_first = failure is not None and not self.extensions.registered()
        if failure is not None and reset_first:
            # no extensions: the reset is an immediate kill (0 ms budget), so it is over
            # before the caller hears of the failure and the next invoke finds this
            # environment (and its /tmp) ready
            self.machine.fire(failure)
            await self._reset(reason)
        runtime_done = cycle.runtime_done_at or self._clock.monotonic()
        self._report.runtime_done(cycle, outcome, settled.produced, runtime_done)
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
        assert self._procs is not None
        self.runtime.cancel()
        self._freezer.thaw()
        await stop_processes(self._procs, self._clock, self.extensions, self.telemetry, reason)
        self.runtime.current = None
        if self.telemetry is not None:
            await self.telemetry.reset()

    def _exit_type(self) -> ErrorType:
        assert self._procs is not None
        return self._procs.exit_type()

    def _responded(self) -> None:
        self.machine.fire(EnvEvent.RESPONSE)

    def _freeze_soon(self) -> None:
        self._freezer.freeze_soon(lambda: self.state is EnvState.IDLE)

    # ------------------------------------------------------------------ callbacks

    def _on_log(self, role: ProcessRole, name: str, line: bytes) -> None:
        self._report.output(role, line)

    def _on_exit(self, exit: ProcessExit) -> None:
        current_runtime = self._procs is not None and self._procs.exited(exit)
        if self.state in (EnvState.SHUTTING_DOWN, EnvState.RESETTING, EnvState.DEAD):
            return
        self.flow.process_exited(exit, current_runtime)

    def _function_init(self) -> None:
        # once per Init phase, and only while it runs: the timeline's Runtime/Function split
        if self.state is EnvState.INITIALIZING and not self._function_init_marked:
            self._function_init_marked = True
            self._mark("function_init_start")

    def _subscribe(self, ext_name: str, sub: Subscription) -> None:
        self._report.subscribe(ext_name, sub)


def env_id_for(function_name: str) -> str:
    return f"{function_name.lower()[:20].replace('_', '-')}-{os.urandom(5).hex()}"
