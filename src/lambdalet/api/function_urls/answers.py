"""The HTTP response a function's answer becomes: a structured response or a plain body,
and a RESPONSE_STREAM's prelude."""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

#: the stream content type of ``HttpResponseStream.from``: prelude, 8 NULs, body
PRELUDE_CONTENT_TYPE = "application/vnd.awslambda.http-integration-response"

PRELUDE_DELIMITER = b"\0" * 8

#: a prelude longer than this is refused (502): lambdalet's bound, AWS documents none
MAX_PRELUDE_BYTES = 64 * 1024

#: the Content-Type of a streamed answer that names none (the runtime's default)
STREAM_CONTENT_TYPE = "application/octet-stream"

#: headers of a prelude that belong to the connection, not to the function
_HOP_HEADERS = frozenset({"connection", "content-length", "transfer-encoding", "keep-alive"})

FORBIDDEN_BODY = {
    "Message": "Forbidden. For troubleshooting Function URL authorization issues, see: "
    "https://docs.aws.amazon.com/lambda/latest/dg/urls-auth.html"
}


class MalformedResponse(Exception):
    """The function answered with something Lambda cannot turn into an HTTP response (502)."""


@dataclass
class HttpAnswer:
    status: int
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""


def _header_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | int | float):
        return str(value)
    raise MalformedResponse(f"header value {value!r} is not a string")


def _response_headers(value: Mapping[str, Any]) -> list[tuple[str, str]]:
    """``headers``, ``multiValueHeaders`` and ``cookies`` (one ``Set-Cookie`` each) of a
    structured response or a stream's prelude."""
    headers: list[tuple[str, str]] = []
    raw_headers = value.get("headers") or {}
    if not isinstance(raw_headers, dict):
        raise MalformedResponse("headers is not an object")
    for name, v in raw_headers.items():
        headers.append((str(name), _header_value(v)))
    multi = value.get("multiValueHeaders") or {}
    if isinstance(multi, dict):
        for name, vs in multi.items():
            for v in vs if isinstance(vs, list) else [vs]:
                headers.append((str(name), _header_value(v)))
    cookies = value.get("cookies") or []
    if not isinstance(cookies, list):
        raise MalformedResponse("cookies is not a list")
    headers.extend(("Set-Cookie", _header_value(c)) for c in cookies)
    return headers


def _status(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 100 <= value <= 599:
        raise MalformedResponse(f"statusCode {value!r} is not an HTTP status")
    return value


def http_answer(payload: bytes) -> HttpAnswer:
    """The HTTP response of a function's (successful) answer; MalformedResponse → 502."""
    try:
        value = json.loads(payload) if payload.strip() else None
    except (ValueError, UnicodeDecodeError):
        value = None
        is_json = False
    else:
        is_json = True
    if not (is_json and isinstance(value, dict) and "statusCode" in value):
        return HttpAnswer(200, [("Content-Type", "application/json")], payload)
    status = _status(value["statusCode"])
    headers = _response_headers(value)
    if not any(k.lower() == "content-type" for k, _ in headers):
        headers.append(("Content-Type", "application/json"))
    raw_body = value.get("body")
    if raw_body is None:
        body = b""
    elif isinstance(raw_body, str):
        if value.get("isBase64Encoded") is True:
            try:
                body = base64.b64decode(raw_body, validate=True)
            except ValueError as e:
                raise MalformedResponse(f"body is not base64: {e}") from e
        else:
            body = raw_body.encode()
    else:
        body = json.dumps(raw_body, separators=(",", ":")).encode()
    return HttpAnswer(status, headers, body)


def stream_head(content_type: str | None) -> HttpAnswer:
    """Status and headers of a ``RESPONSE_STREAM`` answer without a prelude: 200 and the
    function's content type; its bytes are the body as they are."""
    return HttpAnswer(200, [("Content-Type", content_type or STREAM_CONTENT_TYPE)])


def prelude_head(prelude: bytes) -> HttpAnswer:
    """Status and headers of an ``HttpResponseStream`` prelude (``statusCode`` default 200,
    ``headers``, ``cookies``); MalformedResponse → 502."""
    try:
        value = json.loads(prelude)
    except (ValueError, UnicodeDecodeError) as e:
        raise MalformedResponse(f"the stream's prelude is not JSON: {e}") from e
    if not isinstance(value, dict):
        raise MalformedResponse("the stream's prelude is not a JSON object")
    status = _status(value.get("statusCode", 200))
    headers = [(k, v) for k, v in _response_headers(value) if k.lower() not in _HOP_HEADERS]
    if not any(k.lower() == "content-type" for k, _ in headers):
        headers.append(("Content-Type", STREAM_CONTENT_TYPE))
    return HttpAnswer(status, headers)


class PreludeReader:
    """Splits a stream of :data:`PRELUDE_CONTENT_TYPE` into its prelude and its body as the
    chunks come: :meth:`feed` returns None while the prelude is incomplete, then the
    response head and the body bytes that came with the delimiter."""

    def __init__(self) -> None:
        self._buffer = b""

    @property
    def pending(self) -> bytes:
        """Bytes received that did not yet end a prelude."""
        return self._buffer

    def feed(self, chunk: bytes) -> tuple[HttpAnswer, bytes] | None:
        self._buffer += chunk
        at = self._buffer.find(PRELUDE_DELIMITER)
        if at < 0:
            if len(self._buffer) > MAX_PRELUDE_BYTES + len(PRELUDE_DELIMITER):
                raise MalformedResponse(
                    f"no end of the stream's prelude in its first {MAX_PRELUDE_BYTES} bytes"
                )
            return None
        if at > MAX_PRELUDE_BYTES:
            raise MalformedResponse(f"the stream's prelude is over {MAX_PRELUDE_BYTES} bytes")
        head = prelude_head(self._buffer[:at])
        rest = self._buffer[at + len(PRELUDE_DELIMITER) :]
        self._buffer = b""
        return head, rest

    def finish(self) -> HttpAnswer:
        """The head of a stream that ended before its delimiter: an empty stream is a 200
        (nothing was written, so ``HttpResponseStream`` sent no prelude); else 502."""
        if self._buffer:
            raise MalformedResponse("the stream ended inside its prelude")
        return stream_head(None)
