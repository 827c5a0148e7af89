"""What the platform waits for hears back: the runtime's answer, or a participant's failure.

An :class:`Answer` is what resolves a gate (``gates.py``) or an invoke's answer: a
response, a posted error, or the failure that broke the wait (a process exit, an
extension's ``init/error`` / ``exit/error``).  The functions below classify a failure
into the AWS error type and the caller's body.  No I/O.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

from lambdalet.env import rapi_protocol as rp
from lambdalet.env.outcome import ErrorType, InvokeOutcome, function_error_type
from lambdalet.sandbox.base import ProcessExit, ProcessRole


class AnswerKind(StrEnum):
    RESPONSE = "response"
    #: the runtime posted /error (or a streamed response ended with an error trailer)
    ERROR = "error"
    TOO_LARGE = "too_large"
    #: the runtime or an extension exited, or could not be started
    CRASH = "crash"
    #: the runtime posted /init/error
    INIT_ERROR = "init_error"
    #: an extension posted init/error or exit/error
    EXT_ERROR = "ext_error"


@dataclass(frozen=True)
class Answer:
    kind: AnswerKind
    body: bytes = b""
    content_type: str | None = None
    error_type: str | None = None
    exit: ProcessExit | None = None
    #: bytes the runtime produced when they were not all kept in ``body`` (streamed)
    produced: int | None = None

    @property
    def failed(self) -> bool:
        """A participant failed (rather than the runtime answering)."""
        return self.kind in (AnswerKind.CRASH, AnswerKind.EXT_ERROR)


#: the runtime's exit type, read when needed: ``Runtime.OutOfMemory`` when the cgroup's
#: OOM killer struck since last asked, else ``Runtime.ExitError``
ExitType = Callable[[], ErrorType]


def crash(error_type: ErrorType, request_id: str, detail: str) -> Answer:
    """A participant that could not be started."""
    return Answer(
        AnswerKind.CRASH,
        error_type=error_type,
        body=rp.function_error(error_type, request_id, detail),
    )


def crash_type(got: Answer, exit_type: ExitType) -> str:
    """The error type of a participant's failure during an invoke."""
    if got.kind is AnswerKind.EXT_ERROR:
        return got.error_type or ErrorType.EXTENSION_EXIT_ERROR
    if got.exit is not None and got.exit.role is ProcessRole.EXTENSION:
        return ErrorType.EXTENSION_CRASH
    return exit_type()


def crash_body(got: Answer, request_id: str) -> bytes:
    """The caller's body for a participant's failure during an invoke."""
    if got.kind is AnswerKind.EXT_ERROR:
        return rp.function_error(
            ErrorType.EXTENSION_EXIT_ERROR, request_id, got.body.decode(errors="replace")
        )
    assert got.exit is not None
    if got.exit.role is ProcessRole.EXTENSION:
        return rp.function_error(
            ErrorType.EXTENSION_CRASH,
            request_id,
            f"Extension {got.exit.name} exited with error: {got.exit.describe()}",
        )
    return rp.exit_error(request_id, got.exit.describe())


def init_failure(
    failure: Answer, posted: Answer | None, request_id: str, exit_type: ExitType
) -> tuple[str, bytes]:
    """(errorType for logs, body for a caller) of a failed Init; ``posted`` is the
    runtime's /init/error, if it posted one."""
    if posted is not None:
        etype = rp.internal_error_type(posted.error_type)
        if posted.error_type and etype == ErrorType.RUNTIME_UNKNOWN:
            etype = posted.error_type
        return etype, rp.caller_error_body(posted.body, posted.content_type, posted.error_type)
    if failure.kind is AnswerKind.EXT_ERROR:
        etype = failure.error_type or ErrorType.EXTENSION_INIT_ERROR
        detail = failure.body.decode(errors="replace")
        return etype, rp.function_error(etype, request_id, detail)
    if failure.kind is AnswerKind.CRASH and failure.exit is not None:
        if failure.exit.role is ProcessRole.EXTENSION:
            detail = f"exit code {failure.exit.describe()}"
            return ErrorType.EXTENSION_CRASH, rp.function_error(
                ErrorType.EXTENSION_CRASH, request_id, detail
            )
        return exit_type(), rp.exit_error(request_id, failure.exit.describe())
    return failure.error_type or ErrorType.RUNTIME_UNKNOWN, failure.body


def reply_for(got: Answer) -> tuple[bytes, str | None]:
    """(payload, X-Amz-Function-Error) for the runtime's answer."""
    if got.kind is AnswerKind.RESPONSE:
        return got.body, None
    if got.kind is AnswerKind.ERROR:
        return got.body, "Unhandled"
    return rp.response_too_large(), "Unhandled"


def answer_outcome(got: Answer) -> InvokeOutcome:
    """The outcome of an invoke the runtime answered."""
    if got.kind is AnswerKind.TOO_LARGE:
        return InvokeOutcome.platform_error(ErrorType.FUNCTION_RESPONSE_SIZE_TOO_LARGE)
    if got.kind is AnswerKind.ERROR:
        return InvokeOutcome.function_error(function_error_type(got.body, got.error_type))
    return InvokeOutcome.success()
