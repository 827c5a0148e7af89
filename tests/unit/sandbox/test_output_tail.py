"""The agent's output pipe keeps a bounded tail, whatever is written into it."""

from __future__ import annotations

import asyncio
import os

from lambdalet.sandbox.output_tail import OutputTail

LAST = b"\nrunc: the last words\n"


async def _write(fd: int, data: bytes) -> int:
    """Write all of ``data`` to a non-blocking pipe, letting the loop drain it meanwhile."""
    done = 0
    while done < len(data):
        try:
            done += os.write(fd, data[done:])
        except BlockingIOError:
            await asyncio.sleep(0.001)
    return done


async def test_only_the_last_bytes_are_kept_and_the_pipe_is_drained() -> None:
    r, w = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)
    tail = OutputTail(r, keep=100)
    written = 0
    for _ in range(64):  # 4 MiB through a 64 KiB pipe: only possible if it is drained
        written += await _write(w, b"x" * 65536)
    written += await _write(w, LAST)
    os.close(w)
    # what is left in the pipe (at most its 64 KiB) is read, up to the end
    assert tail.text().endswith("runc: the last words")
    assert tail.closed
    assert tail.total == written
    assert len(tail.text()) <= 100


async def test_text_reads_what_is_waiting_before_the_loop_does() -> None:
    r, w = os.pipe2(os.O_CLOEXEC)
    tail = OutputTail(r)
    os.write(w, b"container_linux.go: starting container process caused: exec failed\n")
    assert "exec failed" in tail.text()
    os.close(w)
    tail.close()
    assert tail.closed
