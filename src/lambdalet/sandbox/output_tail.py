"""The read end of a pipe whose writer is not trusted: drained, only its tail kept.

A sandbox's agent (PID 1) and runc share one such pipe as stdout and stderr.  Nothing
inside the sandbox should write there, but a function could (``/proc/1/fd/1``, were the
agent dumpable), so it is a pipe the event loop drains and not a host file it could fill.
"""

from __future__ import annotations

import asyncio
import os

#: bytes of runc's and the agent's own output kept for error messages
AGENT_OUTPUT_KEEP = 4096


class OutputTail:
    """The read end of a pipe, drained by the event loop; keeps only the last ``keep`` bytes."""

    def __init__(self, fd: int, keep: int = AGENT_OUTPUT_KEEP) -> None:
        self.fd = fd
        self.keep = keep
        self.total = 0
        self._tail = bytearray()
        self._loop = asyncio.get_running_loop()
        os.set_blocking(fd, False)
        self._loop.add_reader(fd, self._read)
        self.closed = False

    def __repr__(self) -> str:
        return f"OutputTail(fd={self.fd}, total={self.total})"

    def _read(self) -> None:
        for _ in range(16):  # a bounded amount per wake-up: the loop serves others too
            try:
                data = os.read(self.fd, 65536)
            except BlockingIOError:
                return
            except OSError:
                data = b""
            if not data:
                self.close()
                return
            self.total += len(data)
            self._tail += data
            if len(self._tail) > self.keep:
                del self._tail[: len(self._tail) - self.keep]

    def text(self) -> str:
        """What was kept, after reading whatever is waiting in the pipe."""
        if not self.closed:
            self._read()
        return self._tail.decode(errors="replace").strip()

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self._loop.remove_reader(self.fd)
            os.close(self.fd)
