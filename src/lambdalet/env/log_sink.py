"""Where an environment's log lines go: the function's log file, plus a capture for Tail.

One file per function under ``<data>/logs/<function>.log``, rotated under a per-function
cap (``env/log_files.py`` owns the files); lines of every
environment of the function are appended as they come (function output and
platform lines alike), each as one event with its time and log stream in the
format of ``env/log_records.py``, which is what the Logs API serves.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Callable
from pathlib import Path

from lambdalet.env.log_files import FunctionLog, log_path
from lambdalet.env.log_records import encode

__all__ = ["TAIL_BYTES", "FunctionLog", "LogStream", "function_log_path"]

#: ``LogType=Tail`` returns at most this many bytes of the invocation's log
TAIL_BYTES = 4096


class LogStream:
    """One environment's log stream: writes through, and captures one invocation's lines."""

    def __init__(self, log: FunctionLog, name: str, now: Callable[[], float] = time.time) -> None:
        self.log = log
        self.name = name
        self._now = now
        self._capture: list[bytes] | None = None
        self._captured = 0

    def line(self, text: str) -> None:
        self.lines(text)

    def lines(self, *texts: str) -> None:
        """Several platform lines, one event each, written at once."""
        ts = int(self._now() * 1000)
        self.log.write(b"".join(encode(ts, self.name, t.encode()) for t in texts))
        self._captured_text("".join(t + "\n" for t in texts).encode())

    def raw(self, data: bytes) -> None:
        """One line of a process's output (an event; ``\r`` in it separates its lines)."""
        self.log.write(encode(int(self._now() * 1000), self.name, data))
        self._captured_text(data)

    def _captured_text(self, data: bytes) -> None:
        if self._capture is not None:
            self._capture.append(data)
            self._captured += len(data)
            # keep memory bounded: only the tail is ever returned
            if self._captured > 4 * TAIL_BYTES and len(self._capture) > 1:
                joined = b"".join(self._capture)[-TAIL_BYTES:]
                self._capture = [joined]
                self._captured = len(joined)

    def start_capture(self) -> None:
        self._capture = []
        self._captured = 0

    def stop_capture(self) -> str:
        """Base64 of the last 4 KB captured since ``start_capture``."""
        data = b"".join(self._capture or [])[-TAIL_BYTES:]
        self._capture = None
        self._captured = 0
        return base64.b64encode(data).decode()


def function_log_path(logs_dir: Path, function_name: str) -> Path:
    return log_path(logs_dir, function_name)
