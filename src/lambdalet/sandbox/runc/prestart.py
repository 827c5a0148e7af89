"""The one pre-started runtime a runc sandbox may hold (see ``base.PRESTART_FILE``).

It was started before the function was known and waits on its fd 3; activating it
writes what it is to become (argv, environment, cwd) there.
"""

from __future__ import annotations

import marshal
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Prestarted:
    pid: int
    ctl: int  # write end of its fd 3
    out: int  # read end of its stdout+stderr


class PrestartSlot:
    """Holds at most one waiting pre-started runtime, and remembers the dropped ones."""

    def __init__(self) -> None:
        self.waiting: Prestarted | None = None
        self._dropped: set[int] = set()

    def __bool__(self) -> bool:
        return self.waiting is not None

    def holds(self, pid: int) -> bool:
        return self.waiting is not None and self.waiting.pid == pid

    def hold(self, started: Prestarted) -> None:
        assert self.waiting is None
        self.waiting = started

    def activate(self, argv: Sequence[str], env: Mapping[str, str], cwd: str) -> Prestarted:
        """Tell the waiting runtime what to become; the caller watches it from now on."""
        assert self.waiting is not None
        started, self.waiting = self.waiting, None
        try:
            data = marshal.dumps((list(argv), dict(env), cwd))
            os.write(started.ctl, data)  # small: fits in the pipe
        except OSError:
            pass  # it died meanwhile: its exit is reported as the runtime's
        finally:
            os.close(started.ctl)
        return started

    def drop(self) -> int | None:
        """Let go of the waiting runtime (it exited, or the sandbox goes); its pid."""
        if self.waiting is None:
            return None
        started, self.waiting = self.waiting, None
        os.close(started.ctl)
        os.close(started.out)
        self._dropped.add(started.pid)
        return started.pid

    def was_dropped(self, pid: int) -> bool:
        """True (once) when ``pid`` is a runtime dropped earlier."""
        if pid in self._dropped:
            self._dropped.discard(pid)
            return True
        return False
