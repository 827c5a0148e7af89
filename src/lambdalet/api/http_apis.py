"""HTTP APIs of templates, the protocol half: route tables (path parameters, ``{proxy+}``,
methods, ``ANY``, HTTP APIs' ``$default``), the API Gateway proxy events (REST payload 1.0,
HTTP API payload 1.0 or 2.0) and the mapping of a function's answer to the HTTP response.
No I/O.

Following API Gateway (and ``sam local start-api`` where API Gateway is not observable):
REST bodies are base64 only for the API's ``BinaryMediaTypes``; HTTP APIs base64 every
non-text body (as function URLs); REST answers must be a JSON object with ``statusCode``
(else 502); payload 2.0 answers are inferred like a function URL's.
"""

from __future__ import annotations

import base64
import json
import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from lambdalet.api import function_urls as urls
from lambdalet.errors import InvalidParameterValueException

ANY_METHODS = ("GET", "DELETE", "PUT", "POST", "HEAD", "OPTIONS", "PATCH")
KINDS = ("Api", "HttpApi")
_PARAM_RE = re.compile(r"\{([A-Za-z0-9._-]+)(\+?)\}")
PREFIX = "/lambdalet/stacks/"


@dataclass(frozen=True)
class Route:
    path: str  # template path, "/items/{id}", "/{proxy+}", or "$default"
    method: str  # upper case or "ANY"
    function_name: str
    qualifier: str | None
    payload_version: str
    regex: re.Pattern[str] | None = None  # None for $default

    @property
    def route_key(self) -> str:
        return "$default" if self.path == "$default" else f"{self.method} {self.path}"

    def rank(self) -> tuple[int, int, int]:
        """Most specific first: exact paths, then fewer parameters, greedy and $default last."""
        if self.path == "$default":
            return (3, 0, 0)
        greedy = 1 if "+}" in self.path else 0
        return (greedy, self.path.count("{"), -len(self.path))


@dataclass(frozen=True)
class HttpApi:
    stack: str
    api_id: str  # the API's logical id
    kind: str  # "Api" (REST) or "HttpApi"
    stage: str  # REST stage name; "$default" for HTTP APIs
    stage_variables: Mapping[str, str]
    binary_media_types: tuple[str, ...]
    routes: tuple[Route, ...] = field(default_factory=tuple)

    @property
    def base_path(self) -> str:
        """Where the API is served on the server's port (REST: with the stage)."""
        base = f"{PREFIX}{self.stack}/{self.api_id}"
        return base if self.kind == "HttpApi" else f"{base}/{self.stage}"


def compile_path(path: str) -> re.Pattern[str]:
    out, pos = "", 0
    for m in _PARAM_RE.finditer(path):
        out += re.escape(path[pos : m.start()])
        out += f"(?P<{_group(m[1])}>.+)" if m[2] else f"(?P<{_group(m[1])}>[^/]+)"
        pos = m.end()
    out += re.escape(path[pos:])
    return re.compile(out.rstrip("/") + "/?")


def _group(name: str) -> str:
    return "p_" + re.sub(r"[^A-Za-z0-9_]", lambda c: f"_{ord(c[0]):x}_", name)


def _names(path: str) -> list[str]:
    return [m[1] for m in _PARAM_RE.finditer(path)]


