"""Output plumbing shared by every backend: a process's stdout+stderr pipe read by the
event loop and cut into lines (:class:`LogPipe`, :class:`LineSplitter`)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable

#: longer lines are delivered in pieces of this size
MAX_LINE = 256 * 1024
READ_CHUNK = 64 * 1024


class LineSplitter:
    """Bytes in, complete lines out (each with its newline); overlong lines split."""

    def __init__(self, max_line: int = MAX_LINE) -> None:
        self.max_line = max_line
        self._buf = bytearray()

    def feed(self, data: bytes) -> list[bytes]:
        self._buf += data
        out: list[bytes] = []
        start = 0
        buf = self._buf
        while True:
            nl = buf.find(b"\n", start, start + self.max_line)
            if nl >= 0:
                out.append(bytes(buf[start : nl + 1]))
                start = nl + 1
            elif len(buf) - start >= self.max_line:
                out.append(bytes(buf[start : start + self.max_line]))
                start += self.max_line
            else:
                break
        del buf[:start]
        return out

    def flush(self) -> bytes:
        """Whatever is left without a newline (empty if nothing)."""
        rest = bytes(self._buf)
        self._buf.clear()
        return rest


class LogPipe:
    """The read end of one process's stdout+stderr pipe, read by the event loop."""

    def __init__(self, fd: int, on_line: Callable[[bytes], None]) -> None:
        self.fd = fd
        self._on_line = on_line
        self._split = LineSplitter()
        self._loop = asyncio.get_running_loop()
        os.set_blocking(fd, False)
        self._loop.add_reader(fd, self._read_ready)
        self.closed = False

    def _emit(self, lines: list[bytes]) -> None:
        for line in lines:
            self._on_line(line)

    def _read_ready(self) -> None:
        try:
            data = os.read(self.fd, READ_CHUNK)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if data:
            self._emit(self._split.feed(data))
        else:
            self.close()

    def drain(self) -> None:
        """Deliver everything already in the pipe, and any unterminated last line.

        Called when the writer has exited, so that its output precedes its exit.
        """
        while not self.closed:
            try:
                data = os.read(self.fd, READ_CHUNK)
            except BlockingIOError:
                break
            except OSError:
                data = b""
            if not data:
                self.close()
                return
            self._emit(self._split.feed(data))
        rest = self._split.flush()
        if rest:
            self._on_line(rest)

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        rest = self._split.flush()
        if rest:
            self._on_line(rest)
        self._loop.remove_reader(self.fd)
        os.close(self.fd)
