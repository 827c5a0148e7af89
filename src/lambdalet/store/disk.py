"""The data directory on disk: private permissions, a space reserve, and "the disk is full".

* The data directory is 0700; the SQLite database, its WAL and shared-memory files and the
  function logs are 0600 (they hold environment variables: secrets).  :func:`secure` makes
  it so at creation and fixes an existing directory at every start.
* A full disk must never stop an operator from freeing space through the API.  SQLite needs a
  little space even to delete (its WAL grows), so a small reserve file is kept in the data
  directory; a delete that hits "disk full" releases it and tries again
  (:class:`SpaceReserve`), and the reserve is taken again once space is back.
"""

from __future__ import annotations

import contextlib
import functools
import os
from collections.abc import Callable
from pathlib import Path
from typing import Concatenate, ParamSpec, Protocol, TypeVar

from lambdalet.errors import is_disk_full

__all__ = ["RESERVE_NAME", "SpaceReserve", "frees_space", "is_disk_full", "secure"]

#: files of the store that must never be readable by others (SQLite adds -wal, -shm, -journal)
_DB_SUFFIXES = ("", "-wal", "-shm", "-journal")
RESERVE_NAME = ".space-reserve"


def secure(data_dir: Path, db_path: Path, logs_dir: Path) -> None:
    """Create the data directory 0700 (or make it so) and the database file 0600, and make
    existing database and log files 0600."""
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(data_dir, 0o700)
    # SQLite creates -wal and -shm with the database file's permissions
    fd = os.open(db_path, os.O_RDWR | os.O_CREAT, 0o600)
    os.close(fd)
    for suffix in _DB_SUFFIXES:
        with contextlib.suppress(FileNotFoundError):
            os.chmod(f"{db_path}{suffix}", 0o600)
    if logs_dir.is_dir():
        os.chmod(logs_dir, 0o700)
        for entry in os.scandir(logs_dir):
            if entry.is_file(follow_symlinks=False):
                os.chmod(entry.path, 0o600)


class SpaceReserve:
    """A file of ``size`` allocated bytes, given back to the file system when space is short.

    Blocking calls (a few syscalls); cheap enough for the event loop.
    """

    def __init__(self, data_dir: Path, size: int) -> None:
        self.path = data_dir / RESERVE_NAME
        self.size = size

    @property
    def held(self) -> bool:
        try:
            return self.path.stat().st_blocks * 512 >= self.size
        except FileNotFoundError:
            return False

    def take(self) -> bool:
        """Allocate the reserve if it is not already; False when the disk cannot hold it."""
        if self.size <= 0 or self.held:
            return True
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT, 0o600)
            try:
                os.posix_fallocate(fd, 0, self.size)
            finally:
                os.close(fd)
        except OSError:
            self.release()
            return False
        return True

    def release(self) -> bool:
        """Free the reserve; True if there was one to free."""
        try:
            self.path.unlink()
        except FileNotFoundError:
            return False
        return True


class _Freeing(Protocol):
    def _release_reserve(self) -> bool: ...
    def collect_code(self) -> None: ...


_S = TypeVar("_S", bound=_Freeing)
_P = ParamSpec("_P")
_R = TypeVar("_R")


def frees_space(method: Callable[Concatenate[_S, _P], _R]) -> Callable[Concatenate[_S, _P], _R]:
    """A store method that deletes: on a full disk it releases the space reserve and runs
    once more, and afterwards the code nothing references any longer is collected."""

    @functools.wraps(method)
    def wrapper(self: _S, /, *args: _P.args, **kwargs: _P.kwargs) -> _R:
        try:
            out = method(self, *args, **kwargs)
        except Exception as e:
            if not is_disk_full(e) or not self._release_reserve():
                raise
            out = method(self, *args, **kwargs)
        self.collect_code()
        return out

    return wrapper
