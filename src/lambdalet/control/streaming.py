"""A streaming invoke: the response's chunks as the function produces them.

Used by ``InvokeWithResponseStream`` and meant for function URLs in ``RESPONSE_STREAM``
mode::

    streamed = await invoke_streaming(invoker, invocation)   # raises the service errors
    try:
        async for chunk in streamed.chunks:                 # bytes, as they come
            ...
        out = await streamed.result                          # how it ended (error, log tail)
    finally:
        streamed.abandon()                                   # a reader that left early

:func:`invoke_streaming` returns once the response begins: the runtime started a
streamed response (``streamed.content_type`` is its Content-Type), or the invoke
finished without one (a buffered function: ``streamed.buffered`` is True and the whole
answer is ``result``'s payload; ``chunks`` yields nothing).  Errors raised before the
function ran (unknown function, throttling) propagate from :func:`invoke_streaming`
itself, so a caller can still answer them with an ordinary error response.  A caller
that stops reading does not stop the function: the invoke runs to its end.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

from lambdalet.model import InvokeInput, InvokeOutput, Invoker
from lambdalet.streaming import ResponseStream


@dataclass(frozen=True)
class StreamedInvocation:
    #: the runtime's Content-Type of a streamed response; None when it answered buffered
    content_type: str | None
    chunks: AsyncIterator[bytes]
    result: asyncio.Future[InvokeOutput]
    stream: ResponseStream

    def abandon(self) -> None:
        """Stop reading: the function runs on, its later chunks are dropped."""
        self.stream.abandon()

    @property
    def buffered(self) -> bool:
        return self.content_type is None


async def _nothing() -> AsyncIterator[bytes]:
    return
    yield b""  # pragma: no cover - makes this an async generator


def _finished(stream: ResponseStream) -> Callable[[asyncio.Future[InvokeOutput]], None]:
    def done(task: asyncio.Future[InvokeOutput]) -> None:
        stream.close()
        if not task.cancelled():
            task.exception()  # retrieved here too: a reader that left never awaits it

    return done


async def invoke_streaming(invoker: Invoker, request: InvokeInput) -> StreamedInvocation:
    stream = ResponseStream()
    task = asyncio.ensure_future(invoker.invoke(dataclasses.replace(request, stream=stream)))
    task.add_done_callback(_finished(stream))
    started = asyncio.ensure_future(stream.started.wait())
    try:
        await asyncio.wait({task, started}, return_when=asyncio.FIRST_COMPLETED)
    except asyncio.CancelledError:
        started.cancel()
        raise
    if not stream.started.is_set():
        started.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await started
        task.result()  # raises what the invoke raised
        return StreamedInvocation(None, _nothing(), task, stream)
    return StreamedInvocation(stream.content_type, aiter(stream), task, stream)
