"""The lean Runtime API protocol (env/lean_rapi.py) on real sockets, raw bytes in and out.

What the runtime sees must not change: tests/unit/env/test_runtime_api_http.py drives the
same server through every route; these check what is the lean protocol's own: which
requests it answers itself (its answers carry no aiohttp ``Server`` header), framing
across writes and pipelined requests, keep-alive and ``Connection: close``, the hand-over
to aiohttp in the middle of a connection, and closing with a long poll pending.
"""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator

import pytest
import uvloop

from lambdalet.env import rapi_protocol as rp
from lambdalet.env.runtime_api import InSandboxServer, RapiRefused, build_app
from tests.unit.env.test_runtime_api_http import EVENT, Target

NEXT = b"GET /2018-06-01/runtime/invocation/next HTTP/1.1\r\nHost: x\r\n\r\n"


def post(kind: str, body: bytes, rid: str = "req-1", extra: bytes = b"") -> bytes:
    return (
        f"POST /2018-06-01/runtime/invocation/{rid}/{kind} HTTP/1.1\r\nHost: x\r\n".encode()
        + extra
        + b"Content-Length: "
        + str(len(body)).encode()
        + b"\r\n\r\n"
        + body
    )


class Gate(Target):
    """A target whose next waits until the test releases an event."""

    def __init__(self) -> None:
        super().__init__()
        self.events: asyncio.Queue[rp.Event] = asyncio.Queue()
        self.started = 0
        self.refuse: rp.RapiError | None = None
        self.asked = asyncio.Event()

    async def runtime_next(self) -> rp.Event:
        self.calls.append(("next", None))
        self.asked.set()
        if self.refuse is not None:
            raise RapiRefused(self.refuse)
        return await self.events.get()

    def runtime_answer_started(self) -> None:
        self.started += 1


@pytest.fixture
async def served() -> AsyncIterator[tuple[Gate, int, InSandboxServer]]:
    target = Gate()
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    srv = InSandboxServer(build_app(target), sock)
    await srv.start()
    try:
        yield target, sock.getsockname()[1], srv
    finally:
        await srv.close()
        sock.close()


class Client:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def answer(self) -> tuple[int, bytes, bytes]:
        head = await asyncio.wait_for(self.reader.readuntil(b"\r\n\r\n"), 5)
        length = 0
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":", 1)[1])
        body = await asyncio.wait_for(self.reader.readexactly(length), 5)
        return int(head.split(b" ", 2)[1]), head, body


@pytest.fixture
async def client(served: tuple[Gate, int, InSandboxServer]) -> AsyncIterator[Client]:
    reader, writer = await asyncio.open_connection("127.0.0.1", served[1])
    try:
        yield Client(reader, writer)
    finally:
        writer.close()


async def test_a_warm_invoke_is_answered_by_the_lean_protocol(
    served: tuple[Gate, int, InSandboxServer], client: Client
) -> None:
    await warm_invoke(served[0], client)


def test_a_warm_invoke_on_uvloop() -> None:
    """The server runs on uvloop, whose transports are not asyncio.Transport subclasses."""

    async def scenario() -> None:
        target = Gate()
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        srv = InSandboxServer(build_app(target), sock)
        await srv.start()
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", sock.getsockname()[1])
            await warm_invoke(target, Client(reader, writer))
            writer.close()
        finally:
            await srv.close()
            sock.close()

    uvloop.run(scenario())


async def warm_invoke(target: Gate, client: Client) -> None:
    await client.send(NEXT)
    await target.events.put(EVENT)
    status, head, body = await client.answer()
    assert status == 200 and body == b'{"k":1}'
    assert head.startswith(b"HTTP/1.1 200 OK\r\n")
    for name, value in EVENT.headers().items():
        assert f"\r\n{name}: {value}\r\n".encode() in head
    assert b"\r\nDate: " in head
    assert b"\r\nServer:" not in head  # aiohttp would name itself
    await client.send(post("response", b'"done"', extra=b"Content-Type: text/plain\r\n"))
    status, head, body = await client.answer()
    assert (status, body) == (202, rp.ACCEPTED_BODY)
    assert b"\r\nServer:" not in head
    assert ("response", b'"done"') in target.calls
    assert target.started == 1


