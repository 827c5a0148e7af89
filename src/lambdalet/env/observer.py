"""What an environment tells whoever watches it (metrics), without knowing who that is."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from lambdalet.env.outcome import InvokeOutcome


@dataclass(frozen=True)
class InvokeReport:
    """The figures of one REPORT line."""

    function: str
    version: str
    duration_ms: float
    #: set on a cold start: the Init it began with, also one that ran inside it and failed
    init_ms: float | None
    outcome: InvokeOutcome
    max_memory_used_mb: int
    request_id: str = ""
    env_id: str = ""
    billed_ms: int = 0
    time: float = 0.0  # epoch seconds of the REPORT
    #: "Unhandled" when the caller got a function error (also for errors the runtime reported)
    function_error: str | None = None
    #: the environment's log stream (where this invoke's lines are)
    log_stream: str = ""


@dataclass(frozen=True)
class InitReport:
    function: str
    version: str
    phase: str  # "init" | "invoke"
    init_type: str
    duration_ms: float
    status: str  # "success" | "error" | "timeout"


class EnvObserver(Protocol):
    def invoke_reported(self, report: InvokeReport) -> None: ...

    def init_reported(self, report: InitReport) -> None: ...

    def throttled(self, function: str, version: str, reason: str) -> None:
        """An invoke refused with 429 before any environment ran it."""
        ...


class FanOut:
    """Several observers behind one."""

    def __init__(self, *observers: EnvObserver) -> None:
        self._observers = observers

    def invoke_reported(self, report: InvokeReport) -> None:
        for o in self._observers:
            o.invoke_reported(report)

    def init_reported(self, report: InitReport) -> None:
        for o in self._observers:
            o.init_reported(report)

    def throttled(self, function: str, version: str, reason: str) -> None:
        for o in self._observers:
            o.throttled(function, version, reason)
