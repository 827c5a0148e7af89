"""One invoke's outcome, as one typed record every view reads.  No I/O.

The REPORT line, the admin API's recent invocations, ``/metrics`` and the dashboard all
show the same :class:`InvokeOutcome`.  Each view renders it its own way: the REPORT line
prints ``Status`` / ``Error Type`` only where Lambda does (a timeout, a crash, an Init
failure, a platform-detected error such as an oversized response), never for an error the
handler raised, which Lambda reports to the caller and in the log but not on REPORT.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import StrEnum


class ErrorType(StrEnum):
    """Every error type the platform itself gives a function's caller, REPORT and
    telemetry (docs/errors.md, "Function errors"): the one place they are spelled.

    Types the function's code reports (``ValueError``, ``Runtime.ImportModuleError``)
    are passed through as the runtime posted them, not listed here.
    """

    RUNTIME_UNKNOWN = "Runtime.Unknown"
    RUNTIME_EXIT_ERROR = "Runtime.ExitError"
    RUNTIME_OUT_OF_MEMORY = "Runtime.OutOfMemory"
    RUNTIME_INVALID_ENTRYPOINT = "Runtime.InvalidEntrypoint"
    EXTENSION_LAUNCH_ERROR = "Extension.LaunchError"
    EXTENSION_INIT_ERROR = "Extension.InitError"
    EXTENSION_EXIT_ERROR = "Extension.ExitError"
    EXTENSION_CRASH = "Extension.Crash"
    SANDBOX_TIMEDOUT = "Sandbox.Timedout"
    FUNCTION_RESPONSE_SIZE_TOO_LARGE = "Function.ResponseSizeTooLarge"
    FUNCTION_UNKNOWN = "Function.Unknown"


#: the prefix of the types Lambda blames on the platform (telemetry status ``failure``)
SANDBOX_PREFIX = "Sandbox."


class Outcome(StrEnum):
    SUCCESS = "success"
    #: the function reported an error: the handler raised, or the runtime posted /error
    ERROR = "error"
    TIMEOUT = "timeout"
    #: the runtime or an extension died, or ran out of memory, during the invoke
    CRASH = "crash"
    #: the Init phase that ran inside the invoke failed (ImportModuleError, ...)
    INIT_FAILURE = "init_failure"
    #: refused with 429 before any environment ran it (no REPORT)
    THROTTLE = "throttle"


#: ``Status`` on REPORT for each outcome Lambda prints one for
_REPORT_STATUS = {
    Outcome.TIMEOUT: "timeout",
    Outcome.CRASH: "error",
    Outcome.INIT_FAILURE: "error",
}


@dataclass(frozen=True)
class InvokeOutcome:
    kind: Outcome
    #: ``ValueError``, ``Runtime.ImportModuleError``, ``Sandbox.Timedout``, ... (None on success)
    error_type: str | None = None
    #: the REPORT line's ``Status`` (None: no Status field, as for success or a handler error)
    report_status: str | None = None

    @property
    def ok(self) -> bool:
        return self.kind is Outcome.SUCCESS

    @classmethod
    def success(cls) -> InvokeOutcome:
        return cls(Outcome.SUCCESS)

    @classmethod
    def function_error(cls, error_type: str) -> InvokeOutcome:
        return cls(Outcome.ERROR, error_type)

    @classmethod
    def platform_error(cls, error_type: str) -> InvokeOutcome:
        """An error the platform found in the function's answer (shown on REPORT)."""
        return cls(Outcome.ERROR, error_type, "error")

    @classmethod
    def timeout(cls) -> InvokeOutcome:
        return cls(Outcome.TIMEOUT, ErrorType.SANDBOX_TIMEDOUT, "timeout")

    @classmethod
    def crash(cls, error_type: str) -> InvokeOutcome:
        return cls(Outcome.CRASH, error_type, "error")

    @classmethod
    def init_failure(cls, init_status: str, error_type: str | None) -> InvokeOutcome:
        """``init_status`` is the INIT_REPORT's: ``error`` or ``timeout``."""
        status = "timeout" if init_status == "timeout" else "error"
        return cls(Outcome.INIT_FAILURE, error_type or ErrorType.RUNTIME_UNKNOWN, status)

    @classmethod
    def throttle(cls, reason: str) -> InvokeOutcome:
        return cls(Outcome.THROTTLE, reason or "TooManyRequestsException")

    @property
    def report_error_type(self) -> str | None:
        """The REPORT line's ``Error Type`` (only with a Status other than timeout)."""
        return self.error_type if self.report_status == "error" else None


def function_error_type(body: bytes, header_type: str | None) -> str:
    """The type of an error the runtime posted: the body's ``errorType`` (what the handler
    raised, e.g. ``ValueError``), else the ``Lambda-Runtime-Function-Error-Type`` header."""
    try:
        doc = json.loads(body)
    except ValueError:
        doc = None
    if isinstance(doc, dict):
        etype = doc.get("errorType")
        if isinstance(etype, str) and etype:
            return etype
    return header_type or ErrorType.RUNTIME_UNKNOWN


def telemetry_status(outcome: InvokeOutcome) -> str:
    """Telemetry's status: timeout; failure for Sandbox.* errors; error otherwise (success
    for an error the handler raised, as on REPORT)."""
    status, error_type = outcome.report_status, outcome.error_type
    if status is None:
        return "success"
    if status == "timeout":
        return "timeout"
    if error_type and error_type.startswith(SANDBOX_PREFIX):
        return "failure"
    return "error"