async def test_requests_split_byte_by_byte_and_pipelined(
    served: tuple[Gate, int, InSandboxServer], client: Client
) -> None:
    target = served[0]
    await target.events.put(EVENT)
    for i in range(len(NEXT)):
        await client.send(NEXT[i : i + 1])
    assert (await client.answer())[0] == 200
    # the answer and the next long poll in one write: answered in order
    await client.send(
        post("error", b"{}", extra=b"Lambda-Runtime-Function-Error-Type: X.Y\r\n") + NEXT
    )
    status, _, body = await client.answer()
    assert (status, body) == (202, rp.ACCEPTED_BODY)
    assert ("error", (b"{}", "X.Y")) in target.calls
    await target.events.put(EVENT)
    assert (await client.answer())[0] == 200
    # a request that arrives while the long poll is pending waits for its answer
    await client.send(NEXT + post("response", b"2"))
    await asyncio.wait_for(target.asked.wait(), 5)
    await target.events.put(EVENT)
    assert (await client.answer())[0] == 200
    assert (await client.answer())[0] == 202
    assert ("response", b"2") in target.calls


async def test_refusals_come_in_aws_shape(
    served: tuple[Gate, int, InSandboxServer], client: Client
) -> None:
    await client.send(post("response", b"1", rid="other"))
    status, head, body = await client.answer()
    assert status == 400 and b"\r\nServer:" not in head
    assert json.loads(body) == {
        "errorMessage": "Invalid request ID",
        "errorType": "InvalidRequestID",
    }


async def test_hand_over_to_aiohttp_mid_connection(
    served: tuple[Gate, int, InSandboxServer], client: Client
) -> None:
    target = served[0]
    await client.send(post("response", b"1"))
    assert (await client.answer())[0] == 202
    # a route the lean protocol leaves to aiohttp, on the same connection
    await client.send(b"GET /2018-06-01/ping HTTP/1.1\r\nHost: x\r\n\r\n")
    status, head, body = await client.answer()
    assert (status, body) == (200, b"pong")
    assert b"\r\nServer: " in head
    # from then on aiohttp serves the connection, the hot routes included
    await target.events.put(EVENT)
    await client.send(NEXT)
    status, head, body = await client.answer()
    assert status == 200 and body == b'{"k":1}' and b"\r\nServer: " in head


async def test_malformed_request_gets_aiohttp_400(client: Client) -> None:
    await client.send(b"GET /2018-06-01/runtime/invocation/next HTTP/1.1\r\nBad Header\r\n\r\n")
    status, head, _ = await client.answer()
    assert status == 400 and b"\r\nServer: " in head


async def test_connection_close_is_honoured(
    served: tuple[Gate, int, InSandboxServer], client: Client
) -> None:
    await client.send(post("response", b"1", extra=b"Connection: close\r\n"))
    assert (await client.answer())[0] == 202
    assert await asyncio.wait_for(client.reader.read(), 5) == b""


@pytest.mark.parametrize(
    "head",
    [
        # a bodiless next that says Connection: close (a C runtime reading to EOF)
        b"GET /2018-06-01/runtime/invocation/next HTTP/1.1\r\nHost: x\r\n"
        b"Connection: close\r\nContent-Length: 0\r\n\r\n",
        # HTTP/1.0 without keep-alive
        b"GET /2018-06-01/runtime/invocation/next HTTP/1.0\r\nHost: x\r\n\r\n",
    ],
)
async def test_a_next_that_asks_to_close_is_answered_then_closed(
    served: tuple[Gate, int, InSandboxServer], client: Client, head: bytes
) -> None:
    target = served[0]
    await client.send(head)
    await asyncio.wait_for(target.asked.wait(), 5)
    target.events.put_nowait(EVENT)
    assert (await client.answer())[0] == 200
    assert await asyncio.wait_for(client.reader.read(), 5) == b""


async def test_close_drops_a_pending_long_poll(
    served: tuple[Gate, int, InSandboxServer], client: Client
) -> None:
    target, _, srv = served
    await client.send(NEXT)
    await asyncio.wait_for(target.asked.wait(), 5)
    await srv.close()
    assert await asyncio.wait_for(client.reader.read(), 5) == b""


async def test_refused_next_is_an_error_answer(
    served: tuple[Gate, int, InSandboxServer], client: Client
) -> None:
    served[0].refuse = rp.invalid_transition("RuntimeReadyState", "InvocationNext")
    await client.send(NEXT)
    status, head, body = await client.answer()
    assert status == 403 and b"\r\nServer:" not in head
    assert json.loads(body)["errorType"] == "InvalidStateTransition"
