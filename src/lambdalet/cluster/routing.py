"""``RoutingInvoker``: the ``model.Invoker`` of an API replica.  It runs an invoke on a
worker: one with an idle environment of that exact version if the heartbeats say so, else
the one with the most free memory and the fewest busy environments.  A co-located worker
(``serve --database --worker``) with an idle environment serves it without a hop.

Failures: a worker that refuses the connection, or answers ``X-Lambdalet-Retry: next``,
did not run the function: the next worker is tried.  A connection lost once the request
was sent may have run it: the caller gets a ``ServiceException`` naming the worker (as
Lambda's own 500), and the worker is *suspect*, skipped for ``SUSPECT_S`` or until a
heartbeat shows it alive again after a restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

import aiohttp

from lambdalet.cluster import protocol
from lambdalet.cluster.membership import ALIVE, WorkerInfo, idle_key, list_workers, mark_dead
from lambdalet.errors import ServiceException
from lambdalet.model import FunctionRecord, InvokeInput, InvokeOutput, Invoker, ProvisionResult
from lambdalet.store.connection import Connection

log = logging.getLogger(__name__)

#: how often the replica re-reads the workers (membership, load, idle hints)
REFRESH_S = 0.25
#: a worker whose connection broke is skipped this long
SUSPECT_S = 5.0
NO_WORKER = "No worker is available to run the function: every worker is dead or draining."


class RoutingInvoker:
    """Implements ``model.Invoker`` by forwarding to workers."""

    def __init__(
        self,
        db: Connection,
        token: str,
        *,
        local: Invoker | None = None,
        local_id: str | None = None,
        local_idle: Callable[[str], bool] | None = None,
    ) -> None:
        self._db = db
        self._token = token
        self._local = local
        self._local_id = local_id
        self._local_idle = local_idle
        self._workers: list[WorkerInfo] = []
        self._suspect: dict[str, tuple[float, int]] = {}  # id -> (until, epoch)
        self._session: aiohttp.ClientSession | None = None
        self._task: asyncio.Task[None] | None = None
        self._load: dict[str, int] = {}  # id -> invokes this replica has in flight there

    def __repr__(self) -> str:
        return f"RoutingInvoker(workers={len(self._workers)})"

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        self.refresh()
        self._task = asyncio.get_running_loop().create_task(self._refresh_loop(), name="routes")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self._session is not None:
            await self._session.close()

    def refresh(self) -> None:
        mark_dead(self._db)
        self._workers = list_workers(self._db, include_dead=False)

    async def _refresh_loop(self) -> None:
        while True:
            await asyncio.sleep(REFRESH_S)
            try:
                self.refresh()
            except Exception as e:
                log.warning("reading the workers: %s", e)

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=2.0),
                connector=aiohttp.TCPConnector(limit=0),
            )
        return self._session

    # ------------------------------------------------------------------ placement

    def candidates(self, fn: FunctionRecord) -> list[WorkerInfo]:
        """Alive, unsuspected workers, best first: an idle environment of this version,
        then most free memory, then fewest busy."""
        now = time.monotonic()
        key = idle_key(fn.name, fn.version, fn.revision_id)
        usable = []
        for w in self._workers:
            if w.state != ALIVE:
                continue
            suspect = self._suspect.get(w.id)
            if suspect is not None and suspect[0] > now and suspect[1] == w.epoch:
                continue
            usable.append(w)

        def rank(w: WorkerInfo) -> tuple[int, int, int]:
            load = w.busy + self._load.get(w.id, 0)
            return (0 if w.idle.get(key) else 1, -(w.free_mb - fn.memory_mb * load), load)

        return sorted(usable, key=rank)

    # ------------------------------------------------------------------ model.Invoker

    async def invoke(self, request: InvokeInput) -> InvokeOutput:
        fn = request.function
        if (
            self._local is not None
            and self._local_idle is not None
            and self._local_idle(idle_key(fn.name, fn.version, fn.revision_id))
        ):
            return await self._local.invoke(request)
        tried: list[str] = []
        for worker in self.candidates(fn):
            if worker.id == self._local_id and self._local is not None:
                return await self._local.invoke(request)
            tried.append(worker.id)
            output = await self._forward(worker, request)
            if output is not None:
                return output
        if tried:
            raise ServiceException(f"No worker could run the function (tried {', '.join(tried)}).")
        raise ServiceException(NO_WORKER)

    async def _forward(self, worker: WorkerInfo, request: InvokeInput) -> InvokeOutput | None:
        """The outcome, or None when the worker provably did not run it."""
        url = f"http://{worker.address}{protocol.INVOKE_PATH}"
        self._load[worker.id] = self._load.get(worker.id, 0) + 1
        try:
            async with self._http().post(
                url, data=request.payload, headers=protocol.request_headers(request, self._token)
            ) as resp:
                body = await resp.read()
                if resp.status == 200:
                    return protocol.parse_output(resp.headers, body)
                if resp.headers.get(protocol.RETRY_HEADER) == "next":
                    return None
                raise protocol.parse_error(resp.headers.get("X-Amzn-ErrorType", ""), body)
        except aiohttp.ClientConnectorError as e:  # never connected: it did not run
            log.warning("worker %s at %s refused: %s", worker.id, worker.address, e)
            self._suspect[worker.id] = (time.monotonic() + SUSPECT_S, worker.epoch)
            return None
        except (TimeoutError, aiohttp.ClientError) as e:
            self._suspect[worker.id] = (time.monotonic() + SUSPECT_S, worker.epoch)
            log.warning("worker %s at %s failed mid-invoke: %r", worker.id, worker.address, e)
            raise ServiceException(
                f"The worker {worker.id} ({worker.address}) running the invocation failed "
                f"before it answered ({type(e).__name__}); the invocation may or may not "
                "have run."
            ) from e
        finally:
            left = self._load.get(worker.id, 1) - 1
            if left:
                self._load[worker.id] = left
            else:
                self._load.pop(worker.id, None)

    async def retire(self, function_name: str, version: str | None = None) -> None:
        """Every worker retires the function's environments (best effort: a worker that
        misses it still retires superseded revisions, they never match a new record)."""
        if self._local is not None:
            await self._local.retire(function_name, version)
        params = {"name": function_name} | ({} if version is None else {"version": version})
        for w in self._workers:
            if w.id == self._local_id:
                continue
            with contextlib.suppress(aiohttp.ClientError, asyncio.TimeoutError):
                async with self._http().post(
                    f"http://{w.address}{protocol.RETIRE_PATH}",
                    params=params,
                    headers={protocol.TOKEN_HEADER: self._token},
                    timeout=aiohttp.ClientTimeout(total=5.0),
                ):
                    pass

    async def provision(
        self, config_key: str, function: FunctionRecord, count: int
    ) -> ProvisionResult:
        if self._local is not None:
            return await self._local.provision(config_key, function, count)
        return ProvisionResult(
            0, "Provisioned concurrency needs a worker in this process (serve --worker)."
        )

    async def unprovision(self, config_key: str) -> None:
        if self._local is not None:
            await self._local.unprovision(config_key)
