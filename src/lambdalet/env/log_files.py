"""Function log files: their layout, bounded writing with rotation, reading and removal.

Everything that touches a function's log files goes through this module (the server writes,
the Logs API reads through ``env/log_records.py``, DeleteFunction removes).

Layout, under ``<data>/logs/`` (directory 0700, files 0600)::

    <function>.log       the current file; every environment of the function appends to it
    <function>.log.1     the file before it
    <function>.log.2     ... up to <function>.log.<backups>, the oldest

Function names hold only ``[A-Za-z0-9_-]``, so these names never collide.  When a write would
take the current file past ``max_bytes``, the files shift by one (``.log`` → ``.log.1`` →
``.log.2`` …, the oldest is dropped) and a new ``.log`` starts: a function's logs never take
more than ``max_bytes * (backups + 1)`` bytes, however much it prints.  A single write larger
than ``max_bytes`` keeps only its last ``max_bytes``.  Reading a function's log in order means
reading ``.log.<backups>`` … ``.log.1``, then ``.log`` (:func:`log_files`).
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path

MIB = 1024 * 1024


@dataclass(frozen=True)
class LogLimits:
    """Per-function bounds: each file at most ``max_bytes``, at most ``backups`` old files."""

    max_bytes: int = 4 * MIB
    backups: int = 2

    @property
    def total_bytes(self) -> int:
        return self.max_bytes * (self.backups + 1)


def log_path(logs_dir: Path, function_name: str) -> Path:
    """The current log file of a function."""
    return logs_dir / f"{function_name}.log"


def _backup(path: Path, n: int) -> Path:
    return path.with_name(f"{path.name}.{n}")


def log_files(logs_dir: Path, function_name: str) -> list[Path]:
    """The function's existing log files, oldest first (the current file last)."""
    path = log_path(logs_dir, function_name)
    backups: list[tuple[int, Path]] = []
    prefix = path.name + "."
    with contextlib.suppress(FileNotFoundError):
        for entry in os.scandir(logs_dir):
            suffix = entry.name[len(prefix) :] if entry.name.startswith(prefix) else ""
            if suffix.isdigit():
                backups.append((int(suffix), logs_dir / entry.name))
    out = [p for _, p in sorted(backups, reverse=True)]
    if path.exists():
        out.append(path)
    return out


def remove_logs(logs_dir: Path, function_name: str) -> int:
    """Delete every log file of a function; return the bytes freed."""
    freed = 0
    for p in log_files(logs_dir, function_name):
        with contextlib.suppress(FileNotFoundError):
            freed += p.stat().st_size
            p.unlink()
    return freed


def logged_functions(logs_dir: Path) -> set[str]:
    """Names of the functions that have log files."""
    names: set[str] = set()
    with contextlib.suppress(FileNotFoundError):
        for entry in os.scandir(logs_dir):
            stem, sep, _ = entry.name.partition(".log")
            if sep and stem:
                names.add(stem)
    return names


class FunctionLog:
    """Appends to one function's log files, rotating them under ``limits``.

    Shared by all environments of the function.  A write that fails (a full disk) loses its
    bytes rather than failing the invocation.  After :meth:`close`, writes are dropped.
    """

    def __init__(self, logs_dir: Path, function_name: str, limits: LogLimits) -> None:
        logs_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.path = log_path(logs_dir, function_name)
        self.limits = limits
        self._fd = -1
        self._size = 0
        self._closed = False
        self._open()

    def _open(self) -> None:
        self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        st = os.fstat(self._fd)
        if st.st_mode & 0o077:
            os.fchmod(self._fd, 0o600)
        self._size = st.st_size

    def write(self, data: bytes) -> None:
        if self._closed:
            return
        limit = self.limits.max_bytes
        if len(data) > limit:
            data = data[-limit:]
        # a full disk must not take an invocation down; the bytes are lost
        with contextlib.suppress(OSError):
            if self._fd < 0:  # a rotation failed (a full disk): try again
                self._open()
            if self._size and self._size + len(data) > limit:
                self._rotate()
            self._size += os.write(self._fd, data)

    def _rotate(self) -> None:
        os.close(self._fd)
        self._fd = -1
        backups = self.limits.backups
        if backups == 0:
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()
        else:
            with contextlib.suppress(FileNotFoundError):
                _backup(self.path, backups).unlink()
            for n in range(backups - 1, 0, -1):
                with contextlib.suppress(FileNotFoundError):
                    os.rename(_backup(self.path, n), _backup(self.path, n + 1))
            os.rename(self.path, _backup(self.path, 1))
        self._open()

    def close(self) -> None:
        self._closed = True
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
