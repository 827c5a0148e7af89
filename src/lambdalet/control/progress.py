"""Long work in progress (a runtime's first install, a debugger install), for the operator.

The server log says when each starts and ends; ``GET /lambdalet/admin/progress`` lists
what runs now, which ``lambdalet invoke`` prints while it waits.
"""

from __future__ import annotations

import contextlib
import itertools
import time
from collections.abc import AsyncIterator
from typing import Any


class Progress:
    def __init__(self) -> None:
        self._running: dict[int, tuple[str, float]] = {}
        self._ids = itertools.count(1)

    @contextlib.asynccontextmanager
    async def running(self, what: str) -> AsyncIterator[None]:
        key = next(self._ids)
        self._running[key] = (what, time.time())
        try:
            yield
        finally:
            del self._running[key]

    def snapshot(self) -> list[dict[str, Any]]:
        now = time.time()
        return [
            {"what": what, "seconds": round(now - since, 1)}
            for what, since in self._running.values()
        ]
