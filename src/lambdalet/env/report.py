"""How one invoke ended, as one frozen record, and the records built from it.  No I/O.

``Environment`` fills an :class:`InvokeEnd` once per invoke and hands it to its
reporting step, which writes END and REPORT, sends telemetry's ``platform.report`` and
tells the observers.  The shapes of the telemetry records live here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from lambdalet.env import log_lines
from lambdalet.env.cycle import InvokeCycle
from lambdalet.env.outcome import InvokeOutcome, telemetry_status
from lambdalet.env.telemetry_protocol import iso_time

MIB = 1024 * 1024


@dataclass(frozen=True)
class InvokeEnd:
    outcome: InvokeOutcome
    #: what the caller gets, with ``X-Amz-Function-Error`` (None: no function error)
    payload: bytes
    function_error: str | None
    #: the REPORT's Init Duration: the on-demand Init phase this invoke is the first after
    init_ms: float | None = None
    #: the Init this invoke began with (also one that ran inside it, failed or not), for
    #: the views that show cold starts
    cold_init_ms: float | None = None
    #: from the runtime's next after its answer to the end of the invoke phase
    extension_overhead_ms: float | None = None

    @property
    def capped(self) -> bool:
        """A timed-out invoke reports exactly its timeout as its duration."""
        return self.outcome.report_status == "timeout"


@dataclass(frozen=True)
class Measures:
    """The REPORT's numbers."""

    duration_ms: float
    billed_ms: int
    memory_mb: int
    max_memory_used_mb: int

    @classmethod
    def of(
        cls,
        end: InvokeEnd,
        elapsed_s: float,
        timeout_s: float,
        memory_mb: int,
        peak_bytes: int,
        bill_init: bool,
    ) -> Measures:
        duration_ms = elapsed_s * 1000.0
        if end.capped:
            duration_ms = min(duration_ms, timeout_s * 1000.0)
        used_mb = min(math.ceil(peak_bytes / MIB), memory_mb)
        billed = log_lines.billed_ms(duration_ms, end.init_ms, bill_init)
        return cls(duration_ms, billed, memory_mb, used_mb)


def report_line(request_id: str, end: InvokeEnd, m: Measures) -> str:
    return log_lines.Report(
        request_id=request_id,
        duration_ms=m.duration_ms,
        billed_ms=m.billed_ms,
        memory_mb=m.memory_mb,
        max_memory_used_mb=m.max_memory_used_mb,
        init_duration_ms=end.init_ms,
        status=end.outcome.report_status,
        error_type=end.outcome.report_error_type,
    ).line()


def tracing(trace_id: str) -> dict[str, str]:
    return {"type": "X-Amzn-Trace-Id", "value": trace_id}


def platform_report(
    request_id: str, trace_id: str, end: InvokeEnd, m: Measures, now_wall: float
) -> dict[str, object]:
    """Telemetry's ``platform.report``."""
    metrics: dict[str, object] = {
        "durationMs": round(m.duration_ms, 3),
        "billedDurationMs": m.billed_ms,
        "memorySizeMB": m.memory_mb,
        "maxMemoryUsedMB": m.max_memory_used_mb,
    }
    if end.init_ms is not None:
        metrics["initDurationMs"] = round(end.init_ms, 3)
    report: dict[str, object] = {
        "requestId": request_id,
        "status": telemetry_status(end.outcome),
        "metrics": metrics,
        "tracing": tracing(trace_id),
    }
    error_type = end.outcome.report_error_type
    if end.outcome.report_status is not None and error_type:
        report["errorType"] = error_type
    overhead = end.extension_overhead_ms
    if overhead is not None:
        report["spans"] = [
            {
                "name": "extensionOverhead",
                "start": iso_time(now_wall - overhead / 1000.0),
                "durationMs": round(overhead, 3),
            }
        ]
    return report


def runtime_done(
    cycle: InvokeCycle, outcome: InvokeOutcome, produced: int, runtime_done_at: float
) -> dict[str, object]:
    """Telemetry's ``platform.runtimeDone``."""
    record: dict[str, object] = {
        "requestId": cycle.request_id,
        "status": telemetry_status(outcome),
    }
    if outcome.error_type and outcome.report_status:
        record["errorType"] = outcome.error_type
    record["metrics"] = {
        "durationMs": round((runtime_done_at - cycle.released) * 1000.0, 3),
        "producedBytes": produced,
    }
    record["spans"] = runtime_spans(cycle, runtime_done_at)
    record["tracing"] = tracing(cycle.trace_id)
    return record


def runtime_spans(cycle: InvokeCycle, runtime_done_at: float) -> list[dict[str, object]]:
    """responseLatency, responseDuration, runtimeOverhead of platform.runtimeDone."""
    started, done = cycle.answer_started_at, cycle.answer_done_at
    if started is None or done is None:
        return []
    released, released_wall = cycle.released, cycle.released_wall

    def span(name: str, a: float, b: float) -> dict[str, object]:
        return {
            "name": name,
            "start": iso_time(released_wall + (a - released)),
            "durationMs": round(max(0.0, b - a) * 1000.0, 3),
        }

    return [
        span("responseLatency", released, started),
        span("responseDuration", started, done),
        span("runtimeOverhead", done, max(done, runtime_done_at)),
    ]


def init_done(init_type: str, phase: str, status: str, error_type: str | None) -> dict[str, object]:
    """``platform.initRuntimeDone``: a failed Init names its status and error type."""
    record: dict[str, object] = {"initializationType": init_type, "phase": phase, "status": status}
    if status != "success":
        record["errorType"] = error_type
    return record


def init_report(done: dict[str, object], duration_ms: float) -> dict[str, object]:
    """``platform.initReport``: initRuntimeDone's fields plus the duration."""
    return {**done, "metrics": {"durationMs": duration_ms}}
