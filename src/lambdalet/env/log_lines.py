"""The platform's text log lines (contract §5.2), as pure functions.

Separators are TABs except inside START / END and after INIT_START's first field,
exactly as Lambda prints them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass


def init_start(runtime_version: str, runtime_version_arn: str) -> str:
    return (
        f"INIT_START Runtime Version: {runtime_version}\tRuntime Version ARN: {runtime_version_arn}"
    )


def init_report(duration_ms: float, phase: str, status: str, error_type: str | None) -> str:
    line = f"INIT_REPORT Init Duration: {duration_ms:.2f} ms\tPhase: {phase}\tStatus: {status}"
    if error_type:
        line += f"\tError Type: {error_type}"
    return line


def start(request_id: str, version: str) -> str:
    return f"START RequestId: {request_id} Version: {version}"


def end(request_id: str) -> str:
    return f"END RequestId: {request_id}"


def billed_ms(duration_ms: float, init_ms: float | None, bill_init: bool) -> int:
    total = duration_ms + (init_ms if (init_ms is not None and bill_init) else 0.0)
    # round up to the next whole millisecond, ignoring float dust below 1 ns
    return max(1, math.ceil(round(total, 6)))


@dataclass(frozen=True)
class Report:
    request_id: str
    duration_ms: float
    billed_ms: int
    memory_mb: int
    max_memory_used_mb: int
    init_duration_ms: float | None = None
    #: None on success, else "timeout" or "error"
    status: str | None = None
    error_type: str | None = None

    def line(self) -> str:
        parts = [
            f"REPORT RequestId: {self.request_id}",
            f"Duration: {self.duration_ms:.2f} ms",
            f"Billed Duration: {self.billed_ms} ms",
            f"Memory Size: {self.memory_mb} MB",
            f"Max Memory Used: {self.max_memory_used_mb} MB",
        ]
        if self.init_duration_ms is not None:
            parts.append(f"Init Duration: {self.init_duration_ms:.2f} ms")
        if self.status == "timeout":
            parts.append("Status: timeout")
        elif self.status is not None:
            parts.append(f"Status: {self.status}")
            if self.error_type:
                parts.append(f"Error Type: {self.error_type}")
        # Lambda ends REPORT with a trailing TAB
        return "\t".join(parts) + "\t"


def extension(name: str, state: str, events: Sequence[str]) -> str:
    return f"EXTENSION\tName: {name}\tState: {state}\tEvents: [{', '.join(events)}]"


def telemetry(name: str, state: str, types: Sequence[str]) -> str:
    return f"TELEMETRY\tName: {name}\tState: {state}\tTypes: [{', '.join(types)}]"
