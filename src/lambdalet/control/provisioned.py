"""Provisioned concurrency: configs in the store, environments in the pool, status here.

A config (function + version or alias) asks for N environments initialized ahead of
time.  Its status is ``IN_PROGRESS`` while they start, then ``READY``, or ``FAILED``
with a reason when some could not be initialized.  Configs outlive restarts: the
server provisions them again when it starts (``restore``).

On an alias with weighted routing the environments are split across its versions by
weight, as Lambda does (``split_by_weight``): each version's share is a separate group
of environments in the pool, under the config key plus ``@<version>``.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass

from lambdalet.control.concurrency import ConcurrencyLimits
from lambdalet.errors import LambdaApiError
from lambdalet.model import FunctionRecord, Invoker, ProvisionResult
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


def part_key(key: str, version: str) -> str:
    """The pool's key for one version's share of a config."""
    return f"{key}@{version}"


def split_by_weight(requested: int, primary: str, weights: Mapping[str, float]) -> dict[str, int]:
    """How many of ``requested`` environments each version of an alias gets.

    ``weights`` are the alias's AdditionalVersionWeights; the primary version has the
    rest.  Whole environments by the largest remainder (ties: the primary version, then
    the lower version number); versions whose share is 0 are left out.
    """
    shares = {primary: max(0.0, 1.0 - sum(weights.values())), **weights}
    exact = {v: requested * w for v, w in shares.items()}
    counts = {v: math.floor(x + 1e-9) for v, x in exact.items()}
    order = sorted(
        shares,
        key=lambda v: (-(exact[v] - counts[v]), v != primary, int(v) if v.isdigit() else 0),
    )
    for v in order[: requested - sum(counts.values())]:
        counts[v] += 1
    return {v: n for v, n in counts.items() if n > 0}


class Provisioner:
    def __init__(self, store: Store, invoker: Invoker, limits: ConcurrencyLimits) -> None:
        self._store = store
        self._invoker = invoker
        self._limits = limits
        self._status: dict[str, ProvisionedStatus] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        #: config key → the pool keys of its per-version parts (until unprovisioned)
        self._parts: dict[str, set[str]] = {}

    def __repr__(self) -> str:
        return f"Provisioner({self._status!r})"

    def status(self, name: str, qualifier: str, requested: int) -> ProvisionedStatus:
        key = config_key(name, qualifier)
        found = self._status.get(key)
        if self._store.shared:  # another replica may have applied it: the database knows
            row = self._store.provisioned_status(key)
            found = None if row is None else ProvisionedStatus(*row)
        if found is None or found.requested != requested:
            return ProvisionedStatus(requested, 0, IN_PROGRESS)
        return found

    def _set_status(self, key: str, status: ProvisionedStatus) -> None:
        self._status[key] = status
        if self._store.shared:
            self._store.set_provisioned_status(
                key, status.requested, status.allocated, status.status, status.reason
            )

    def shares(self, name: str, qualifier: str, requested: int) -> dict[str, int]:
        """Environments per version for a config (one version unless a weighted alias)."""
        primary, alias = self._store.resolve(name, qualifier)
        weights = {} if alias is None else alias.weights
        return split_by_weight(requested, primary.version, weights)

    def apply(self, name: str, qualifier: str, requested: int) -> None:
        """Start (or resize) the environments of a config in the background, split across
        the versions of a weighted alias.  Raises ``LambdaApiError`` if it names nothing."""
        key = config_key(name, qualifier)
        parts = {
            part_key(key, version): (self._store.get_function(name, version), count)
            for version, count in self.shares(name, qualifier, requested).items()
        }
        self._limits.set_provisioned(name, key, requested)
        self._set_status(key, ProvisionedStatus(requested, 0, IN_PROGRESS))
        previous = self._tasks.pop(key, None)
        if previous is not None:
            previous.cancel()
        stale = self._parts.get(key, set()) - parts.keys()
        self._parts[key] = stale | parts.keys()
        task = asyncio.get_running_loop().create_task(
            self._provision(key, requested, parts, stale), name=f"provision {key}"
        )
        self._tasks[key] = task
        task.add_done_callback(
            lambda t: self._tasks.pop(key, None) if self._tasks.get(key) is t else None
        )

    async def _provision(
        self,
        key: str,
        requested: int,
        parts: Mapping[str, tuple[FunctionRecord, int]],
        stale: set[str],
    ) -> None:
        for part in sorted(stale):
            await self._invoker.unprovision(part)
            self._parts.get(key, set()).discard(part)
        outcomes = await asyncio.gather(
            *(self._invoker.provision(p, fn, n) for p, (fn, n) in parts.items()),
            return_exceptions=True,
        )
        results: list[ProvisionResult] = []
        for outcome in outcomes:
            if isinstance(outcome, LambdaApiError | OSError | RuntimeError):
                log.error("provisioning %s failed: %s", key, outcome)
                results.append(ProvisionResult(0, str(outcome)))
            elif isinstance(outcome, BaseException):
                raise outcome
            else:
                results.append(outcome)
        ready = sum(r.ready for r in results)
        failure = next((r.failure for r in results if r.failure is not None), None)
        if failure is None and ready >= requested:
            self._set_status(key, ProvisionedStatus(requested, ready, READY))
        else:
            reason = failure or "Not every environment could be initialized."
            self._set_status(key, ProvisionedStatus(requested, ready, FAILED, reason))

    async def remove(self, name: str, qualifier: str) -> None:
        key = config_key(name, qualifier)
        self._limits.set_provisioned(name, key, None)
        self._status.pop(key, None)
        task = self._tasks.pop(key, None)
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        for part in sorted(self._parts.pop(key, set())):
            await self._invoker.unprovision(part)

    async def forget_function(self, name: str) -> None:
        """The function is deleted: its configs are gone from the store already."""
        for key in [k for k in self._status if k.rsplit(":", 1)[0] == name]:
            await self.remove(name, key.rsplit(":", 1)[1])

    def restore(self) -> None:
        """Provision every stored config again (server start)."""
        for config in self._store.list_provisioned_configs().items:
            try:
                self.apply(config.function_name, config.qualifier, config.requested)
            except LambdaApiError:
                continue

    async def wait_idle(self) -> None:
        """Wait until every provisioning started so far has finished (tests use this)."""
        while self._tasks:
            await asyncio.gather(*self._tasks.values(), return_exceptions=True)

    async def close(self) -> None:
        tasks = list(self._tasks.values())
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._tasks.clear()
