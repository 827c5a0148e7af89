"""The host's end of the link to a sandbox's agent (PID 1): the protocol both ways, and
the connection that carries it.

The protocol (agent.py's docstring; agent.c speaks the same) over a SOCK_SEQPACKET
socketpair, one message per packet:

* host -> agent: fields joined by NUL bytes (:func:`encode`), fds attached;
* agent -> host: ASCII words (:func:`decode`): ``R`` ready, ``S seq pid`` spawned,
  ``E seq errno`` could not execute, ``K seq`` killall done, ``X pid code sig`` exited.

:class:`AgentLink` owns the socket: it sends requests, matches their answers by sequence
number, and reports exits and the agent's end to its owner (the sandbox).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from ..base import SandboxError, SpawnError


def encode(msg: Sequence[Any]) -> bytes:
    """One host -> agent message (agent.py, agent.c): its fields joined by NUL bytes.

    A list is its length then its items; a dict its length then ``key=value`` items.
    """
    parts: list[str] = []
    for item in msg:
        if isinstance(item, (list, tuple)):
            parts += [str(len(item)), *map(str, item)]
        elif isinstance(item, dict):
            parts += [str(len(item)), *(f"{k}={v}" for k, v in item.items())]
        else:
            parts.append(str(item))
    if any("\0" in p for p in parts):
        raise SpawnError("a NUL byte in an argument, variable or directory")
    return b"\0".join(os.fsencode(p) for p in parts)


#: the name the rest of the code and the tests know the encoder by
agent_message = encode


class ReplyKind(StrEnum):
    READY = "R"
    SPAWNED = "S"
    EXEC_ERROR = "E"
    KILLED_ALL = "K"
    EXITED = "X"


@dataclass(frozen=True)
class Reply:
    """One agent -> host message: its kind and its numbers."""

    kind: ReplyKind
    nums: tuple[int, ...]


def decode(data: bytes) -> Reply | None:
    """The agent's message, or None for garbage (the agent is not trusted)."""
    try:
        words = data.decode("ascii").split()
        return Reply(ReplyKind(words[0]), tuple(int(w) for w in words[1:]))
    except (UnicodeDecodeError, ValueError, IndexError):
        return None


#: called with (pid, exit code or None, signal or None) for each exit the agent reports
ExitReport = Callable[[int, int | None, int | None], None]


def _set_done(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


class AgentLink:
    """The host side of one agent's socket, read by the event loop.

    ``on_exit`` hears every process exit the agent reports; ``on_gone`` is called once
    when the socket reaches EOF (the agent died, and with it everything inside).
    """

    def __init__(self, sock: socket.socket, on_exit: ExitReport, on_gone: Callable[[], None]):
        self.sock = sock
        self._on_exit = on_exit
        self._on_gone = on_gone
        self._loop = asyncio.get_running_loop()
        self._seq = 0
        self._pending: dict[int, asyncio.Future[tuple[str, int]]] = {}
        #: set when the agent says it is ready
        self.ready: asyncio.Future[None] = self._loop.create_future()
        self._reading = False
        self.closed = False

    def open(self) -> None:
        """Start reading the agent's messages."""
        self.sock.setblocking(False)
        self._loop.add_reader(self.sock.fileno(), self._readable)
        self._reading = True

    def next_seq(self) -> int:
        self._seq += 1
        return self._seq

    def _readable(self) -> None:
        while True:
            try:
                data = self.sock.recv(256)
            except BlockingIOError:
                return
            except OSError:
                data = b""
            if not data:
                self._on_gone()
                return
            reply = decode(data)
            if reply is not None:
                self._handle(reply)

    def _handle(self, reply: Reply) -> None:
        kind, nums = reply.kind, reply.nums
        if kind is ReplyKind.READY:
            if not self.ready.done():
                self.ready.set_result(None)
        elif kind is ReplyKind.EXITED:
            if len(nums) == 3:
                pid, code, sig = nums
                self._on_exit(pid, None if code < 0 else code, None if sig < 0 else sig)
        elif nums:
            fut = self._pending.pop(nums[0], None)
            if fut is not None and not fut.done():
                fut.set_result((kind.value, nums[1] if len(nums) > 1 else 0))

    async def send(self, msg: Sequence[Any], fds: Sequence[int] = ()) -> None:
        """Send one message (waiting while the socket is full)."""
        data = encode(msg)
        while True:
            try:
                socket.send_fds(self.sock, [data], list(fds))
                return
            except BlockingIOError:
                writable: asyncio.Future[None] = self._loop.create_future()
                self._loop.add_writer(self.sock.fileno(), _set_done, writable)
                try:
                    await writable
                finally:
                    self._loop.remove_writer(self.sock.fileno())
            except OSError as e:
                raise SandboxError(f"sandbox agent unreachable: {e}") from e

    async def request(self, msg: Sequence[Any], fds: Sequence[int] = ()) -> tuple[str, int]:
        """Send ``msg`` (its second field is its sequence number) and await its answer:
        (reply kind, its value)."""
        seq: int = msg[1]
        fut: asyncio.Future[tuple[str, int]] = self._loop.create_future()
        self._pending[seq] = fut
        try:
            await self.send(msg, fds)
        except BaseException:
            self._pending.pop(seq, None)
            raise
        return await fut

    def stop_reading(self) -> None:
        if self._reading:
            self._reading = False
            self._loop.remove_reader(self.sock.fileno())

    def fail(self, err: BaseException, *, cancel_ready: bool = False) -> None:
        """Fail every request waiting for an answer (and the ready wait) with ``err``."""
        for fut in self._pending.values():
            if not fut.done():
                fut.set_exception(err)
        self._pending.clear()
        if not self.ready.done():
            if cancel_ready:
                self.ready.cancel()
            else:
                self.ready.set_exception(err)

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        with contextlib.suppress(ValueError, OSError):
            self.stop_reading()
        self.sock.close()
