"""Builds a cluster node from one config: an API replica, a worker, or both
(``ServerConfig.cluster_role``).  The single-process composition (``app.build_platform``)
is untouched; this is its counterpart when ``--database`` names a PostgreSQL.

* API replica: the Lambda API over the shared store, invokes through ``RoutingInvoker``;
  async events are only enqueued here (workers claim and run them).
* worker: today's pool, launcher and sandboxes over the shared store, the internal invoke
  endpoint, heartbeats, and a dispatcher that claims async events.
* both: one process, one port; the local pool serves what it holds idle without a hop.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from lambdalet.app import build_api, pool_settings
from lambdalet.clock import SystemClock
from lambdalet.cluster.grants import SharedLimits, forget_dead_leases
from lambdalet.cluster.membership import ALIVE, Load, Membership, idle_key, list_workers
from lambdalet.cluster.routing import REFRESH_S, RoutingInvoker
from lambdalet.cluster.worker_api import health_routes, internal_routes
from lambdalet.config import ServerConfig
from lambdalet.control.admin import RecentInvocations, build_admin_app, describe_environment
from lambdalet.control.async_queue import AsyncQueue, RetryPolicy
from lambdalet.control.invoker import PoolInvoker
from lambdalet.control.launcher import RuntimeLauncher
from lambdalet.control.metrics import Metrics, metrics_handler
from lambdalet.control.pool import Pool
from lambdalet.control.stats import FunctionStats
from lambdalet.dashboard import build_dashboard_app
from lambdalet.env.environment import Environment
from lambdalet.env.observer import FanOut
from lambdalet.images.service import cache_for
from lambdalet.sandbox.base import SandboxBackend
from lambdalet.sandbox.detect import choose_backend
from lambdalet.store import Store
from lambdalet.store.connection import Connection
from lambdalet.store.disk import secure

log = logging.getLogger(__name__)

API = "api"
WORKER = "worker"
BOTH = "both"


def cluster_token(db: Connection) -> str:
    """The shared secret of the cluster's internal endpoints (made by the first node)."""
    db.execute(
        "INSERT INTO cluster_secret (id, token) VALUES (1, ?) ON CONFLICT (id) DO NOTHING",
        (secrets.token_urlsafe(32),),
    )
    (token,) = db.execute("SELECT token FROM cluster_secret WHERE id = 1").fetchone()
    return str(token)


