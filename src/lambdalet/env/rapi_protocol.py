"""Runtime API (2018-06-01) wire rules, without I/O: limits, headers, bodies.

Also the bodies of the function errors a caller receives (contract §1, §7.3).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from lambdalet.env.outcome import ErrorType

#: the largest buffered response a runtime may post (6 MiB + 100 bytes)
MAX_RESPONSE_BYTES = 6_291_556
#: header fields up to this size are accepted (the Python RIC's X-Ray cause can be just under 1 MiB)
MAX_HEADER_BYTES = 2 * 1024 * 1024

ERROR_TYPE_HEADER = "Lambda-Runtime-Function-Error-Type"
RESPONSE_MODE_HEADER = "Lambda-Runtime-Function-Response-Mode"
#: the trailer a streaming runtime reports a failure in (base64 of the error document)
ERROR_BODY_TRAILER = "Lambda-Runtime-Function-Error-Body"
ERROR_CAUSE_CONTENT_TYPE = "application/vnd.aws.lambda.error.cause+json"

ACCEPTED_BODY = b'{"status":"OK"}'

_KNOWN_ERROR_TYPE = re.compile(r"(Runtime|Function)\.[A-Z][a-zA-Z]+")


@dataclass(frozen=True)
class RapiError:
    """An error answer of the in-sandbox APIs: status plus ``{"errorMessage","errorType"}``."""

    status: int
    error_type: str
    message: str

    def body(self) -> bytes:
        return json.dumps({"errorMessage": self.message, "errorType": self.error_type}).encode()


class RapiRefused(Exception):
    """Raised by the platform's side of an in-sandbox API to answer with an error."""

    def __init__(self, error: RapiError) -> None:
        super().__init__(error.message)
        self.error = error


INVALID_REQUEST_ID = RapiError(400, "InvalidRequestID", "Invalid request ID")
PAYLOAD_TOO_LARGE = RapiError(
    413,
    "RequestEntityTooLarge",
    f"Exceeded maximum allowed payload size ({MAX_RESPONSE_BYTES} bytes).",
)
INVALID_RESPONSE_MODE = RapiError(
    400, "InvalidFunctionResponseMode", "Invalid function response mode"
)
TRUNCATED = RapiError(400, "TruncatedHTTPRequest", "HTTP request detected as truncated")


def invalid_transition(from_state: str, to_state: str) -> RapiError:
    return RapiError(
        403,
        "InvalidStateTransition",
        f"State transition from {from_state} to {to_state} failed for runtime. "
        "Error: State transition is not allowed",
    )


@dataclass(frozen=True)
class Event:
    """One invoke as handed to the runtime's ``next``."""

    request_id: str
    payload: bytes
    deadline_ms: int
    invoked_function_arn: str
    trace_id: str
    client_context: str | None = None
    cognito_identity: str | None = None

    def headers(self) -> dict[str, str]:
        h = {
            "Content-Type": "application/json",
            "Lambda-Runtime-Aws-Request-Id": self.request_id,
            "Lambda-Runtime-Deadline-Ms": str(self.deadline_ms),
            "Lambda-Runtime-Invoked-Function-Arn": self.invoked_function_arn,
            "Lambda-Runtime-Trace-Id": self.trace_id,
        }
        if self.client_context is not None:
            h["Lambda-Runtime-Client-Context"] = self.client_context
        if self.cognito_identity is not None:
            h["Lambda-Runtime-Cognito-Identity"] = self.cognito_identity
        return h


def internal_error_type(header_value: str | None) -> str:
    """The error type the platform records for REPORT/telemetry (not the caller's body)."""
    if header_value:
        m = _KNOWN_ERROR_TYPE.search(header_value)
        if m:
            return m.group(0)
        if header_value.startswith("Function."):
            return ErrorType.FUNCTION_UNKNOWN
    return ErrorType.RUNTIME_UNKNOWN


def caller_error_body(body: bytes, content_type: str | None, header_type: str | None) -> bytes:
    """What the caller receives for a posted ``/error`` (or ``/init/error``).

    The body passes through verbatim, except that an empty body gets the generic
    message and the X-Ray ``errorCause`` is stripped from the error-cause content type.
    """
    if not body.strip():
        out: dict[str, str] = {"errorMessage": "Unknown application error occurred"}
        if header_type:
            out["errorType"] = header_type
        return json.dumps(out).encode()
    if content_type and content_type.split(";")[0].strip() == ERROR_CAUSE_CONTENT_TYPE:
        try:
            doc = json.loads(body)
        except ValueError:
            return body
        if isinstance(doc, dict):
            doc.pop("errorCause", None)
            return json.dumps(doc).encode()
    return body


def function_error(error_type: str, request_id: str, detail: str) -> bytes:
    """``{"errorType": …, "errorMessage": "RequestId: <id> Error: <detail>"}``."""
    return json.dumps(
        {"errorType": error_type, "errorMessage": f"RequestId: {request_id} Error: {detail}"}
    ).encode()


def timed_out(request_id: str, timeout_s: float) -> bytes:
    return function_error(
        ErrorType.SANDBOX_TIMEDOUT, request_id, f"Task timed out after {timeout_s:.2f} seconds"
    )


def exit_error(request_id: str, how: str) -> bytes:
    """``how`` is e.g. ``exit status 1`` or ``signal: killed``; exit code 0 has its own text."""
    if how == "exit status 0":
        return function_error(
            ErrorType.RUNTIME_EXIT_ERROR, request_id, "Runtime exited without providing a reason"
        )
    return function_error(
        ErrorType.RUNTIME_EXIT_ERROR, request_id, f"Runtime exited with error: {how}"
    )


def response_too_large() -> bytes:
    return json.dumps(
        {
            "errorMessage": "Response payload size exceeded maximum allowed payload size "
            f"({MAX_RESPONSE_BYTES} bytes).",
            "errorType": ErrorType.FUNCTION_RESPONSE_SIZE_TOO_LARGE,
        }
    ).encode()


def unknown_error(request_id: str) -> bytes:
    return function_error(
        ErrorType.RUNTIME_UNKNOWN, request_id, "Unknown application error occurred"
    )
