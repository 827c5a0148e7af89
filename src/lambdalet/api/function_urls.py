"""Function URLs, the protocol half: configuration requests and shapes, the payload-2.0
event a request becomes, the HTTP response a function's answer becomes, CORS.  No I/O.

Rules (Lambda Developer Guide, "Invoking Lambda function URLs", and docs/triggers.md):

* header names lower-cased, repeated headers joined with ``,``; ``Cookie`` moves to
  ``cookies``; ``queryStringParameters`` and ``cookies`` absent when empty; ``body`` absent
  when the request has none; bodies that are not text (``text/*``, JSON, XML, JavaScript)
  are base64 with ``isBase64Encoded: true``;
* an answer that is a JSON object with ``statusCode`` is a structured response (headers,
  ``cookies`` → one ``Set-Cookie`` each, ``body``, base64 when ``isBase64Encoded``); any
  other answer is the body of a 200 ``application/json`` response, as the function gave it;
* a ``RESPONSE_STREAM`` URL reads no ``statusCode``: a stream of the content type
  :data:`PRELUDE_CONTENT_TYPE` (Node's ``awslambda.HttpResponseStream.from``) begins with a
  JSON prelude ``{"statusCode", "headers", "cookies"}`` and 8 NUL bytes, then the body
  (:class:`PreludeReader`); any other answer is the body of a 200 with the function's
  content type.
"""

from __future__ import annotations

import base64
import json
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from lambdalet.api.arns import validation_message
from lambdalet.errors import InvalidRequestContentException, ValidationException

AUTH_TYPES = ("NONE", "AWS_IAM")
INVOKE_MODES = ("BUFFERED", "RESPONSE_STREAM")
URL_PREFIX = "/lambda-url/"
_URL_ID_RE = re.compile(r"[a-z0-9]{32}")
#: ``<url-id>.lambda-url.<region>.<anything>``: host-based routing
_HOST_RE = re.compile(r"(?P<id>[a-z0-9]{32})\.lambda-url\.[a-z0-9-]+\..*")
_TEXT_TYPES = ("application/json", "application/xml", "application/javascript")
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


@dataclass(frozen=True)
class UrlSettings:
    """A validated Create/UpdateFunctionUrlConfig body; None: not given."""

    auth_type: str | None
    cors: Mapping[str, Any] | None
    invoke_mode: str | None


@dataclass(frozen=True)
class HttpRequestData:
    """What an HTTP request to a URL carried, as the event needs it."""

    method: str
    path: str  # as requested, after any routing prefix; "/" at least
    raw_query: str
    headers: Sequence[tuple[str, str]]  # as received, in order, repeats kept
    body: bytes
    source_ip: str
    epoch_s: float


@dataclass
class HttpAnswer:
    status: int
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""


# ---------------------------------------------------------------- configuration


def _invalid(value: object, name: str, constraint: str) -> ValidationException:
    return ValidationException(validation_message(value, name, constraint))


def _strings(cors: Mapping[str, Any], key: str, max_items: int, max_len: int) -> list[str]:
    values = cors.get(key)
    if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
        raise InvalidRequestContentException(
            f"Could not parse request body into json: Cors.{key} must be a list of strings"
        )
    field_name = f"cors.{key[0].lower()}{key[1:]}"
    if len(values) > max_items:
        raise _invalid(
            values, field_name, f"Member must have length less than or equal to {max_items}"
        )
    for v in values:
        if len(v) > max_len:
            raise _invalid(
                v, field_name, f"Member must have length less than or equal to {max_len}"
            )
    return values


def cors_config(value: object) -> dict[str, Any]:
    """A validated ``Cors`` object (AWS's limits)."""
    if not isinstance(value, dict):
        raise InvalidRequestContentException(
            "Could not parse request body into json: Cors must be an object"
        )
    out: dict[str, Any] = {}
    limits = {
        "AllowHeaders": (100, 1024),
        "AllowMethods": (6, 6),
        "AllowOrigins": (100, 253),
        "ExposeHeaders": (100, 1024),
    }
    for key, raw in value.items():
        if key == "AllowCredentials":
            if not isinstance(raw, bool):
                raise InvalidRequestContentException(
                    "Could not parse request body into json: Cors.AllowCredentials must be a "
                    "boolean"
                )
            out[key] = raw
        elif key == "MaxAge":
            if isinstance(raw, bool) or not isinstance(raw, int):
                raise InvalidRequestContentException(
                    "Could not parse request body into json: Cors.MaxAge must be an integer"
                )
            if not 0 <= raw <= 86400:
                raise _invalid(raw, "cors.maxAge", "Member must be between 0 and 86400")
            out[key] = raw
        elif key in limits:
            out[key] = _strings(value, key, *limits[key])
        else:
            raise InvalidRequestContentException(
                f"Could not parse request body into json: unknown field Cors.{key}"
            )
    return out