def host_memory_mb() -> int:
    """MemAvailable of /proc/meminfo (what a worker offers when not told)."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) // 1024
    except OSError:
        pass
    return 4096


@dataclass
class _Worker:
    backend: SandboxBackend
    pool: Pool
    membership: Membership
    invoker: PoolInvoker
    metrics: Metrics
    recent: RecentInvocations
    stats: FunctionStats


@dataclass
class ClusterNode:
    """What ``app.serve`` runs: ``api`` on config.host:port; ``close`` on the way out."""

    config: ServerConfig
    store: Store
    api: web.Application
    worker: _Worker | None = None
    routing: RoutingInvoker | None = None
    queue: AsyncQueue | None = None
    _closed: bool = field(default=False)

    async def drain(self) -> None:
        """A worker leaving: marked draining (no new routes or claims), then a pause long
        enough for every replica to re-read the workers; what runs finishes meanwhile."""
        if self.worker is None or self.worker.membership.state != ALIVE:
            return
        try:
            self.worker.membership.drain()
        except Exception as e:  # the database is unreachable: the others time us out
            log.warning("could not mark this worker draining: %s", e)
            return
        await asyncio.sleep(2 * REFRESH_S)

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self.queue is not None:
            await self.queue.close()
        if self.routing is not None:
            await self.routing.close()
        if self.worker is not None:
            await self.worker.pool.close()
            await self.worker.backend.close()
            await self.worker.membership.leave()
        await self.store.settle_collection()
        self.store.close()


def _load(pool: Pool) -> Load:
    envs = list(pool.environments())
    return Load(
        environments=len(envs),
        busy=pool.busy,
        used_mb=sum(e.function.memory_mb for e in envs),
        idle={idle_key(*k): n for k, n in pool.idle_counts().items()},
    )


async def _build_worker(config: ServerConfig, store: Store) -> _Worker:
    clock = SystemClock()
    backend = await choose_backend(config)
    launcher = RuntimeLauncher(config, cache_for(config))
    try:
        await launcher.prime_spares(backend)
    except Exception as e:  # an optimisation: never a reason not to serve
        log.warning("could not prepare the spare sandboxes' runtime: %s", e)
    total = config.worker_memory_mb or host_memory_mb()
    address = f"{config.host}:{config.port}"
    membership = Membership(store.db, address, total, lambda: _load(pool))
    limits = SharedLimits(store.db, membership.worker_id, config.account_concurrency)
    pool = Pool(
        backend=backend,
        launcher=launcher,
        clock=clock,
        limits=limits,
        logs_dir=config.logs_dir,
        settings=pool_settings(config),
    )
    for name, value in store.all_reserved_concurrency().items():
        pool.limits.set_reserved(name, value)
    store.code_in_use = pool.code_in_use
    pool.on_env_gone = store.environment_gone
    metrics = Metrics(pool.environments)
    recent = RecentInvocations()
    stats = FunctionStats()
    observer = FanOut(metrics, recent, stats)
    pool.observer = observer
    store.claimer = membership.register()
    forget_dead_leases(store.db)

    def new_epoch(claimer: object) -> None:
        store.claimer = membership.claimer

    membership.on_new_epoch = new_epoch
    return _Worker(backend, pool, membership, PoolInvoker(pool, observer), metrics, recent, stats)


async def build_cluster_node(config: ServerConfig) -> ClusterNode:
    assert config.database_url is not None
    secure(config.data_dir, config.db_path, config.logs_dir)
    store = Store(config, SystemClock())
    token = cluster_token(store.db)
    role = config.cluster_role
    worker = await _build_worker(config, store) if role in (WORKER, BOTH) else None
    node: ClusterNode
    if role == WORKER:
        assert worker is not None
        app = web.Application(client_max_size=8 * 1024 * 1024)
        queue = AsyncQueue(
            store,
            worker.invoker,
            worker.pool.limits,
            SystemClock(),
            RetryPolicy(scale=config.async_delay_scale),
            max_in_flight=config.async_workers,
        )
        node = ClusterNode(config, store, app, worker=worker, queue=queue)

        async def start(_: web.Application) -> None:
            queue.start()

        app.on_startup.append(start)
    else:
        routing = RoutingInvoker(
            store.db,
            token,
            local=None if worker is None else worker.invoker,
            local_id=None if worker is None else worker.membership.worker_id,
            local_idle=None if worker is None else _idle_check(worker.pool),
        )
        app = build_api(
            config,
            store,
            routing,
            limits=None if worker is None else worker.pool.limits,
            images=cache_for(config),
        )
        node = ClusterNode(config, store, app, worker=worker, routing=routing)

        async def start_routes(_: web.Application) -> None:
            routing.start()

        app.on_startup.append(start_routes)

        async def workers(_: web.Request) -> web.Response:
            rows = list_workers(store.db)
            return web.json_response({"Workers": [w.admin_json() for w in rows]})

        async def environments(_: web.Request) -> web.Response:
            return web.json_response(await routing.environments())

        app.router.add_get("/lambdalet/admin/workers", workers)
        app.router.add_get("/lambdalet/admin/environments", environments)
        app.add_subapp("/lambdalet/dashboard/", build_dashboard_app())  # its Workers panel
    if worker is not None:
        membership = worker.membership
        app.add_routes(
            internal_routes(
                store,
                worker.invoker,
                token,
                lambda: membership.state == ALIVE,
                lambda: _environments(worker),
            )
        )
        app.add_routes(health_routes(lambda: _db_ok(store.db) and membership.alive()))
        app.router.add_get("/metrics", metrics_handler(worker.metrics))
        if role == BOTH:
            app.add_subapp(
                "/lambdalet/admin/",
                build_admin_app(worker.pool, worker.backend, worker.recent, worker.stats),
            )

        async def beat(_: web.Application) -> None:
            membership.start()

        app.on_startup.append(beat)
        log.info("cluster worker %s (pid %d)", membership.worker_id, os.getpid())
    else:
        app.add_routes(health_routes(lambda: _db_ok(store.db)))
        app.router.add_get("/metrics", metrics_handler(Metrics(tuple[Environment, ...])))
    return node


def _environments(worker: _Worker) -> dict[str, Any]:
    """This worker's environments as the admin API lists them, each naming the worker."""
    now = time.time()
    me = worker.membership.worker_id
    pool = worker.pool
    return {
        "Environments": [
            describe_environment(e, now) | {"Worker": me} for e in pool.environments()
        ],
        "Ended": [describe_environment(e, now) | {"Worker": me} for e in pool.ended],
    }


def _idle_check(pool: Pool) -> Callable[[str], bool]:
    def has_idle(key: str) -> bool:
        return any(idle_key(*k) == key for k in pool.idle_counts())

    return has_idle


def _db_ok(db: Connection) -> bool:
    db.execute("SELECT 1")
    return True
