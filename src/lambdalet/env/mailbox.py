"""One participant's pending ``next``: the long poll of the in-sandbox APIs.

An item put in while the participant waits in ``next`` is handed to that call;
otherwise it is kept for its next call.  Used for the runtime's events and for
each extension's events alike.
"""

from __future__ import annotations

import asyncio
from typing import Generic, TypeVar

T = TypeVar("T")


class Mailbox(Generic[T]):
    def __init__(self) -> None:
        self._waiter: asyncio.Future[T] | None = None
        self._kept: T | None = None

    @property
    def kept(self) -> T | None:
        """The item waiting for the next call, if any."""
        return self._kept

    def put(self, item: T) -> bool:
        """Hand ``item`` to the waiting call (True), or keep it for the next one (False)."""
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            self._waiter = None
            waiter.set_result(item)
            return True
        self._kept = item
        return False

    def take_kept(self) -> T | None:
        item, self._kept = self._kept, None
        return item

    async def wait(self) -> T:
        """Wait for the next item; a newer call replaces (cancels) an older one."""
        if self._waiter is not None and not self._waiter.done():
            self._waiter.cancel()
        waiter: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._waiter = waiter
        try:
            return await waiter
        finally:
            if self._waiter is waiter:
                self._waiter = None

    def cancel(self) -> None:
        """Fail the waiting call (the participant is going away) and forget kept items."""
        if self._waiter is not None and not self._waiter.done():
            self._waiter.cancel()
        self._waiter = None
        self._kept = None
