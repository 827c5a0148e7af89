"""In-sandbox HTTP handlers: Extensions API 2020-01-01, Telemetry API 2022-07-01, Logs API.

Thin adapters like the Runtime API's: read and check the request, call one
method of the environment, render.
"""

from __future__ import annotations

import json
from typing import Protocol

from aiohttp import web

from lambdalet.env import extensions as ex
from lambdalet.env import rapi_protocol as rp
from lambdalet.env import telemetry_protocol as tp
from lambdalet.env.rapi_protocol import RapiRefused


class ExtensionsApiTarget(Protocol):
    def extension_register(
        self, name: str | None, events: list[str], features: list[str]
    ) -> tuple[str, dict[str, str]]:
        """Register; returns (identifier, response body)."""
        ...

    async def extension_next(self, ext_id: str) -> bytes: ...

    def extension_error(self, ext_id: str, kind: str, error_type: str, body: bytes) -> None:
        """``kind`` is "init" or "exit"."""
        ...

    def telemetry_subscribe(self, ext_id: str, sub: tp.Subscription) -> None: ...


def _error(err: rp.RapiError) -> web.Response:
    return web.Response(status=err.status, body=err.body(), content_type="application/json")


def _ext_id(request: web.Request) -> str:
    parsed = ex.parse_extension_id(request.headers.get(ex.ID_HEADER))
    if isinstance(parsed, rp.RapiError):
        raise RapiRefused(parsed)
    return parsed


class ExtensionsApiHandlers:
    def __init__(self, target: ExtensionsApiTarget) -> None:
        self.target = target

    async def register(self, request: web.Request) -> web.StreamResponse:
        events = ex.parse_register_body(await request.read())
        if isinstance(events, rp.RapiError):
            return _error(events)
        features = [
            f.strip() for f in request.headers.get(ex.FEATURE_HEADER, "").split(",") if f.strip()
        ]
        try:
            ext_id, body = self.target.extension_register(
                request.headers.get(ex.NAME_HEADER), events, features
            )
        except RapiRefused as e:
            return _error(e.error)
        return web.Response(
            status=200,
            body=json.dumps(body).encode(),
            content_type="application/json",
            headers={ex.ID_HEADER: ext_id},
        )

    async def next(self, request: web.Request) -> web.StreamResponse:
        try:
            event = await self.target.extension_next(_ext_id(request))
        except RapiRefused as e:
            return _error(e.error)
        headers = {}
        if b'"INVOKE"' in event[:40]:
            headers[ex.EVENT_ID_HEADER] = json.loads(event)["requestId"]
        return web.Response(
            status=200, body=event, content_type="application/json", headers=headers
        )

    async def init_error(self, request: web.Request) -> web.StreamResponse:
        return await self._error_post(request, "init")

    async def exit_error(self, request: web.Request) -> web.StreamResponse:
        return await self._error_post(request, "exit")

    async def _error_post(self, request: web.Request, kind: str) -> web.StreamResponse:
        body = await request.read()
        try:
            ext_id = _ext_id(request)
            etype = request.headers.get(ex.ERROR_TYPE_HEADER)
            if not etype:
                raise RapiRefused(ex.MISSING_ERROR_TYPE)
            self.target.extension_error(ext_id, kind, etype, body)
        except RapiRefused as e:
            return _error(e.error)
        return web.Response(status=202, body=rp.ACCEPTED_BODY, content_type="application/json")

    async def telemetry(self, request: web.Request) -> web.StreamResponse:
        return await self._subscribe(request, "telemetry")

    async def logs(self, request: web.Request) -> web.StreamResponse:
        return await self._subscribe(request, "logs")

    async def _subscribe(self, request: web.Request, api: str) -> web.StreamResponse:
        body = await request.read()
        try:
            ext_id = _ext_id(request)
            sub = tp.parse_subscription(api, body)
            self.target.telemetry_subscribe(ext_id, sub)
        except RapiRefused as e:
            return _error(e.error)
        return web.Response(status=200, body=b'"OK"', content_type="application/json")


def add_routes(app: web.Application, target: ExtensionsApiTarget) -> None:
    h = ExtensionsApiHandlers(target)
    ext = "/2020-01-01/extension"
    app.router.add_post(f"{ext}/register", h.register)
    app.router.add_get(f"{ext}/event/next", h.next)
    app.router.add_post(f"{ext}/init/error", h.init_error)
    app.router.add_post(f"{ext}/exit/error", h.exit_error)
    app.router.add_put("/2022-07-01/telemetry", h.telemetry)
    app.router.add_put("/2020-08-15/logs", h.logs)
