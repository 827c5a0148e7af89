"""CORS of a function URL: the headers of an answer and the answer to a preflight."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from lambdalet.api.function_urls.answers import HttpAnswer


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
