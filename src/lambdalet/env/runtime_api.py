"""The in-sandbox HTTP server: Runtime API 2018-06-01 handlers.

One small aiohttp application per environment, served by the platform's own
event loop on the listening socket the sandbox made inside its network
namespace (so every environment sees the API at the same fixed address, with
no proxy process).  Handlers are thin: read and check the request, call one
method of the :class:`RuntimeApiTarget` (the environment), render.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import socket
import weakref
from typing import Any, Protocol

from aiohttp import web

from lambdalet.env import rapi_protocol as rp
from lambdalet.env.http_trailers import TrailerScanner
from lambdalet.env.lean_rapi import LeanRuntimeProtocol
from lambdalet.env.rapi_protocol import RapiRefused

#: lambdalet's own addition to the Runtime API (see build_app).  runtimes/files/
#: lambdalet_launch.py, which runs inside sandboxes without lambdalet, spells it too;
#: tests/unit/env/test_runtime_api_http.py drives that file against this route.
FUNCTION_INIT_PATH = "/2018-06-01/runtime/lambdalet/function-init"


class StreamSink(Protocol):
    """Where a streamed response's body goes, chunk by chunk."""

    def write(self, chunk: bytes) -> None: ...

    async def room(self) -> None:
        """Wait until the reader can take more."""
        ...

    def end(self, error_type: str | None, error_body: bytes | None) -> None:
        """The body ended; with the error its trailers reported, if any."""
        ...


class RuntimeApiTarget(Protocol):
    async def runtime_next(self) -> rp.Event:
        """Block until an event is released to the runtime (long poll)."""
        ...

    def runtime_answer_started(self) -> None:
        """A /response or /error request arrived; its body is being read."""
        ...

    def runtime_response(self, request_id: str, body: bytes, content_type: str | None) -> None: ...

    def runtime_stream_start(self, request_id: str, content_type: str | None) -> StreamSink:
        """A streamed response begins (raises RapiRefused like runtime_response)."""
        ...

    def runtime_response_too_large(self, request_id: str) -> None:
        """The runtime tried to post a response over the limit."""
        ...

    def runtime_error(
        self, request_id: str, body: bytes, content_type: str | None, error_type: str | None
    ) -> None: ...

    def runtime_init_error(
        self, body: bytes, content_type: str | None, error_type: str | None
    ) -> None: ...

    def runtime_function_init(self) -> None:
        """The runtime begins the function's own init (lambdalet's runtime launcher says so)."""
        ...


def _error(err: rp.RapiError) -> web.Response:
    return web.Response(status=err.status, body=err.body(), content_type="application/json")


def _accepted() -> web.Response:
    return web.Response(status=202, body=rp.ACCEPTED_BODY, content_type="application/json")


async def _read_body(request: web.Request, limit: int) -> bytes | None:
    """The whole body, or None when it is larger than ``limit`` (the rest is not read)."""
    parts: list[bytes] = []
    size = 0
    async for chunk in request.content.iter_any():
        size += len(chunk)
        if size > limit:
            return None
        parts.append(chunk)
    return b"".join(parts)


#: each connection's trailer scanner, by transport (see TappedSite)
Taps = weakref.WeakKeyDictionary[asyncio.BaseTransport, TrailerScanner]


def decode_error_body(value: str | None) -> bytes | None:
    """The ``Lambda-Runtime-Function-Error-Body`` trailer: base64 of the error document."""
    if not value:
        return None
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return value.encode()


class RuntimeApiHandlers:
    def __init__(self, target: RuntimeApiTarget, taps: Taps | None = None) -> None:
        self.target = target
        self.taps = taps if taps is not None else Taps()

    async def _streamed(self, request: web.Request, request_id: str) -> web.StreamResponse:
        self.target.runtime_answer_started()
        try:
            sink = self.target.runtime_stream_start(request_id, request.headers.get("Content-Type"))
        except RapiRefused as e:
            return _error(e.error)
        try:
            async for chunk in request.content.iter_any():
                sink.write(chunk)
                await sink.room()
        except (ConnectionError, asyncio.IncompleteReadError, OSError) as e:
            # the runtime went away mid-stream: its exit decides how the invoke ends
            raise web.HTTPBadRequest() from e
        scanner = self.taps.get(request.transport) if request.transport is not None else None
        trailers = scanner.last_trailers if scanner is not None else {}
        sink.end(
            trailers.get(rp.ERROR_TYPE_HEADER.lower()),
            decode_error_body(trailers.get(rp.ERROR_BODY_TRAILER.lower())),
        )
        return _accepted()

    async def next(self, request: web.Request) -> web.StreamResponse:
        try:
            event = await self.target.runtime_next()
        except RapiRefused as e:
            return _error(e.error)
        return web.Response(status=200, body=event.payload, headers=event.headers())

    async def response(self, request: web.Request) -> web.StreamResponse:
        request_id = request.match_info["request_id"]
        mode = request.headers.get(rp.RESPONSE_MODE_HEADER)
        if mode is not None and mode.lower() != "streaming":
            return _error(rp.INVALID_RESPONSE_MODE)
        if mode is not None:
            return await self._streamed(request, request_id)
        self.target.runtime_answer_started()
        body = await _read_body(request, rp.MAX_RESPONSE_BYTES)
        try:
            if body is None:
                self.target.runtime_response_too_large(request_id)
                return _error(rp.PAYLOAD_TOO_LARGE)
            self.target.runtime_response(request_id, body, request.headers.get("Content-Type"))
        except RapiRefused as e:
            return _error(e.error)
        return _accepted()

    async def error(self, request: web.Request) -> web.StreamResponse:
        request_id = request.match_info["request_id"]
        self.target.runtime_answer_started()
        body = await _read_body(request, rp.MAX_RESPONSE_BYTES)
        try:
            self.target.runtime_error(
                request_id,
                body if body is not None else b"",
                request.headers.get("Content-Type"),
                request.headers.get(rp.ERROR_TYPE_HEADER),
            )
        except RapiRefused as e:
            return _error(e.error)
        return _accepted()

    async def init_error(self, request: web.Request) -> web.StreamResponse:
        body = await _read_body(request, rp.MAX_RESPONSE_BYTES)
        try:
            self.target.runtime_init_error(
                body if body is not None else b"",
                request.headers.get("Content-Type"),
                request.headers.get(rp.ERROR_TYPE_HEADER),
            )
        except RapiRefused as e:
            return _error(e.error)
        return _accepted()

    async def function_init(self, request: web.Request) -> web.StreamResponse:
        self.target.runtime_function_init()
        return web.Response(status=204)

    async def ping(self, request: web.Request) -> web.StreamResponse:
        return web.Response(status=200, text="pong")