def url_settings(body: Mapping[str, Any], *, create: bool) -> UrlSettings:
    auth = body.get("AuthType")
    if auth is None and create:
        raise _invalid(None, "authType", "Member must not be null")
    if auth is not None and auth not in AUTH_TYPES:
        raise _invalid(
            auth, "authType", f"Member must satisfy enum value set: [{', '.join(AUTH_TYPES)}]"
        )
    mode = body.get("InvokeMode")
    if mode is not None and mode not in INVOKE_MODES:
        raise _invalid(
            mode,
            "invokeMode",
            f"Member must satisfy enum value set: [{', '.join(INVOKE_MODES)}]",
        )
    cors = body.get("Cors")
    return UrlSettings(auth, None if cors is None else cors_config(cors), mode)


def url_qualifier(value: str | None) -> str:
    """'' for the function itself (no qualifier or ``$LATEST``), else an alias name."""
    if value is None or value == "$LATEST":
        return ""
    if value.isdigit() or not re.fullmatch(r"[a-zA-Z0-9_-]{1,128}", value):
        raise _invalid(
            value,
            "qualifier",
            r"Member must satisfy regular expression pattern: ((?!^\d+$)^[0-9a-zA-Z-_]+$)",
        )
    return value


def is_url_id(value: str) -> bool:
    return _URL_ID_RE.fullmatch(value) is not None


def url_id_of_host(host: str) -> str | None:
    """The url id of a ``<url-id>.lambda-url.<region>.<anything>`` Host header."""
    m = _HOST_RE.fullmatch(host.lower())
    return None if m is None else m["id"]


def iso_time(epoch_s: float) -> str:
    """``2023-06-08T13:20:18.244654Z``, as CreationTime and LastModifiedTime read."""
    micros = round(epoch_s * 1_000_000)
    secs, frac = divmod(micros, 1_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs)) + f".{frac:06d}Z"


def url_config_shape(
    *,
    url: str,
    function_arn: str,
    auth_type: str,
    cors: Mapping[str, Any] | None,
    invoke_mode: str,
    creation_time: str,
    last_modified: str | None,
) -> dict[str, Any]:
    out: dict[str, Any] = {
        "FunctionUrl": url,
        "FunctionArn": function_arn,
        "AuthType": auth_type,
        "CreationTime": creation_time,
        "InvokeMode": invoke_mode,
    }
    if cors is not None:
        out["Cors"] = dict(cors)
    if last_modified is not None:
        out["LastModifiedTime"] = last_modified
    return out


# ---------------------------------------------------------------- requests


def is_text(content_type: str | None) -> bool:
    """Whether Lambda passes a body of this type as text (else base64)."""
    if not content_type:
        return False
    media = content_type.split(";", 1)[0].strip().lower()
    return (
        media.startswith("text/")
        or media in _TEXT_TYPES
        or media.endswith("+json")
        or media.endswith("+xml")
    )


def joined_headers(headers: Sequence[tuple[str, str]]) -> dict[str, str]:
    """Lower-cased names, repeats joined with ``,``."""
    out: dict[str, str] = {}
    for name, value in headers:
        key = name.lower()
        out[key] = f"{out[key]},{value}" if key in out else value
    return out


def cookies_of(headers: Sequence[tuple[str, str]]) -> list[str]:
    out: list[str] = []
    for name, value in headers:
        if name.lower() == "cookie":
            out.extend(c.strip() for c in value.split(";") if c.strip())
    return out


def query_parameters(raw_query: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for k, v in parse_qsl(raw_query, keep_blank_values=True):
        out[k] = f"{out[k]},{v}" if k in out else v
    return out


def request_time(epoch_s: float) -> str:
    """``12/Mar/2020:19:03:58 +0000``."""
    return time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(epoch_s))


def body_fields(body: bytes, content_type: str | None) -> dict[str, Any]:
    """``body`` and ``isBase64Encoded`` (no ``body`` key for an empty body)."""
    if not body:
        return {"isBase64Encoded": False}
    if is_text(content_type):
        try:
            return {"body": body.decode(), "isBase64Encoded": False}
        except UnicodeDecodeError:
            pass
    return {"body": base64.b64encode(body).decode(), "isBase64Encoded": True}


