"""A lean HTTP/1.1 protocol for the Runtime API's hot routes, in front of aiohttp.

Every warm invoke makes two in-sandbox requests: the runtime's ``GET .../invocation/next``
(a long poll) and its ``POST .../invocation/<id>/response`` (or ``/error``).  Through
aiohttp each is a request object, a task, a router match, a response object and a
header map (docs/performance.md has the profile).  This protocol serves those three
routes with one asyncio protocol per connection, ``httptools`` (llhttp, the parser
uvicorn uses) for the request head, and one prebuilt write per answer.

Everything else goes to aiohttp, unchanged: a connection whose next request is not one
of those three simple cases (another path or method, a chunked or ``Expect`` body, a
streamed response, a body over the limit, a head too large, a malformed request) is
handed to aiohttp's own protocol with every byte received so far, at the start of that
request, and stays with aiohttp for the rest of its life.  So the extensions' and
telemetry APIs, streaming, trailers, ``100-continue`` and aiohttp's error answers
behave as before.

Framing is done here (the end of the head, then ``Content-Length`` bytes), so a request
boundary is always known exactly and the parser only ever sees one whole request at a
time.  Requests on one connection are answered in order: bytes that arrive while an
answer is pending (a pipelined request) wait until it is written.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from email.utils import formatdate
from typing import Protocol, cast

import httptools

from lambdalet.env import rapi_protocol as rp
from lambdalet.env.rapi_protocol import RapiRefused

_RUNTIME = b"/2018-06-01/runtime/invocation/"
_NEXT = _RUNTIME + b"next"
_RESPONSE_MODE = rp.RESPONSE_MODE_HEADER.lower().encode()
#: a head larger than this goes to aiohttp, which answers it as it always did
_MAX_HEAD = rp.MAX_HEADER_BYTES + 64 * 1024
_REASONS = {200: b"OK", 202: b"Accepted", 400: b"Bad Request", 403: b"Forbidden"}


class LeanTarget(Protocol):
    """The part of :class:`lambdalet.env.runtime_api.RuntimeApiTarget` this protocol calls."""

    async def runtime_next(self) -> rp.Event: ...

    def runtime_answer_started(self) -> None: ...

    def runtime_response(self, request_id: str, body: bytes, content_type: str | None) -> None: ...

    def runtime_error(
        self, request_id: str, body: bytes, content_type: str | None, error_type: str | None
    ) -> None: ...


class _Date:
    """The ``Date`` header, formatted once a second."""

    def __init__(self) -> None:
        self._second = -1
        self._line = b""

    def line(self) -> bytes:
        now = int(time.time())
        if now != self._second:
            self._second = now
            self._line = b"Date: " + formatdate(now, usegmt=True).encode() + b"\r\n"
        return self._line


_DATE = _Date()


def answer(status: int, body: bytes, headers: dict[str, str] | None = None) -> list[bytes]:
    """One HTTP/1.1 answer as buffers to write (head, body), ``application/json`` by default."""
    head = [b"HTTP/1.1 %d %s\r\n" % (status, _REASONS.get(status, b""))]
    if headers is None:
        head.append(b"Content-Type: application/json\r\n")
    else:
        head.extend(f"{k}: {v}\r\n".encode("latin-1") for k, v in headers.items())
    head.append(b"Content-Length: %d\r\n" % len(body))
    head.append(_DATE.line())
    head.append(b"\r\n")
    return [b"".join(head), body]


def _error(err: rp.RapiError) -> list[bytes]:
    return answer(err.status, err.body())


_ACCEPTED = answer(202, rp.ACCEPTED_BODY)


class _Head:
    """httptools callbacks for one request head: the URL and the few headers we read."""

    __slots__ = ("complete", "connection", "content_type", "error_type", "length", "plain", "url")

    def __init__(self) -> None:
        self.url = b""
        self.length = 0
        self.content_type: str | None = None
        self.error_type: str | None = None
        #: the Connection header's tokens, lower-cased
        self.connection: set[bytes] = set()
        #: False when the request needs more than this protocol does (aiohttp serves it)
        self.plain = True
        self.complete = False

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        n = name.lower()
        if n == b"content-length":
            self.length = int(value) if value.isdigit() else -1
            if self.length < 0:
                self.plain = False
        elif n == b"content-type":
            self.content_type = value.decode("latin-1")
        elif n == b"connection":
            self.connection |= {t.strip() for t in value.lower().split(b",")}
        elif n == b"lambda-runtime-function-error-type":
            self.error_type = value.decode("latin-1")
        elif n in (b"transfer-encoding", b"expect", b"upgrade", _RESPONSE_MODE):
            self.plain = False

    def on_headers_complete(self) -> None:
        self.complete = True


Fallback = Callable[[], asyncio.Protocol]


class LeanRuntimeProtocol(asyncio.Protocol):
    """One in-sandbox connection: the hot Runtime API routes here, the rest in aiohttp."""

    def __init__(self, target: LeanTarget, fallback: Fallback, live: set[LeanRuntimeProtocol]):
        self._target = target
        self._fallback = fallback
        self._live = live
        self._transport: asyncio.Transport | None = None
        self._delegate: asyncio.Protocol | None = None
        self._buf = bytearray()
        #: the request being read: its head, and how much of its body is still to come
        self._head: _Head | None = None
        self._need = 0
        self._body: list[bytes] = []
        self._keep_alive = True
        self._task: asyncio.Task[None] | None = None
        self._busy = False

    # ------------------------------------------------------------------ asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # (uvloop's transports are not asyncio.Transport subclasses: no isinstance here)
        self._transport = cast(asyncio.Transport, transport)
        self._live.add(self)

    def data_received(self, data: bytes) -> None:
        if self._delegate is not None:
            self._delegate.data_received(data)
            return
        self._buf += data
        if not self._busy:
            self._advance()

    def eof_received(self) -> bool | None:
        if self._delegate is not None:
            return self._delegate.eof_received()
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self._live.discard(self)
        if self._delegate is not None:
            self._delegate.connection_lost(exc)
        # as aiohttp (handler_cancellation off): a pending next is not cancelled by the
        # runtime going away; the environment sees the runtime's exit
        self._transport = None

    def pause_writing(self) -> None:
        if self._delegate is not None:
            self._delegate.pause_writing()

    def resume_writing(self) -> None:
        if self._delegate is not None:
            self._delegate.resume_writing()

    def close(self) -> None:
        """The environment is going away: drop the connection and a pending answer."""
        if self._task is not None:
            self._task.cancel()
        if self._transport is not None:
            self._transport.close()

    # ------------------------------------------------------------------ framing

    def _advance(self) -> None:
        """Serve every whole request in the buffer, in order."""
        while self._transport is not None and not self._busy and self._delegate is None:
            if self._head is None:
                end = self._buf.find(b"\r\n\r\n")
                if end < 0:
                    if len(self._buf) > _MAX_HEAD:
                        self._hand_over()
                    return
                if not self._start(end + 4):
                    self._hand_over()
                    return
            if len(self._buf) < self._need:
                return
            self._body.append(bytes(self._buf[: self._need]))
            del self._buf[: self._need]
            self._finish()

    def _start(self, head_len: int) -> bool:
        """Parse a head; True when this protocol serves the request (it is then consumed)."""
        head = _Head()
        parser = httptools.HttpRequestParser(head)
        try:
            parser.feed_data(bytes(self._buf[:head_len]))
        except httptools.HttpParserError:
            return False
        if not head.complete or not head.plain:
            return False
        method = parser.get_method()
        if method == b"GET":
            if head.url != _NEXT or head.length:
                return False
        elif method == b"POST":
            rest = head.url[len(_RUNTIME) :] if head.url.startswith(_RUNTIME) else b""
            rid, _, kind = rest.partition(b"/")
            if not rid or kind not in (b"response", b"error") or b"?" in rest:
                return False
            if head.length > rp.MAX_RESPONSE_BYTES:
                return False  # aiohttp answers 413 without buffering the body
        else:
            return False
        self._head = head
        # (not parser.should_keep_alive(): once a bodiless request is complete, llhttp has
        # already reset the flags it reads, and a GET with Connection: close looked kept alive)
        if parser.get_http_version() == "1.0":
            self._keep_alive = b"keep-alive" in head.connection
        else:
            self._keep_alive = b"close" not in head.connection
        self._need = head.length
        self._body = []
        del self._buf[:head_len]
        if method == b"POST":
            self._target.runtime_answer_started()
        return True

    def _hand_over(self) -> None:
        """From this request on, aiohttp serves the connection (with every byte kept)."""
        assert self._transport is not None
        self._delegate = self._fallback()
        self._delegate.connection_made(self._transport)
        data, self._buf = bytes(self._buf), bytearray()
        if data:
            self._delegate.data_received(data)

    # ------------------------------------------------------------------ answers

    def _finish(self) -> None:
        head = self._head
        assert head is not None
        self._head = None
        body = self._body[0] if len(self._body) == 1 else b"".join(self._body)
        self._body = []
        if head.url == _NEXT:
            self._busy = True
            self._task = asyncio.get_running_loop().create_task(self._next())
            return
        rest = head.url[len(_RUNTIME) :]
        rid_b, _, kind = rest.partition(b"/")
        rid = rid_b.decode("latin-1")
        try:
            if kind == b"response":
                self._target.runtime_response(rid, body, head.content_type)
            else:
                self._target.runtime_error(rid, body, head.content_type, head.error_type)
        except RapiRefused as e:
            self._write(_error(e.error))
            return
        self._write(_ACCEPTED)

    async def _next(self) -> None:
        try:
            try:
                event = await self._target.runtime_next()
            except RapiRefused as e:
                out = _error(e.error)
            else:
                out = answer(200, event.payload, event.headers())
        finally:
            self._task = None
            self._busy = False
        self._write(out)
        self._advance()

    def _write(self, out: list[bytes]) -> None:
        t = self._transport
        if t is None or t.is_closing():
            return
        if len(out[1]) < 16384:
            t.write(b"".join(out))
        else:
            t.writelines(out)
        if not self._keep_alive:
            t.close()