def build_app(target: RuntimeApiTarget, *, lean: bool = True) -> web.Application:
    """The Runtime API routes; the environment adds the Extensions and Telemetry APIs.

    ``lean``: the runtime's next/response/error are served on env/lean_rapi.py's protocol
    (anything else is handed to aiohttp); off, every request goes through aiohttp."""
    h = RuntimeApiHandlers(target)
    app = web.Application()
    app[TAPS_KEY] = h.taps
    if lean:
        app[TARGET_KEY] = target
    rt = "/2018-06-01/runtime"
    app.router.add_get(f"{rt}/invocation/next", h.next)
    app.router.add_post(f"{rt}/invocation/{{request_id}}/response", h.response)
    app.router.add_post(f"{rt}/invocation/{{request_id}}/error", h.error)
    app.router.add_post(f"{rt}/init/error", h.init_error)
    app.router.add_get("/2018-06-01/ping", h.ping)
    # not AWS's: lambdalet's Python launcher marks where Runtime init ends and Function
    # init begins (docs/lifecycle.md); anything else may call it, it only adds that mark
    app.router.add_post(FUNCTION_INIT_PATH, h.function_init)
    return app


TAPS_KEY = web.AppKey("lambdalet_trailer_taps", Taps)
TARGET_KEY = web.AppKey("lambdalet_runtime_api_target", RuntimeApiTarget)


class _Tapped(asyncio.Protocol):
    """aiohttp's protocol for one connection, with a TrailerScanner reading the bytes first."""

    def __init__(self, inner: Any, taps: Taps) -> None:
        self._inner = inner
        self._taps = taps
        self._scanner = TrailerScanner()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._taps[transport] = self._scanner
        self._inner.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        self._scanner.feed(data)
        self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        result: bool | None = self._inner.eof_received()
        return result

    def connection_lost(self, exc: Exception | None) -> None:
        self._inner.connection_lost(exc)

    def pause_writing(self) -> None:
        self._inner.pause_writing()

    def resume_writing(self) -> None:
        self._inner.resume_writing()


class TappedSite(web.SockSite):
    """A SockSite whose connections carry a TrailerScanner (aiohttp drops trailers).

    With a ``target``, each connection starts on the lean protocol (env/lean_rapi.py),
    which serves the runtime's next/response/error and hands anything else to aiohttp.
    """

    def __init__(
        self,
        runner: web.AppRunner,
        sock: socket.socket,
        taps: Taps,
        target: RuntimeApiTarget | None = None,
    ) -> None:
        super().__init__(runner, sock)
        self._taps = taps
        self._target = target
        self.lean: set[LeanRuntimeProtocol] = set()

    async def start(self) -> None:
        await web.BaseSite.start(self)
        server = self._runner.server
        assert server is not None
        taps = self._taps
        target, live = self._target, self.lean

        def tapped() -> asyncio.Protocol:
            return _Tapped(server(), taps)

        def factory() -> asyncio.Protocol:
            if target is None:
                return tapped()
            return LeanRuntimeProtocol(target, tapped, live)

        self._server = await asyncio.get_running_loop().create_server(factory, sock=self._sock)

    def close_lean(self) -> None:
        for proto in list(self.lean):
            proto.close()


class InSandboxServer:
    """Serves one environment's in-sandbox APIs on its listening socket."""

    def __init__(self, app: web.Application, sock: socket.socket) -> None:
        self._sock = sock
        taps = app.get(TAPS_KEY)
        self._taps = taps if taps is not None else Taps()
        self._target = app.get(TARGET_KEY)
        self._site: TappedSite | None = None
        self._runner = web.AppRunner(
            app,
            access_log=None,
            handle_signals=False,
            shutdown_timeout=0.0,
            max_line_size=rp.MAX_HEADER_BYTES,
            max_field_size=rp.MAX_HEADER_BYTES,
            # the runtime's next is a long poll that may sit through a long freeze
            keepalive_timeout=24 * 3600,
        )

    async def start(self) -> None:
        await self._runner.setup()
        self._site = TappedSite(self._runner, self._sock, self._taps, self._target)
        await self._site.start()

    async def close(self) -> None:
        if self._site is not None:
            self._site.close_lean()
        await self._runner.cleanup()