def api_from_json(stack: str, raw: Mapping[str, Any]) -> HttpApi:
    """One API of a ``PUT .../apis`` body, checked."""
    api_id, kind = raw.get("Id"), raw.get("Kind")
    if not isinstance(api_id, str) or not re.fullmatch(r"[A-Za-z0-9_-]{1,128}", api_id):
        raise InvalidParameterValueException("Each API needs an Id (its logical id).")
    if kind not in KINDS:
        raise InvalidParameterValueException(f"API {api_id}: Kind must be Api or HttpApi.")
    stage = str(raw.get("Stage") or ("Prod" if kind == "Api" else "$default"))
    if kind == "HttpApi":
        stage = "$default"
    variables = raw.get("StageVariables") or {}
    binary = raw.get("BinaryMediaTypes") or []
    routes = []
    for r in raw.get("Routes") or []:
        path, method = str(r.get("Path", "")), str(r.get("Method", "")).upper()
        if path != "$default" and not path.startswith("/"):
            raise InvalidParameterValueException(f"API {api_id}: route path {path!r}")
        if method != "ANY" and method not in ANY_METHODS:
            raise InvalidParameterValueException(f"API {api_id}: method {method!r}")
        version = str(r.get("PayloadFormatVersion") or ("1.0" if kind == "Api" else "2.0"))
        routes.append(
            Route(
                path=path,
                method=method,
                function_name=str(r["FunctionName"]),
                qualifier=r.get("Qualifier") or None,
                payload_version=version,
                regex=None if path == "$default" else compile_path(path),
            )
        )
    routes.sort(key=Route.rank)
    return HttpApi(
        stack,
        api_id,
        str(kind),
        stage,
        {str(k): str(v) for k, v in variables.items()},
        tuple(str(b).replace("~1", "/") for b in binary),
        tuple(routes),
    )


def api_to_json(api: HttpApi) -> dict[str, Any]:
    return {
        "Id": api.api_id,
        "Kind": api.kind,
        "Stage": api.stage,
        "StageVariables": dict(api.stage_variables),
        "BinaryMediaTypes": list(api.binary_media_types),
        "Routes": [
            {
                "Path": r.path,
                "Method": r.method,
                "FunctionName": r.function_name,
                "Qualifier": r.qualifier,
                "PayloadFormatVersion": r.payload_version,
            }
            for r in api.routes
        ],
    }


@dataclass(frozen=True)
class Match:
    route: Route
    path_parameters: dict[str, str]


def match(api: HttpApi, method: str, path: str) -> Match | str | None:
    """The route for a request; None: no route at all; "method": the path exists but not
    for this method."""
    path_only = False
    for route in api.routes:
        if route.regex is None:
            continue
        m = route.regex.fullmatch(path)
        if m is None:
            continue
        if route.method not in ("ANY", method):
            path_only = True
            continue
        params = {n: m[_group(n)] for n in _names(route.path)}
        return Match(route, params)
    for route in api.routes:
        if route.regex is None:
            return Match(route, {})
    return "method" if path_only else None


# ---------------------------------------------------------------- events


def _is_binary(content_type: str | None, binary_types: Sequence[str]) -> bool:
    if not content_type or not binary_types:
        return False
    media = content_type.split(";", 1)[0].strip().lower()
    for t in binary_types:
        t = t.lower()
        if t in ("*/*", media) or (t.endswith("/*") and media.startswith(t[:-1])):
            return True
    return False


