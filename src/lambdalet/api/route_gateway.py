"""HTTP APIs of templates, the HTTP half: serves every ``Api`` (REST, payload 1.0) and
``HttpApi`` (payload 2.0 or 1.0) route a deploy registered, on the server's port under
``/lambdalet/stacks/<stack>/<api>/`` (REST APIs: then the stage, ``.../Prod/``), as
``sam local start-api`` serves them.  Runs as an outer middleware of the API app, like the
function URLs, so route requests never meet the Lambda API's routes or its SigV4 check.
"""

from __future__ import annotations

import json
import logging
import random
import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Middleware

from lambdalet.api import function_urls as urls
from lambdalet.api import http_apis
from lambdalet.api.arns import Scope, function_arn
from lambdalet.api.render import REQUEST_ID_HEADER
from lambdalet.api.url_gateway import Handler, invoke_sync, render_answer, trace_id
from lambdalet.api.validation import MAX_SYNC_PAYLOAD
from lambdalet.clock import Clock
from lambdalet.errors import LambdaApiError, TooManyRequestsException
from lambdalet.model import Invoker
from lambdalet.store import Store

log = logging.getLogger(__name__)


def _message(status: int, message: str) -> urls.HttpAnswer:
    return urls.HttpAnswer(
        status, [("Content-Type", "application/json")], http_apis.error_body(message)
    )


class RouteGateway:
    def __init__(
        self,
        scope: Scope,
        store: Store,
        invoker: Invoker,
        clock: Clock,
        draw: Callable[[], float] = random.random,
    ) -> None:
        self.scope = scope
        self.store = store
        self.invoker = invoker
        self.clock = clock
        self.draw = draw
        self._apis: dict[tuple[str, str], http_apis.HttpApi] = {}
        self.reload()

    def __repr__(self) -> str:
        return f"RouteGateway(apis={len(self._apis)})"

    def reload(self) -> None:
        apis: dict[tuple[str, str], http_apis.HttpApi] = {}
        for stack, raw in self.store.http_apis().items():
            for a in raw:
                api = http_apis.api_from_json(stack, a)
                apis[(stack, api.api_id)] = api
        self._apis = apis

    def replace_stack(self, stack: str, raw: list[Mapping[str, Any]]) -> list[http_apis.HttpApi]:
        apis = [http_apis.api_from_json(stack, a) for a in raw]  # all checked first
        self.store.put_http_apis(stack, [http_apis.api_to_json(a) for a in apis])
        self.reload()
        return apis

    def apis(self, stack: str | None = None) -> list[http_apis.HttpApi]:
        return [a for (s, _), a in sorted(self._apis.items()) if stack in (None, s)]

    @property
    def middleware(self) -> Middleware:
        @web.middleware
        async def http_api_routes(request: web.Request, handler: Handler) -> web.StreamResponse:
            if not request.path.startswith(http_apis.PREFIX):
                return await handler(request)
            request_id = str(uuid.uuid4())
            resp = render_answer(await self.serve(request, request_id))
            resp.headers[REQUEST_ID_HEADER] = request_id
            resp.headers["Apigw-Requestid"] = request_id
            return resp

        return http_api_routes

    async def serve(self, request: web.Request, request_id: str) -> urls.HttpAnswer:
        raw_path = request.raw_path.split("?", 1)[0]
        parts = raw_path[len(http_apis.PREFIX) :].split("/", 2)
        api = self._apis.get((parts[0], parts[1])) if len(parts) >= 2 else None
        if api is None:
            return _message(404, "Not Found")
        rest = "/" + (parts[2] if len(parts) > 2 else "")
        if api.kind == "Api":
            stage, _, tail = rest[1:].partition("/")
            if stage != api.stage:
                return _message(403, "Missing Authentication Token")
            rest = "/" + tail
        hit = http_apis.match(api, request.method, rest)
        if not isinstance(hit, http_apis.Match):
            if api.kind == "Api":
                return _message(403, "Missing Authentication Token")
            return _message(404, "Not Found")
        body = await request.read()
        now = self.clock.wall()
        sockname = request.transport.get_extra_info("sockname") if request.transport else None
        port = int(sockname[1]) if sockname else 0
        req = urls.HttpRequestData(
            method=request.method,
            path=rest,
            raw_query=request.query_string,
            headers=list(request.headers.items()),
            body=body,
            source_ip=request.remote or "127.0.0.1",
            epoch_s=now,
        )
        domain = request.host.rsplit(":", 1)[0] if request.host else "localhost"
        if hit.route.payload_version == "2.0":
            event = http_apis.http_event(
                api,
                hit,
                req,
                request_id=request_id,
                trace_id=trace_id(now),
                account_id=self.scope.account_id,
                domain=domain,
                server_port=port,
            )
        else:
            event = http_apis.rest_event(
                api,
                hit,
                req,
                request_id=request_id,
                account_id=self.scope.account_id,
                domain=domain,
                server_port=port,
            )
        payload = json.dumps(event, separators=(",", ":")).encode()
        if len(payload) > MAX_SYNC_PAYLOAD:
            return _message(413, "Request Entity Too Large")
        failed = 502 if api.kind == "Api" else 500
        failure = "Internal server error" if api.kind == "Api" else "Internal Server Error"
        route = hit.route
        started = time.monotonic()
        try:
            out = await invoke_sync(
                self.store,
                self.invoker,
                function_arn(self.scope, route.function_name, route.qualifier),
                route.function_name,
                route.qualifier,
                payload,
                request_id,
                self.draw,
            )
        except TooManyRequestsException:
            return _message(429, "Too Many Requests")
        except LambdaApiError as e:
            log.warning("route %s of %s: %s", route.route_key, api.api_id, e.message)
            return _message(failed, failure)
        log.debug("route %s took %.1f ms", route.route_key, (time.monotonic() - started) * 1e3)
        if out.function_error:
            return _message(failed, failure)
        try:
            if route.payload_version == "2.0":
                return urls.http_answer(out.payload)
            return http_apis.v1_answer(out.payload, rest=api.kind == "Api")
        except urls.MalformedResponse as e:
            log.warning("route %s of %s: malformed response: %s", route.route_key, api.api_id, e)
            return _message(502, "Internal server error")
