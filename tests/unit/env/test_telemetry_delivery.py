"""TelemetryHub delivery against real listeners on loopback (plain sockets stand in
for the sandbox's namespace sockets, as in the ``process`` backend)."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from typing import Any

from aiohttp import web

from lambdalet.clock import SystemClock
from lambdalet.env import telemetry as tm
from lambdalet.env import telemetry_protocol as tp


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def plain_socket(family: int) -> socket.socket:
    return socket.socket(family, socket.SOCK_STREAM)


def sub(
    port: int,
    *,
    protocol: str = "HTTP",
    timeout_ms: int = 25,
    types: Any = None,
    max_items: int = 1000,
) -> tp.Subscription:
    dest: dict[str, Any] = (
        {"protocol": "HTTP", "URI": f"http://sandbox.localdomain:{port}/in"}
        if protocol == "HTTP"
        else {"protocol": "TCP", "port": port}
    )
    doc = {
        "schemaVersion": "2022-12-13",
        "types": types or ["platform", "function"],
        "buffering": {"timeoutMs": timeout_ms, "maxItems": max_items},
        "destination": dest,
    }
    return tp.parse_subscription("telemetry", json.dumps(doc).encode())


class Listener:
    def __init__(self, port: int) -> None:
        self.port = port
        self.batches: list[list[dict[str, Any]]] = []
        self.hosts: list[str] = []
        self.runner: web.AppRunner | None = None
        self.hold = asyncio.Event()
        self.hold.set()

    async def handle(self, request: web.Request) -> web.Response:
        await self.hold.wait()
        self.batches.append(await request.json())
        self.hosts.append(request.headers["Host"])
        return web.Response(status=200)

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/in", self.handle)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        assert self.runner is not None
        await self.runner.cleanup()

    def events(self) -> list[dict[str, Any]]:
        return [e for b in self.batches for e in b]


async def wait_until(pred: Any, limit_s: float = 5.0) -> None:
    deadline = time.monotonic() + limit_s
    while not pred():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.01)


async def test_backlog_order_retry_and_batching() -> None:
    port = free_port()
    hub = tm.TelemetryHub("127.0.0.1", plain_socket, SystemClock())
    hub.emit("platform.initStart", {"phase": "init"})
    hub.log_line("function", b"early line\n")
    # subscribe before the listener exists: delivery must retry until it is up
    hub.subscribe("ext", sub(port))
    hub.emit("platform.telemetrySubscription", {"name": "ext"})
    await asyncio.sleep(0.2)
    listener = Listener(port)
    await listener.start()
    try:
        await wait_until(lambda: len(listener.events()) >= 3)
        assert [e["type"] for e in listener.events()] == [
            "platform.initStart",
            "function",
            "platform.telemetrySubscription",
        ]
        assert listener.events()[1]["record"] == "early line\n"
        assert listener.hosts[0] == f"sandbox.localdomain:{port}"
        hub.close_subscriptions()
        for i in range(5):
            hub.log_line("function", f"line {i}\n".encode())
        await wait_until(lambda: len(listener.events()) >= 8)
        assert [e["record"] for e in listener.events()[3:]] == [f"line {i}\n" for i in range(5)]
        # five lines within timeoutMs go out as one batch, not five
        assert len(listener.batches) <= 3
    finally:
        await hub.reset()
        await listener.stop()


async def test_paused_while_frozen() -> None:
    port = free_port()
    listener = Listener(port)
    await listener.start()
    hub = tm.TelemetryHub("127.0.0.1", plain_socket, SystemClock())
    try:
        hub.subscribe("ext", sub(port))
        hub.close_subscriptions()
        hub.pause()
        hub.emit("platform.start", {"requestId": "r"})
        await asyncio.sleep(0.2)
        assert listener.batches == []
        hub.resume()
        await wait_until(lambda: len(listener.events()) == 1)
    finally:
        await hub.reset()
        await listener.stop()


async def test_overflow_drops_and_reports() -> None:
    port = free_port()
    listener = Listener(port)
    listener.hold.clear()  # a consumer that does not acknowledge
    await listener.start()
    hub = tm.TelemetryHub("127.0.0.1", plain_socket, SystemClock())
    try:
        hub.subscribe("ext", sub(port, max_items=1000))
        hub.close_subscriptions()
        for i in range(6000):
            hub.log_line("function", f"{i}\n".encode())
        listener.hold.set()
        await wait_until(
            lambda: any(e["type"] == "platform.logsDropped" for e in listener.events()), 10
        )
        dropped = next(e for e in listener.events() if e["type"] == "platform.logsDropped")
        assert dropped["record"]["droppedRecords"] > 0
        assert dropped["record"]["droppedBytes"] > 0
        assert dropped["record"]["reason"]
        lines = [e["record"] for e in listener.events() if e["type"] == "function"]
        assert lines == sorted(lines, key=lambda x: int(x)), "delivered in order"
    finally:
        await hub.reset()
        await listener.stop()


async def test_tcp_destination_gets_ndjson() -> None:
    got: list[bytes] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while line := await reader.readline():
            got.append(line)
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    hub = tm.TelemetryHub("127.0.0.1", plain_socket, SystemClock())
    try:
        hub.subscribe("ext", sub(port, protocol="TCP"))
        hub.emit("platform.start", {"requestId": "r1"})
        hub.emit("platform.report", {"requestId": "r1", "metrics": {}})
        await wait_until(lambda: len(got) == 2)
        assert [json.loads(x)["type"] for x in got] == ["platform.start", "platform.report"]
    finally:
        await hub.reset()
        server.close()
        await server.wait_closed()


async def test_one_api_per_extension_and_closed_after_init() -> None:
    from lambdalet.env.rapi_protocol import RapiRefused

    hub = tm.TelemetryHub("127.0.0.1", plain_socket, SystemClock())
    try:
        hub.subscribe("ext", sub(free_port()))
        logs = tp.parse_subscription(
            "logs",
            json.dumps(
                {
                    "types": ["platform"],
                    "destination": {"protocol": "HTTP", "URI": "http://sandbox:1"},
                }
            ).encode(),
        )
        try:
            hub.subscribe("ext", logs)
            raise AssertionError("subscribing through both APIs must fail")
        except RapiRefused as e:
            assert e.error.status == 400
        hub.close_subscriptions()
        try:
            hub.subscribe("other", sub(free_port()))
            raise AssertionError("subscription after Init must fail")
        except RapiRefused as e:
            assert e.error.error_type == "Telemetry.SubscriptionClosed"
    finally:
        await hub.reset()