def rest_event(
    api: HttpApi,
    hit: Match,
    req: urls.HttpRequestData,
    *,
    request_id: str,
    account_id: str,
    domain: str,
    server_port: int,
) -> dict[str, Any]:
    """The payload-1.0 event (REST proxy integration; HTTP APIs with 1.0 add ``version``)."""
    multi: dict[str, list[str]] = {}
    names: dict[str, str] = {}
    for k, v in [
        *req.headers,
        ("X-Forwarded-Proto", "http"),
        ("X-Forwarded-Port", str(server_port)),
    ]:
        key = names.setdefault(k.lower(), k)
        multi.setdefault(key, []).append(v)
    query: dict[str, list[str]] = {}
    for k, v in parse_qsl(req.raw_query, keep_blank_values=True):
        query.setdefault(k, []).append(v)
    headers = {k: v[-1] for k, v in multi.items()}
    content_type = next((v for k, v in headers.items() if k.lower() == "content-type"), None)
    if not req.body:
        body: str | None = None
        b64 = False
    elif api.kind == "Api":
        b64 = _is_binary(content_type, api.binary_media_types)
        body = base64.b64encode(req.body).decode() if b64 else req.body.decode(errors="replace")
    else:
        fields = urls.body_fields(req.body, content_type)
        body, b64 = fields.get("body"), bool(fields["isBase64Encoded"])
    stage = api.stage
    user_agent = headers.get(names.get("user-agent", "User-Agent"))
    event: dict[str, Any] = {}
    if api.kind == "HttpApi":
        event["version"] = "1.0"
    resource = "$default" if hit.route.path == "$default" else hit.route.path
    event.update(
        {
            "resource": resource,
            "path": req.path,
            "httpMethod": req.method,
            "headers": headers or None,
            "multiValueHeaders": multi or None,
            "queryStringParameters": {k: v[-1] for k, v in query.items()} or None,
            "multiValueQueryStringParameters": query or None,
            "pathParameters": hit.path_parameters or None,
            "stageVariables": dict(api.stage_variables) or None,
            "requestContext": {
                "accountId": account_id,
                "apiId": api.api_id,
                "domainName": domain,
                "domainPrefix": domain.split(".", 1)[0],
                "extendedRequestId": request_id,
                "httpMethod": req.method,
                "identity": {
                    "accessKey": None,
                    "accountId": None,
                    "caller": None,
                    "cognitoAuthenticationProvider": None,
                    "cognitoAuthenticationType": None,
                    "cognitoIdentityId": None,
                    "cognitoIdentityPoolId": None,
                    "principalOrgId": None,
                    "sourceIp": req.source_ip,
                    "user": None,
                    "userAgent": user_agent,
                    "userArn": None,
                    "clientCert": None,
                },
                "path": req.path if api.kind == "HttpApi" else f"/{stage}{req.path}",
                "protocol": "HTTP/1.1",
                "requestId": request_id,
                "requestTime": urls.request_time(req.epoch_s),
                "requestTimeEpoch": int(req.epoch_s * 1000),
                "resourceId": uuid.uuid5(uuid.NAMESPACE_URL, resource).hex[:6],
                "resourcePath": resource,
                "stage": stage,
            },
            "body": body,
            "isBase64Encoded": b64,
        }
    )
    return event


def http_event(
    api: HttpApi,
    hit: Match,
    req: urls.HttpRequestData,
    *,
    request_id: str,
    trace_id: str,
    account_id: str,
    domain: str,
    server_port: int,
) -> dict[str, Any]:
    """The payload-2.0 event of an HTTP API route (a function URL's, with the route)."""
    event = urls.url_event(
        req,
        url_id=api.api_id,
        domain=domain,
        request_id=request_id,
        trace_id=trace_id,
        account_id=account_id,
        authorizer=None,
        server_port=server_port,
    )
    event["routeKey"] = hit.route.route_key
    event["requestContext"]["routeKey"] = hit.route.route_key
    if hit.path_parameters:
        event["pathParameters"] = hit.path_parameters
    if api.stage_variables:
        event["stageVariables"] = dict(api.stage_variables)
    return event


# ---------------------------------------------------------------- responses

REST_KEYS = {
    "statusCode",
    "body",
    "headers",
    "multiValueHeaders",
    "isBase64Encoded",
    "cookies",
    "base64Encoded",
}


def v1_answer(payload: bytes, rest: bool) -> urls.HttpAnswer:
    """A payload-1.0 answer: a JSON object with ``statusCode`` (MalformedResponse else)."""
    try:
        value = json.loads(payload)
    except (ValueError, UnicodeDecodeError) as e:
        raise urls.MalformedResponse(f"not JSON: {e}") from e
    if not isinstance(value, dict) or "statusCode" not in value:
        raise urls.MalformedResponse("the answer must be an object with statusCode")
    if rest and set(value) - REST_KEYS:
        raise urls.MalformedResponse(f"unexpected keys {sorted(set(value) - REST_KEYS)}")
    if value.get("base64Encoded") and "isBase64Encoded" not in value:
        value["isBase64Encoded"] = True
    value.pop("base64Encoded", None)
    return urls.http_answer(json.dumps(value).encode())


def error_body(message: str) -> bytes:
    return json.dumps({"message": message}).encode()