def url_event(
    req: HttpRequestData,
    *,
    url_id: str,
    domain: str,
    request_id: str,
    trace_id: str,
    account_id: str,
    authorizer: Mapping[str, Any] | None,
    server_port: int,
) -> dict[str, Any]:
    """The payload-format-2.0 event of a function URL request."""
    headers = joined_headers([(k, v) for k, v in req.headers if k.lower() != "cookie"])
    headers.setdefault("host", domain)
    headers["x-amzn-trace-id"] = trace_id
    headers["x-forwarded-for"] = req.source_ip
    headers["x-forwarded-proto"] = "http"
    headers["x-forwarded-port"] = str(server_port)
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": req.path,
        "rawQueryString": req.raw_query,
    }
    cookies = cookies_of(req.headers)
    if cookies:
        event["cookies"] = cookies
    event["headers"] = headers
    if req.raw_query:
        event["queryStringParameters"] = query_parameters(req.raw_query)
    context: dict[str, Any] = {
        "accountId": account_id,
        "apiId": url_id,
        "domainName": domain,
        "domainPrefix": url_id,
        "http": {
            "method": req.method,
            "path": req.path,
            "protocol": "HTTP/1.1",
            "sourceIp": req.source_ip,
            "userAgent": headers.get("user-agent", ""),
        },
        "requestId": request_id,
        "routeKey": "$default",
        "stage": "$default",
        "time": request_time(req.epoch_s),
        "timeEpoch": int(req.epoch_s * 1000),
    }
    if authorizer is not None:
        context["authorizer"] = dict(authorizer)
    event["requestContext"] = context
    event.update(body_fields(req.body, headers.get("content-type")))
    return event


# ---------------------------------------------------------------- responses


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


# ---------------------------------------------------------------- CORS


def _origin_allowed(cors: Mapping[str, Any], origin: str) -> str | None:
    origins = cors.get("AllowOrigins") or []
    if "*" in origins:
        return "*"
    return origin if origin in origins else None


def cors_headers(cors: Mapping[str, Any] | None, origin: str | None) -> list[tuple[str, str]]:
    """Headers added to every response of a URL with CORS configured, for an allowed
    ``Origin`` (they replace the function's own CORS headers)."""
    if cors is None or origin is None:
        return []
    allowed = _origin_allowed(cors, origin)
    if allowed is None:
        return []
    out = [("Access-Control-Allow-Origin", allowed)]
    if allowed != "*":
        out.append(("Vary", "Origin"))
    if cors.get("AllowCredentials"):
        out.append(("Access-Control-Allow-Credentials", "true"))
    if cors.get("ExposeHeaders"):
        out.append(("Access-Control-Expose-Headers", ",".join(cors["ExposeHeaders"])))
    return out


def preflight(
    cors: Mapping[str, Any] | None, method: str, headers: Mapping[str, str]
) -> HttpAnswer | None:
    """Lambda's own answer to a CORS preflight (``OPTIONS`` with ``Origin`` and
    ``Access-Control-Request-Method``), without invoking the function; None: not one."""
    if cors is None or method != "OPTIONS":
        return None
    origin = headers.get("origin")
    wanted = headers.get("access-control-request-method")
    if origin is None or wanted is None:
        return None
    answer = HttpAnswer(200)
    if _origin_allowed(cors, origin) is None:
        return answer
    methods = cors.get("AllowMethods") or []
    if "*" in methods or wanted.upper() in (m.upper() for m in methods):
        answer.headers.extend(cors_headers(cors, origin))
        answer.headers.append(("Access-Control-Allow-Methods", ",".join(methods)))
        if cors.get("AllowHeaders"):
            answer.headers.append(("Access-Control-Allow-Headers", ",".join(cors["AllowHeaders"])))
        if cors.get("MaxAge") is not None:
            answer.headers.append(("Access-Control-Max-Age", str(cors["MaxAge"])))
    return answer


def with_cors(answer: HttpAnswer, extra: list[tuple[str, str]]) -> HttpAnswer:
    """The configured CORS headers win over the function's headers of the same names."""
    if not extra:
        return answer
    names = {k.lower() for k, _ in extra}
    kept = [(k, v) for k, v in answer.headers if k.lower() not in names]
    return HttpAnswer(answer.status, kept + extra, answer.body)
