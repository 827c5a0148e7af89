"""Event source mappings at run time: one poller per enabled mapping, and the state
transitions that follow each API change.

The API answers with the transitional state (``Creating``, ``Enabling``, ``Disabling``,
``Updating``, ``Deleting``) it wrote to the store; right after, ``settle`` restarts the
mapping's poller with the new settings and writes the state it ends in (``Enabled`` or
``Disabled``, or removes the row of a deleted mapping).  At start, ``restore`` settles what
a stopped server left in between and starts a poller for every enabled mapping, so
mappings (and the messages they read) survive restarts.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any

from lambdalet.errors import ResourceNotFoundException
from lambdalet.model import Invoker
from lambdalet.store import Store
from lambdalet.store.triggers import MappingRecord
from lambdalet.triggers.sqs_poller import SqsClientFactory, SqsPoller, default_sqs_client
from lambdalet.triggers.states import DELETING, DISABLED, ENABLED

log = logging.getLogger(__name__)


class MappingManager:
    def __init__(
        self,
        store: Store,
        invoker: Invoker,
        client_factory: SqsClientFactory = default_sqs_client,
    ) -> None:
        self.store = store
        self.invoker = invoker
        self.client_factory = client_factory
        self._pollers: dict[str, SqsPoller] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._locks: dict[str, asyncio.Lock] = {}

    def __repr__(self) -> str:
        return f"MappingManager(pollers={len(self._pollers)})"

    def restore(self) -> None:
        for mapping in self.store.list_mappings().items:
            self.settle(mapping.uuid)

    def settle(self, mapping_uuid: str) -> None:
        """Bring a mapping's poller in line with its stored settings, soon."""
        self._spawn(self._settle(mapping_uuid))

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _settle(self, mapping_uuid: str) -> None:
        lock = self._locks.setdefault(mapping_uuid, asyncio.Lock())
        async with lock:
            await asyncio.sleep(0)  # after the API's answer, which shows the transition
            old = self._pollers.pop(mapping_uuid, None)
            if old is not None:
                await old.stop()
            try:
                mapping = self.store.get_mapping(mapping_uuid)
            except ResourceNotFoundException:
                return
            if mapping.state == DELETING:
                self.store.delete_mapping(mapping_uuid)
                self._locks.pop(mapping_uuid, None)
                return
            enabled = bool(mapping.settings.get("Enabled", True))
            self.store.set_mapping_state(mapping_uuid, ENABLED if enabled else DISABLED)
            if enabled:
                self._start(mapping)

    def _start(self, mapping: MappingRecord) -> None:
        poller = SqsPoller(mapping, self.store, self.invoker, self.client_factory)
        self._pollers[mapping.uuid] = poller
        poller.start()
        log.info(
            "polling %s for %s (mapping %s)",
            mapping.source_arn,
            mapping.function_name,
            mapping.uuid,
        )

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        pollers = list(self._pollers.values())
        self._pollers.clear()
        await asyncio.gather(*(p.stop() for p in pollers), return_exceptions=True)
