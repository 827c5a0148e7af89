"""The payload-2.0 event an HTTP request to a function URL becomes."""

from __future__ import annotations

import base64
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

_TEXT_TYPES = ("application/json", "application/xml", "application/javascript")


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
