"""Invoke and InvokeWithResponseStream: headers, client context, payload limits."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from dataclasses import dataclass

from lambdalet.api.validation.fields import one_of
from lambdalet.errors import (
    InvalidParameterValueException,
    InvalidRequestContentException,
    RequestTooLargeException,
)

INVOCATION_TYPES = ("Event", "RequestResponse", "DryRun")

LOG_TYPES = ("None", "Tail")


MAX_SYNC_PAYLOAD = 6_291_456

MAX_ASYNC_PAYLOAD = 1_048_576

MAX_CLIENT_CONTEXT = 3583


@dataclass(frozen=True)
class InvokeParams:
    invocation_type: str
    log_tail: bool
    client_context: str | None


def invoke_params(headers: Mapping[str, str]) -> InvokeParams:
    """Invoke's headers: invocation type, log type, client context."""
    return _invoke_headers(headers, INVOCATION_TYPES)


#: InvokeWithResponseStream's invocation types (no Event)
STREAM_INVOCATION_TYPES = ("RequestResponse", "DryRun")


def invoke_stream_params(headers: Mapping[str, str]) -> InvokeParams:
    """InvokeWithResponseStream's headers: Invoke's, without the ``Event`` type."""
    return _invoke_headers(headers, STREAM_INVOCATION_TYPES)


def _invoke_headers(headers: Mapping[str, str], kinds: tuple[str, ...]) -> InvokeParams:
    kind = one_of(
        headers.get("X-Amz-Invocation-Type") or "RequestResponse", "invocationType", kinds
    )
    log_type = one_of(headers.get("X-Amz-Log-Type") or "None", "logType", LOG_TYPES)
    raw_ctx = headers.get("X-Amz-Client-Context")
    return InvokeParams(kind, log_type == "Tail", client_context(raw_ctx) if raw_ctx else None)


def client_context(raw: str) -> str:
    """``X-Amz-Client-Context``: base64 of a JSON object, at most 3,583 bytes; returns the JSON."""
    if len(raw.encode()) > MAX_CLIENT_CONTEXT:
        raise InvalidParameterValueException(
            f"Client context must be {MAX_CLIENT_CONTEXT} bytes or less (base64-encoded)."
        )
    try:
        text = base64.b64decode(raw, validate=True).decode("utf-8")
        ok = isinstance(json.loads(text), dict)
    except (binascii.Error, ValueError, RecursionError):
        ok = False
    if not ok:
        raise InvalidRequestContentException(
            "Client context must be a valid Base64-encoded JSON object."
        )
    return text


def invoke_payload(raw: bytes, invocation_type: str) -> bytes:
    """The event bytes: within the size limit of the invocation type, JSON; empty means ``{}``."""
    limit = MAX_ASYNC_PAYLOAD if invocation_type == "Event" else MAX_SYNC_PAYLOAD
    if len(raw) > limit:
        raise RequestTooLargeException(
            f"{len(raw)} byte payload is too large for the {invocation_type} invocation type "
            f"(limit {limit} bytes)"
        )
    if not raw.strip():
        return b"{}"
    try:
        json.loads(raw)
    except RecursionError:
        raise InvalidRequestContentException(
            "Could not parse request body into json: Could not parse payload into json: "
            "nested too deeply"
        ) from None
    except (ValueError, UnicodeDecodeError) as e:
        raise InvalidRequestContentException(
            f"Could not parse request body into json: Could not parse payload into json: {e}"
        ) from e
    return raw
