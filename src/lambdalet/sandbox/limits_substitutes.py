"""What stands in for cgroups in a rootless sandbox without a delegated cgroup subtree.

* **Freezing**: SIGSTOP to every process of the sandbox below its agent (PID 1), found
  by parent pid in ``/proc`` (this kernel may lack ``/proc/<pid>/task/<tid>/children``),
  repeated until no new process shows up; SIGCONT to thaw.  Unlike the cgroup freezer a
  stopped process is visible as stopped (``T`` in ``ps``) and a SIGCONT the function sent
  itself is lost; the agent itself keeps running (it only answers the server).
* **Forks**: ``RLIMIT_NPROC`` of the environment's own uid (userns.py).
* **Memory used** (Max Memory Used): the largest summed ``VmRSS`` of the sandbox's
  processes seen when asked or at a freeze: sampled, so a short peak in between is missed.
* **Memory**: ``RLIMIT_DATA`` (heap and private writable mappings) of each process at the
  function's memory size.  Per process, not for the sandbox as a whole, and it counts
  reserved (not yet touched) memory too: an allocation a cgroup would have allowed may
  fail, and several processes together may pass the size.
"""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Iterable
from pathlib import Path

PROC = Path("/proc")


def parent_of(stat: str) -> int:
    """The parent pid in a ``/proc/<pid>/stat`` line (the name may hold spaces and parens)."""
    return int(stat[stat.rindex(")") + 2 :].split()[1])


def parents(proc: Path = PROC) -> dict[int, int]:
    """pid -> parent pid of every process on the host."""
    out: dict[int, int] = {}
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, ValueError):
            out[int(entry.name)] = parent_of((entry / "stat").read_text())
    return out


def descendants(root: int, parent: dict[int, int]) -> list[int]:
    """Every pid below ``root`` in the ``parent`` map, parents before children (pure)."""
    kids: dict[int, list[int]] = {}
    for pid, ppid in parent.items():
        kids.setdefault(ppid, []).append(pid)
    out: list[int] = []
    todo = list(kids.get(root, ()))
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(kids.get(pid, ()))
    return out


def rss_bytes(pids: Iterable[int], proc: Path = PROC) -> int:
    """The summed resident memory of ``pids`` now (``VmRSS``; gone processes count 0)."""
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError, ValueError):
            for line in (proc / str(pid) / "status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
                    break
    return total


def _signal_all(pids: Iterable[int], sig: int) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, sig)


def stop_tree(root: int, rounds: int = 4) -> set[int]:
    """SIGSTOP every process below ``root`` (a process forking meanwhile is caught by the
    next round); returns the pids stopped, for :func:`continue_tree`."""
    stopped: set[int] = set()
    for _ in range(rounds):
        new = [p for p in descendants(root, parents()) if p not in stopped]
        if not new:
            break
        _signal_all(new, signal.SIGSTOP)
        stopped.update(new)
    return stopped


def continue_tree(root: int, stopped: Iterable[int]) -> None:
    """SIGCONT what :func:`stop_tree` stopped and whatever is below ``root`` now."""
    _signal_all({*stopped, *descendants(root, parents())}, signal.SIGCONT)
