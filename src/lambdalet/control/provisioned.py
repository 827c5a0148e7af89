"""Provisioned concurrency: configs in the store, environments in the pool, status here.

A config (function + version or alias) asks for N environments initialized ahead of
time.  Its status is ``IN_PROGRESS`` while they start, then ``READY``, or ``FAILED``
with a reason when some could not be initialized.  Configs outlive restarts: the
server provisions them again when it starts (``restore``).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from lambdalet.control.concurrency import ConcurrencyLimits
from lambdalet.errors import LambdaApiError
from lambdalet.model import FunctionRecord, Invoker
from lambdalet.store import Store

log = logging.getLogger(__name__)

IN_PROGRESS = "IN_PROGRESS"
READY = "READY"
FAILED = "FAILED"


@dataclass(frozen=True)
class ProvisionedStatus:
    requested: int
    allocated: int
    status: str
    reason: str | None = None


def config_key(name: str, qualifier: str) -> str:
    return f"{name}:{qualifier}"


class Provisioner:
    def __init__(self, store: Store, invoker: Invoker, limits: ConcurrencyLimits) -> None:
        self._store = store
        self._invoker = invoker
        self._limits = limits
        self._status: dict[str, ProvisionedStatus] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}

    def __repr__(self) -> str:
        return f"Provisioner({self._status!r})"

    def status(self, name: str, qualifier: str, requested: int) -> ProvisionedStatus:
        found = self._status.get(config_key(name, qualifier))
        if found is None or found.requested != requested:
            return ProvisionedStatus(requested, 0, IN_PROGRESS)
        return found

    def apply(self, name: str, qualifier: str, function: FunctionRecord, requested: int) -> None:
        """Start (or resize) the environments of a config in the background."""
        key = config_key(name, qualifier)
        self._limits.set_provisioned(name, key, requested)
        self._status[key] = ProvisionedStatus(requested, 0, IN_PROGRESS)
        previous = self._tasks.pop(key, None)
        if previous is not None:
            previous.cancel()
        task = asyncio.get_running_loop().create_task(
            self._provision(key, function, requested), name=f"provision {key}"
        )
        self._tasks[key] = task
        task.add_done_callback(
            lambda t: self._tasks.pop(key, None) if self._tasks.get(key) is t else None
        )

    async def _provision(self, key: str, function: FunctionRecord, requested: int) -> None:
        try:
            result = await self._invoker.provision(key, function, requested)
        except (LambdaApiError, OSError, RuntimeError) as e:
            log.error("provisioning %s failed: %s", key, e)
            self._status[key] = ProvisionedStatus(requested, 0, FAILED, str(e))
            return
        if result.failure is None and result.ready >= requested:
            self._status[key] = ProvisionedStatus(requested, result.ready, READY)
        else:
            reason = result.failure or "Not every environment could be initialized."
            self._status[key] = ProvisionedStatus(requested, result.ready, FAILED, reason)

    async def remove(self, name: str, qualifier: str) -> None:
        key = config_key(name, qualifier)
        self._limits.set_provisioned(name, key, None)
        self._status.pop(key, None)
        task = self._tasks.pop(key, None)
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        await self._invoker.unprovision(key)

    async def forget_function(self, name: str) -> None:
        """The function is deleted: its configs are gone from the store already."""
        for key in [k for k in self._status if k.rsplit(":", 1)[0] == name]:
            await self.remove(name, key.rsplit(":", 1)[1])

    def restore(self) -> None:
        """Provision every stored config again (server start)."""
        for config in self._store.list_provisioned_configs().items:
            try:
                function, _ = self._store.resolve(config.function_name, config.qualifier)
            except LambdaApiError:
                continue
            self.apply(config.function_name, config.qualifier, function, config.requested)

    async def close(self) -> None:
        tasks = list(self._tasks.values())
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._tasks.clear()
