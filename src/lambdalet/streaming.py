"""One invoke's response as the runtime streams it: the hand-over between layers.

The caller of a streaming invoke (``InvokeWithResponseStream``, later function URLs in
``RESPONSE_STREAM`` mode) puts a :class:`ResponseStream` in its ``InvokeInput``; the
environment pushes each chunk the runtime sends (``Lambda-Runtime-Function-Response-Mode:
streaming``) as it arrives; the caller reads them with ``async for``.  The invoke path
closes the stream when the invoke is over, whatever happened; the invoke's
``InvokeOutput`` then says how it ended (error, log tail).

A runtime that answers in one piece (every Python function) never starts the stream:
its whole answer is in the ``InvokeOutput``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

#: queued bytes above which the runtime's side waits for the reader (back-pressure)
HIGH_WATER_BYTES = 1024 * 1024


class ResponseStream:
    """Chunks from one writer (the environment) to one reader (the caller)."""

    def __init__(self) -> None:
        self._queue: asyncio.Queue[bytes | None] = asyncio.Queue()
        self._queued = 0
        self._room = asyncio.Event()
        self._room.set()
        self._closed = False
        self._abandoned = False
        self.started = asyncio.Event()
        #: the runtime's Content-Type for the stream (set when it starts)
        self.content_type: str | None = None
        #: bytes pushed so far
        self.size = 0

    @property
    def closed(self) -> bool:
        return self._closed

    def start(self, content_type: str | None) -> None:
        """The runtime began a streamed response."""
        if not self._closed and not self.started.is_set():
            self.content_type = content_type
            self.started.set()

    def push(self, chunk: bytes) -> None:
        if self._closed or self._abandoned or not chunk:
            return
        self.size += len(chunk)
        self._queued += len(chunk)
        if self._queued > HIGH_WATER_BYTES:
            self._room.clear()
        self._queue.put_nowait(chunk)

    async def room(self) -> None:
        """Wait while the reader is more than :data:`HIGH_WATER_BYTES` behind."""
        await self._room.wait()

    def abandon(self) -> None:
        """The reader went away: later chunks are dropped and the writer never waits.

        The function runs on to its end, as on Lambda when a streaming client disconnects.
        """
        self._abandoned = True
        self._room.set()
        while not self._queue.empty():
            self._queue.get_nowait()
        self._queued = 0

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._room.set()
            self._queue.put_nowait(None)

    async def __aiter__(self) -> AsyncIterator[bytes]:
        while True:
            chunk = await self._queue.get()
            if chunk is None:
                return
            self._queued -= len(chunk)
            if self._queued <= HIGH_WATER_BYTES:
                self._room.set()
            yield chunk
