"""Telemetry and Logs API delivery for one environment.

The environment emits platform events and log lines into a :class:`TelemetryHub`;
every subscriber has its own buffer and delivery task that batches by
``maxItems`` / ``maxBytes`` / ``timeoutMs``, posts to the listener inside the
sandbox (HTTP, or NDJSON over TCP) through a socket made in the sandbox's
network namespace, retries when the listener is not ready, and drops records
with a ``platform.logsDropped`` event when the buffer overflows.  Delivery only
runs while the environment is thawed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
from collections import deque
from collections.abc import Callable
from typing import Any

import aiohttp

from lambdalet.clock import Clock
from lambdalet.env import telemetry_protocol as tp

log = logging.getLogger(__name__)

#: a subscriber holds at most this many times its batch limits before dropping
OVERFLOW_FACTOR = 4
RETRY_INITIAL_S = 0.05
RETRY_MAX_S = 1.0
SEND_TIMEOUT_S = 5.0

SocketFactory = Callable[[int], socket.socket]


class Subscriber:
    def __init__(
        self,
        name: str,
        sub: tp.Subscription,
        host_ip: str,
        socket_inside: SocketFactory,
        thawed: asyncio.Event,
        clock: Clock,
    ) -> None:
        self.name = name
        self.sub = sub
        self._host_ip = host_ip
        self._socket_inside = socket_inside
        self._thawed = thawed
        self._clock = clock
        self._queue: deque[dict[str, Any]] = deque()
        self._queued_bytes = 0
        self._dropped_records = 0
        self._dropped_bytes = 0
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._session: aiohttp.ClientSession | None = None
        self._tcp: asyncio.StreamWriter | None = None
        self.delivered_batches = 0
        self._task = asyncio.create_task(self._run(), name=f"telemetry:{name}")

    def offer(self, event: tp.Event) -> None:
        obj = tp.translate(self.sub, event)
        if obj is None:
            return
        size = tp.size_of(obj)
        b = self.sub.buffering
        if event.category != "platform" and (
            len(self._queue) >= OVERFLOW_FACTOR * b.max_items
            or self._queued_bytes + size > OVERFLOW_FACTOR * b.max_bytes
        ):
            self._dropped_records += 1
            self._dropped_bytes += size
            return
        self._queue.append(obj)
        self._queued_bytes += size
        self._idle.clear()
        self._wake.set()

    def _note_drops(self) -> None:
        if not self._dropped_records:
            return
        rec = {
            "droppedBytes": self._dropped_bytes,
            "droppedRecords": self._dropped_records,
            "reason": "Consumer seems to have fallen behind as it has not acknowledged "
            "receipt of logs.",
        }
        self._dropped_records = self._dropped_bytes = 0
        event = tp.Event(self._clock.wall(), "platform.logsDropped", rec)
        obj = tp.translate(self.sub, event)
        if obj is not None:
            self._queue.append(obj)
            self._queued_bytes += tp.size_of(obj)

    def _take_batch(self) -> list[dict[str, Any]]:
        b = self.sub.buffering
        batch: list[dict[str, Any]] = []
        size = 0
        while self._queue and len(batch) < b.max_items:
            obj = self._queue[0]
            s = tp.size_of(obj)
            if batch and size + s > b.max_bytes:
                break
            batch.append(self._queue.popleft())
            self._queued_bytes -= s
            size += s
        return batch

    async def _run(self) -> None:
        b = self.sub.buffering
        while True:
            await self._wake.wait()
            self._wake.clear()
            if not self._queue:
                self._idle.set()
                continue
            # wait for a full batch, or timeoutMs after the first record
            deadline = self._clock.monotonic() + b.timeout_ms / 1000
            while len(self._queue) < b.max_items and self._queued_bytes < b.max_bytes:
                if deadline <= self._clock.monotonic() or self._flush_now:
                    break
                with contextlib.suppress(TimeoutError):
                    async with self._clock.timeout_at(deadline):
                        await self._wake.wait()
                self._wake.clear()
            self._note_drops()
            batch = self._take_batch()
            delay = RETRY_INITIAL_S
            while batch:
                await self._thawed.wait()
                if await self._send(batch):
                    self.delivered_batches += 1
                    break
                await self._clock.sleep(delay)
                delay = min(delay * 2, RETRY_MAX_S)
            if self._queue:
                self._wake.set()
            else:
                self._idle.set()

    _flush_now = False

    async def flush(self, timeout_s: float) -> None:
        """Deliver what is queued now, waiting at most ``timeout_s``."""
        self._flush_now = True
        self._wake.set()
        try:
            async with self._clock.timeout(max(0.0, timeout_s)):
                await self._idle.wait()
        except TimeoutError:
            pass
        finally:
            self._flush_now = False

    async def _send(self, batch: list[dict[str, Any]]) -> bool:
        try:
            async with self._clock.timeout(SEND_TIMEOUT_S):
                if self.sub.destination.protocol == "TCP":
                    await self._send_tcp(batch)
                else:
                    await self._send_http(batch)
            return True
        except (OSError, aiohttp.ClientError, TimeoutError) as e:
            log.debug("telemetry delivery to %s failed: %s", self.name, e)
            await self._close_transport()
            return False

    async def _send_http(self, batch: list[dict[str, Any]]) -> None:
        dest = self.sub.destination
        if self._session is None:
            connector = aiohttp.TCPConnector(
                socket_factory=lambda ai: self._socket_inside(ai[0]), limit=1
            )
            self._session = aiohttp.ClientSession(connector=connector)
        body = json.dumps(batch, separators=(",", ":")).encode()
        url = f"http://{self._host_ip}:{dest.port}{dest.path}"
        async with self._session.request(
            dest.method,
            url,
            data=body,
            headers={
                "Content-Type": "application/json",
                "Host": f"{dest.host_header}:{dest.port}",
            },
        ) as resp:
            await resp.read()
            if resp.status >= 300:
                raise aiohttp.ClientResponseError(
                    resp.request_info, resp.history, status=resp.status
                )

    async def _send_tcp(self, batch: list[dict[str, Any]]) -> None:
        if self._tcp is None:
            sock = self._socket_inside(socket.AF_INET)
            sock.setblocking(False)
            try:
                await asyncio.get_running_loop().sock_connect(
                    sock, (self._host_ip, self.sub.destination.port)
                )
            except BaseException:
                sock.close()
                raise
            _, self._tcp = await asyncio.open_connection(sock=sock)
        data = b"".join(json.dumps(o, separators=(",", ":")).encode() + b"\n" for o in batch)
        self._tcp.write(data)
        await self._tcp.drain()

    async def _close_transport(self) -> None:
        if self._session is not None:
            with contextlib.suppress(Exception):
                await self._session.close()
            self._session = None
        if self._tcp is not None:
            self._tcp.close()
            with contextlib.suppress(Exception):
                await self._tcp.wait_closed()
            self._tcp = None

    async def close(self) -> None:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await self._task
        await self._close_transport()


class TelemetryHub:
    """Every telemetry / logs subscriber of one environment's current Init."""

    def __init__(
        self,
        host_ip: str,
        socket_inside: SocketFactory,
        clock: Clock,
    ) -> None:
        self._host_ip = host_ip
        self._socket_inside = socket_inside
        self._clock = clock
        self._subs: dict[str, Subscriber] = {}
        self._apis: dict[str, str] = {}  # extension name -> api it subscribed with
        #: events since the start of this Init; a subscriber gets them on subscribing
        self._backlog: list[tp.Event] = []
        self._open = True
        self.thawed = asyncio.Event()
        self.thawed.set()

    @property
    def subscribers(self) -> list[Subscriber]:
        return list(self._subs.values())

    @property
    def active(self) -> bool:
        """Whether an emitted record goes anywhere: a subscriber, or Init's backlog."""
        return self._open or bool(self._subs)

    def emit(self, type_: str, record: Any) -> None:
        if not self._open and not self._subs:
            return
        event = tp.Event(self._clock.wall(), type_, record)
        if self._open:
            self._backlog.append(event)
        for sub in self._subs.values():
            sub.offer(event)

    def log_line(self, category: str, line: bytes) -> None:
        if not self._subs and not self._open:
            return
        self.emit(category, line.decode("utf-8", errors="replace"))

    def subscribe(self, ext_name: str, sub: tp.Subscription) -> None:
        """Register (or replace: subscriptions are idempotent) one extension's subscription."""
        from lambdalet.env.rapi_protocol import RapiError, RapiRefused

        other = self._apis.get(ext_name)
        if other is not None and other != sub.api:
            raise RapiRefused(
                RapiError(
                    400,
                    "ValidationError" if sub.api == "telemetry" else "Logs.ValidationError",
                    "An extension can subscribe through the Telemetry API or the Logs API, "
                    "not both",
                )
            )
        if not self._open:
            etype = (
                "Telemetry.SubscriptionClosed"
                if sub.api == "telemetry"
                else "Logs.SubscriptionClosed"
            )
            raise RapiRefused(
                RapiError(
                    403,
                    etype,
                    f"{'Telemetry' if sub.api == 'telemetry' else 'Logs'} "
                    "API subscription is closed",
                )
            )
        old = self._subs.pop(ext_name, None)
        if old is not None:
            asyncio.get_running_loop().create_task(old.close())
        s = Subscriber(ext_name, sub, self._host_ip, self._socket_inside, self.thawed, self._clock)
        self._subs[ext_name] = s
        self._apis[ext_name] = sub.api
        for event in self._backlog:
            s.offer(event)

    def close_subscriptions(self) -> None:
        """Init is over: no new subscriptions, no backlog."""
        self._open = False
        self._backlog.clear()

    def pause(self) -> None:
        self.thawed.clear()

    def resume(self) -> None:
        self.thawed.set()

    async def flush(self, timeout_s: float) -> None:
        if self._subs:
            await asyncio.gather(*(s.flush(timeout_s) for s in self._subs.values()))

    async def reset(self) -> None:
        """Drop every subscription (their extensions are gone) and reopen for the next Init."""
        subs, self._subs = list(self._subs.values()), {}
        self._apis.clear()
        self._backlog.clear()
        self._open = True
        await asyncio.gather(*(s.close() for s in subs), return_exceptions=True)
