"""Starting host tools (mount, runc, slirp4netns, ...) without stalling the event loop.

``asyncio.create_subprocess_exec`` forks in the event-loop thread.  Under uvloop that is
libuv's ``fork()`` of the whole server (page tables included): ~3.7 ms of a stalled loop
per ``mount`` with a 120 MB server, against ~1 ms for CPython's ``vfork()``-based
``subprocess``.  A cold start that found a spare waited behind the next spare's
``runc run``, ``cp`` and ``mount`` spawns.  Here every tool runs through
:mod:`subprocess` in a small thread pool of its own: the loop only waits on a future.
Exits of long-lived children are awaited on a pidfd, so no thread blocks on them.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

#: tools started at once at most (a burst of sandbox builds queues behind these)
WORKERS = 8

_pool: ThreadPoolExecutor | None = None


def _executor() -> ThreadPoolExecutor:
    global _pool
    if _pool is None:
        _pool = ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="lambdalet-spawn")
    return _pool


class ToolTimeout(Exception):
    """The tool did not finish in time (it was killed)."""


def _run_blocking(argv: Sequence[str], limit_s: float, kw: dict[str, Any]) -> tuple[int, bytes]:
    kw.setdefault("stdin", subprocess.DEVNULL)
    kw.setdefault("stdout", subprocess.PIPE)
    kw.setdefault("stderr", subprocess.STDOUT)
    try:
        done = subprocess.run(list(argv), timeout=limit_s, check=False, **kw)
    except subprocess.TimeoutExpired:
        raise ToolTimeout(f"{argv[0]} timed out after {limit_s}s") from None
    return done.returncode, (done.stdout or b"") + (done.stderr or b"")


async def run(argv: Sequence[str], limit_s: float = 30.0, **kw: Any) -> tuple[int, bytes]:
    """Run a tool to completion: (exit status, what it wrote to the pipes it was given).

    By default stdout and stderr go to one pipe and come back together.

    ``kw`` goes to :func:`subprocess.run` (e.g. ``stdin=fd``, ``stdout=log_fd``).
    Raises :class:`ToolTimeout` (after killing it) when it runs past ``limit_s``.
    """
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(_executor(), _run_blocking, argv, limit_s, kw)


async def start(argv: Sequence[str], **kw: Any) -> subprocess.Popen[bytes]:
    """Start a long-lived tool; ``kw`` goes to :class:`subprocess.Popen`."""
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(_executor(), lambda: subprocess.Popen(list(argv), **kw))


async def readable(fd: int, limit_s: float | None = None) -> None:
    """Return once ``fd`` is readable (a pidfd: the process exited); TimeoutError after
    ``limit_s``."""
    loop = asyncio.get_running_loop()
    ready: asyncio.Future[None] = loop.create_future()

    def on_readable() -> None:
        if not ready.done():
            ready.set_result(None)

    loop.add_reader(fd, on_readable)
    try:
        await asyncio.wait_for(ready, limit_s)
    finally:
        loop.remove_reader(fd)


async def wait(proc: subprocess.Popen[bytes], limit_s: float | None = None) -> int:
    """The exit status of ``proc``, awaited on a pidfd; TimeoutError after ``limit_s``."""
    if proc.returncode is not None:
        return proc.returncode
    loop = asyncio.get_running_loop()
    try:
        pidfd = os.pidfd_open(proc.pid)
    except ProcessLookupError:
        return proc.wait()
    except OSError:  # pragma: no cover - kernels before 5.3
        return await asyncio.wait_for(loop.run_in_executor(_executor(), proc.wait), limit_s)
    try:
        if proc.poll() is None:
            await readable(pidfd, limit_s)
    finally:
        os.close(pidfd)
    return proc.wait()


async def stop(proc: subprocess.Popen[bytes], grace_s: float = 1.0) -> None:
    """SIGTERM, ``grace_s`` to exit, then SIGKILL; reaps it."""
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        proc.terminate()
    try:
        await wait(proc, grace_s)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await wait(proc)
