"""ResponseStream: order, end, back-pressure, and a reader that leaves."""

from __future__ import annotations

import asyncio

from lambdalet import streaming
from lambdalet.streaming import ResponseStream


async def test_chunks_arrive_in_order_until_closed() -> None:
    s = ResponseStream()
    s.start("text/plain")
    s.push(b"a")
    s.push(b"")  # nothing to send
    s.push(b"b")
    s.close()
    s.push(b"late")
    assert s.started.is_set() and s.content_type == "text/plain"
    assert [c async for c in s] == [b"a", b"b"]
    assert s.size == 2


async def test_writer_waits_while_the_reader_is_behind() -> None:
    s = ResponseStream()
    s.push(b"x" * (streaming.HIGH_WATER_BYTES + 1))
    room = asyncio.ensure_future(s.room())
    await asyncio.sleep(0)
    assert not room.done()
    reader = aiter(s)
    assert len(await anext(reader)) == streaming.HIGH_WATER_BYTES + 1
    await asyncio.wait_for(room, 1)


async def test_an_abandoned_stream_never_blocks_the_writer() -> None:
    s = ResponseStream()
    s.push(b"x" * (streaming.HIGH_WATER_BYTES + 1))
    s.abandon()
    await asyncio.wait_for(s.room(), 1)
    s.push(b"y" * (streaming.HIGH_WATER_BYTES + 1))
    await asyncio.wait_for(s.room(), 1)
