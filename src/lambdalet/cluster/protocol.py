"""The internal invoke hop between an API replica and a worker: how an ``InvokeInput`` and
its outcome travel.  No I/O here.

The payload goes as the raw body both ways; everything else in headers, so neither side
parses or copies JSON around the (up to 6 MB) payload.  A service error travels as the
error body and type the public API would answer; ``X-Lambdalet-Retry: next`` marks a
refusal that provably did not run the function (draining, unknown version), so the
replica may try another worker.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from dataclasses import dataclass

from lambdalet import errors
from lambdalet.errors import LambdaApiError, ServiceException
from lambdalet.model import InvokeInput, InvokeOutput

INVOKE_PATH = "/lambdalet/internal/v1/invoke"
RETIRE_PATH = "/lambdalet/internal/v1/retire"
TOKEN_HEADER = "X-Lambdalet-Cluster-Token"
RETRY_HEADER = "X-Lambdalet-Retry"

_FN = "X-Lambdalet-Function"
_VERSION = "X-Lambdalet-Version"
_REVISION = "X-Lambdalet-Revision"
_INVOKED = "X-Lambdalet-Invoked-Arn"
_REQUEST_ID = "X-Lambdalet-Request-Id"
_CONTEXT = "X-Lambdalet-Client-Context"
_TAIL = "X-Lambdalet-Log-Tail"
_TRACE = "X-Lambdalet-Trace-Id"
_EXECUTED = "X-Lambdalet-Executed-Version"
_FN_ERROR = "X-Lambdalet-Function-Error"
_LOG_RESULT = "X-Lambdalet-Log-Result"


@dataclass(frozen=True)
class RoutedInvoke:
    """What a worker needs to run one invoke: the version (it reads the record from the
    shared store) and the request as the API validated it."""

    function_name: str
    version: str
    revision_id: str
    invoked_arn: str
    request_id: str
    payload: bytes
    client_context: str | None = None
    log_tail: bool = False
    trace_id: str | None = None


def request_headers(request: InvokeInput, token: str) -> dict[str, str]:
    fn = request.function
    headers = {
        TOKEN_HEADER: token,
        _FN: fn.name,
        _VERSION: fn.version,
        _REVISION: fn.revision_id,
        _INVOKED: request.invoked_arn,
        _REQUEST_ID: request.request_id,
        "Content-Type": "application/octet-stream",
    }
    if request.client_context is not None:
        headers[_CONTEXT] = base64.b64encode(request.client_context.encode()).decode()
    if request.log_tail:
        headers[_TAIL] = "1"
    if request.trace_id is not None:
        headers[_TRACE] = request.trace_id
    return headers


def parse_request(headers: Mapping[str, str], body: bytes) -> RoutedInvoke:
    """The routed invoke of a request; ``ValueError`` when a header is missing."""
    try:
        context = headers.get(_CONTEXT)
        return RoutedInvoke(
            function_name=headers[_FN],
            version=headers[_VERSION],
            revision_id=headers[_REVISION],
            invoked_arn=headers[_INVOKED],
            request_id=headers[_REQUEST_ID],
            payload=body,
            client_context=None if context is None else base64.b64decode(context).decode(),
            log_tail=headers.get(_TAIL) == "1",
            trace_id=headers.get(_TRACE),
        )
    except KeyError as e:
        raise ValueError(f"missing header {e.args[0]}") from None


def output_headers(output: InvokeOutput) -> dict[str, str]:
    headers = {_EXECUTED: output.executed_version, "Content-Type": output.content_type}
    if output.function_error is not None:
        headers[_FN_ERROR] = output.function_error
    if output.log_result is not None:
        headers[_LOG_RESULT] = output.log_result
    return headers


def parse_output(headers: Mapping[str, str], body: bytes) -> InvokeOutput:
    return InvokeOutput(
        payload=body,
        executed_version=headers.get(_EXECUTED, ""),
        function_error=headers.get(_FN_ERROR),
        log_result=headers.get(_LOG_RESULT),
        content_type=headers.get("Content-Type", "application/json"),
    )


def _error_classes() -> dict[str, type[LambdaApiError]]:
    out: dict[str, type[LambdaApiError]] = {}
    pending: list[type[LambdaApiError]] = [LambdaApiError]
    while pending:
        cls = pending.pop()
        out.setdefault(cls.error_type, cls)
        pending.extend(cls.__subclasses__())
    return out


def parse_error(error_type: str, body: bytes) -> LambdaApiError:
    """The error a worker answered, rebuilt as the same class (its status, type, fields)."""
    cls = _error_classes().get(error_type)
    try:
        doc = json.loads(body)
    except ValueError:
        doc = None
    if cls is None or not isinstance(doc, dict):
        return ServiceException(f"The worker answered an unreadable error ({error_type}).")
    doc.pop("Type", None)
    message = str(doc.pop(cls.message_key, doc.pop("message", "")))
    err = cls.__new__(cls)
    LambdaApiError.__init__(err, message, **doc)
    if isinstance(err, errors.TooManyRequestsException):
        err.retry_after_s = 1
    return err
