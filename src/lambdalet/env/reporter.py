"""Everything an environment tells the world about its phases: log lines, telemetry
records and observer reports, in one place.

``Environment`` decides *what* happened; a :class:`Reporter` writes it: the INIT_START /
START / END / REPORT lines to the log stream, the ``platform.*`` records to telemetry,
:class:`~lambdalet.env.observer.InitReport` / ``InvokeReport`` to the observers.  The
shapes come from ``report`` (pure).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

from lambdalet.clock import Clock
from lambdalet.env import log_lines
from lambdalet.env import report as rpt
from lambdalet.env import telemetry_protocol as tp
from lambdalet.env.cycle import InvokeCycle
from lambdalet.env.extensions import Extension
from lambdalet.env.launch import RuntimeMounts
from lambdalet.env.log_sink import LogStream
from lambdalet.env.observer import EnvObserver, InitReport, InvokeReport
from lambdalet.env.outcome import InvokeOutcome
from lambdalet.env.settings import EnvSettings
from lambdalet.env.telemetry import TelemetryHub
from lambdalet.model import FunctionRecord, InvokeOutput
from lambdalet.sandbox.base import ProcessRole


class Reporter:
    def __init__(
        self,
        env_id: str,
        function: FunctionRecord,
        settings: EnvSettings,
        stream: LogStream,
        clock: Clock,
        observer: EnvObserver | None,
    ) -> None:
        self._env_id = env_id
        self._function = function
        self._settings = settings
        self.stream = stream
        self._clock = clock
        self._observer = observer
        self.telemetry: TelemetryHub | None = None

    def emit(self, type_: str, record: Mapping[str, object]) -> None:
        if self.telemetry is not None:
            self.telemetry.emit(type_, record)

    @property
    def listening(self) -> bool:
        """True when a telemetry record would go anywhere (a subscriber, or Init's backlog).

        The invoke path builds its larger records (spans, timestamps) only then.
        """
        return self.telemetry is not None and self.telemetry.active

    # ------------------------------------------------------------------ init

    def init_started(self, phase: str, mounts: RuntimeMounts) -> None:
        fn = self._function
        self.stream.line(log_lines.init_start(mounts.runtime_version, mounts.runtime_version_arn))
        for note in mounts.notes:
            self.stream.line(note)
        self.emit(
            "platform.initStart",
            {
                "initializationType": self._settings.init_type,
                "phase": phase,
                "functionName": fn.name,
                "functionVersion": fn.version,
                "instanceId": self.stream.name,
                "instanceMaxMemory": fn.memory_mb,
                "runtimeVersion": mounts.runtime_version,
                "runtimeVersionArn": mounts.runtime_version_arn,
            },
        )

    def init_succeeded(self, phase: str, duration_ms: float, ready: list[Extension]) -> None:
        init_type = self._settings.init_type
        if init_type != "on-demand":
            # initialized ahead of time: its Init is reported on its own, never on a REPORT
            self.stream.line(log_lines.init_report(duration_ms, phase, "success", None))
        for ext in ready:
            self.stream.line(log_lines.extension(ext.name, "Ready", ext.events))
            self.emit(
                "platform.extension",
                {"name": ext.name, "state": "Ready", "events": list(ext.events)},
            )
        self._init_done(phase, duration_ms, "success", None)
        if self.telemetry is not None:
            # Init is over: no new subscriptions (after its records went to the backlog)
            self.telemetry.close_subscriptions()

    def init_failed(self, phase: str, duration_ms: float, status: str, error_type: str) -> None:
        self.stream.line(log_lines.init_report(duration_ms, phase, status, error_type))
        self._init_done(phase, duration_ms, status, error_type)

    def _init_done(self, phase: str, duration_ms: float, status: str, etype: str | None) -> None:
        done = rpt.init_done(self._settings.init_type, phase, status, etype)
        self.emit("platform.initRuntimeDone", done)
        self.emit("platform.initReport", rpt.init_report(done, duration_ms))
        if self._observer is not None:
            fn = self._function
            self._observer.init_reported(
                InitReport(
                    fn.name, fn.version, phase, self._settings.init_type, duration_ms, status
                )
            )

    def output(self, role: ProcessRole, line: bytes) -> None:
        """A line the runtime or an extension printed."""
        self.stream.raw(line)
        if self.telemetry is not None:
            category = "function" if role is ProcessRole.RUNTIME else "extension"
            self.telemetry.log_line(category, line)

    async def output_arrived(self) -> None:
        """Let the loop read what the runtime wrote before it called next.

        Its output pipes are read by loop callbacks; the first yield lets the current
        batch of ready callbacks run, the second runs after a fresh poll, so every byte
        written before the runtime's last request is in the log before END and REPORT.
        (A sandbox call that drains its pipes would say this outright; the sandbox
        contract has none yet.)
        """
        await asyncio.sleep(0)
        await asyncio.sleep(0)

    def subscribe(self, ext_name: str, sub: tp.Subscription) -> None:
        """An extension subscribes to telemetry or logs (refusals raise RapiRefused)."""
        assert self.telemetry is not None
        self.telemetry.subscribe(ext_name, sub)
        types = [t.capitalize() for t in sub.types]
        state = {"name": ext_name, "state": "Subscribed", "types": list(sub.types)}
        if sub.api == "telemetry":
            self.stream.line(log_lines.telemetry(ext_name, "Subscribed", types))
            self.emit("platform.telemetrySubscription", state)
        else:
            self.emit("platform.logsSubscription", state)

    # ------------------------------------------------------------------ invoke

    def invoke_started(self, cycle: InvokeCycle) -> None:
        self.stream.line(log_lines.start(cycle.request_id, self._function.version))
        self.emit(
            "platform.start",
            {
                "requestId": cycle.request_id,
                "version": self._function.version,
                "tracing": rpt.tracing(cycle.trace_id),
            },
        )

    def runtime_done(
        self, cycle: InvokeCycle, outcome: InvokeOutcome, produced: int, at: float
    ) -> None:
        if self.listening:
            self.emit("platform.runtimeDone", rpt.runtime_done(cycle, outcome, produced, at))

    def invoke_ended(self, cycle: InvokeCycle, end: rpt.InvokeEnd, peak_bytes: int) -> None:
        """END and REPORT, telemetry's platform.report, the observers, and the caller's
        answer if it has not had it yet."""
        fn, rid = self._function, cycle.request_id
        m = rpt.Measures.of(
            end,
            self._clock.monotonic() - cycle.started,
            fn.timeout_s,
            fn.memory_mb,
            peak_bytes,
            self._settings.bill_init,
        )
        self.emit("platform.end", {"requestId": rid})
        # END and REPORT in one write: one system call less per invoke
        self.stream.lines(log_lines.end(rid), rpt.report_line(rid, end, m))
        if self.listening:
            report = rpt.platform_report(rid, cycle.trace_id, end, m, self._clock.wall())
            self.emit("platform.report", report)
        if self._observer is not None:
            self._observer.invoke_reported(
                InvokeReport(
                    fn.name,
                    fn.version,
                    m.duration_ms,
                    end.cold_init_ms,
                    end.outcome,
                    m.max_memory_used_mb,
                    request_id=rid,
                    env_id=self._env_id,
                    billed_ms=m.billed_ms,
                    time=self._clock.wall(),
                    function_error=end.function_error,
                    log_stream=self.stream.name,
                )
            )
        if cycle.caller.done():
            return
        tail = self.stream.stop_capture() if cycle.request.log_tail else None
        cycle.caller.set_result(
            InvokeOutput(
                payload=end.payload,
                executed_version=fn.version,
                function_error=end.function_error,
                log_result=tail,
            )
        )
