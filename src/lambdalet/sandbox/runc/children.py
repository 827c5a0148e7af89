"""The processes a runc sandbox started and watches, by pid.

The agent's "spawned" and "exited" messages for one process can be read together, so an
exit may arrive before the spawn that started the process has returned its pid: such
an exit is kept until the process is watched, then reported.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..base import ProcessRole
from ..output import LogPipe

#: (exit code or None, signal or None)
Status = tuple[int | None, int | None]


@dataclass
class Child:
    pid: int
    role: ProcessRole
    name: str
    logs: LogPipe


class Children:
    def __init__(self) -> None:
        self._table: dict[int, Child] = {}
        self._early: dict[int, Status] = {}

    def pids(self) -> list[int]:
        """The watched pids, in the order they were started."""
        return list(self._table)

    def watch(self, child: Child) -> Status | None:
        """Watch ``child``; the exit already reported for it, if there was one."""
        self._table[child.pid] = child
        return self._early.pop(child.pid, None)

    def exited(self, pid: int, status: Status) -> Child | None:
        """The child that ended; None (the exit kept for later) if it is not watched yet."""
        child = self._table.pop(pid, None)
        if child is None:
            self._early[pid] = status
        return child

    def forget_early(self, pid: int) -> None:
        self._early.pop(pid, None)
