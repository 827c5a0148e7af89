"""The composition root: builds every part from one config and runs the server.

Nothing else constructs the store, the sandbox backend, the pool or the HTTP
apps; everything below receives what it needs as constructor arguments.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Callable
from dataclasses import dataclass

from aiohttp import web

from lambdalet.api.app import build_api_app
from lambdalet.api.auth import is_loopback
from lambdalet.api.presign import MAX_TTL_S
from lambdalet.clock import SystemClock
from lambdalet.cluster.compose import ClusterNode, build_cluster_node
from lambdalet.config import ServerConfig
from lambdalet.control.admin import RecentInvocations, build_admin_app
from lambdalet.control.invoker import PoolInvoker
from lambdalet.control.launcher import RuntimeLauncher
from lambdalet.control.metrics import Metrics, metrics_handler
from lambdalet.control.pool import Pool, PoolSettings
from lambdalet.control.stats import FunctionStats
from lambdalet.dashboard import build_dashboard_app
from lambdalet.env.environment import EnvSettings
from lambdalet.env.log_files import LogLimits, logged_functions, remove_logs
from lambdalet.env.observer import FanOut
from lambdalet.images.service import cache_for
from lambdalet.images.upload import upload_handler
from lambdalet.sandbox.base import SandboxBackend
from lambdalet.sandbox.detect import choose_backend
from lambdalet.store.disk import secure
from lambdalet.store.sqlite import Store
from lambdalet.store.test_events import TestEvents

log = logging.getLogger("lambdalet")


@dataclass
class Platform:
    """Every long-lived part of a running server."""

    config: ServerConfig
    store: Store
    backend: SandboxBackend
    pool: Pool
    api: web.Application

    async def close(self) -> None:
        await self.pool.close()
        await self.backend.close()
        await self.store.settle_collection()
        self.store.close()


async def build_platform(config: ServerConfig) -> Platform:
    secure(config.data_dir, config.db_path, config.logs_dir)
    clock = SystemClock()
    backend = await choose_backend(config)
    info = backend.info()
    log.info(
        "sandbox backend: %s (isolation %s, cgroup %s, network %s)",
        info.backend,
        info.isolation,
        info.cgroup,
        info.network,
    )
    for warning in info.warnings:
        log.warning("%s", warning)
    store = Store(config, clock)
    image_cache = cache_for(config)
    launcher = RuntimeLauncher(config, image_cache)
    try:
        # spares pre-start the host Python's runtime from the start, not only once a
        # first function taught them: the first cold start is as fast as the later ones
        await launcher.prime_spares(backend)
    except Exception as e:  # an optimisation: never a reason not to serve
        log.warning("could not prepare the spare sandboxes' runtime: %s", e)
    pool = Pool(
        backend=backend,
        launcher=launcher,
        clock=clock,
        logs_dir=config.logs_dir,
        settings=PoolSettings(
            idle_timeout_s=config.idle_timeout_s,
            account_concurrency=config.account_concurrency,
            env=EnvSettings(
                init_timeout_s=config.init_timeout_s,
                bill_init=config.bill_init,
                freeze_delay_s=config.freeze_delay_s,
            ),
            log_limits=LogLimits(config.log_max_bytes, config.log_backups),
        ),
    )
    # code no version refers to goes, once no environment runs from it
    store.code_in_use = pool.code_in_use
    pool.on_env_gone = store.environment_gone
    store.collect_code()
    # logs go with their function (DeleteFunction); these are from deletes of earlier runs
    for name in logged_functions(config.logs_dir) - store.function_names():
        remove_logs(config.logs_dir, name)
    metrics = Metrics(pool.environments)
    recent = RecentInvocations()
    stats = FunctionStats()
    observer = FanOut(metrics, recent, stats)
    pool.observer = observer
    api = build_api_app(
        config,
        store,
        PoolInvoker(pool, observer),
        limits=pool.limits,
        clock=clock,
        images=image_cache,
    )
    admin = build_admin_app(
        pool,
        backend,
        recent,
        stats,
        TestEvents(config.data_dir / "test-events"),
        launcher.progress,
    )
    admin.router.add_post("/images", upload_handler(image_cache))
    api.add_subapp("/lambdalet/admin", admin)
    api.add_subapp("/lambdalet/dashboard/", build_dashboard_app())
    api.router.add_get("/metrics", metrics_handler(metrics))
    return Platform(config, store, backend, pool, api)


class ConfigError(Exception):
    """The configuration cannot be served safely (the CLI prints it and exits)."""


def check_config(config: ServerConfig) -> None:
    if not 0 < config.code_url_ttl_s <= MAX_TTL_S:
        raise ConfigError(f"--code-url-ttl must be between 1 and {MAX_TTL_S} seconds")
    if not is_loopback(config.host) and not config.credentials:
        raise ConfigError(
            f"refusing to listen on {config.host}: beyond loopback the API requires SigV4 "
            "signatures, and no credentials are configured (set LAMBDALET_ACCESS_KEY_ID and "
            "LAMBDALET_SECRET_ACCESS_KEY, or --credentials-file)"
        )


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's event loop when it is installed (it is a dependency on Linux).

    Every invoke crosses the event loop three times (the API request, the runtime's
    ``next`` answer, its response POST); uvloop's libuv loop and transports cut the
    per-hop cost measurably (docs/performance.md).
    """
    try:
        import uvloop
    except ImportError:  # pragma: no cover - non-Linux or a trimmed install
        return None
    return uvloop.new_event_loop


def run_server(config: ServerConfig) -> None:
    """Run :func:`serve` on the fastest event loop available."""
    with asyncio.Runner(loop_factory=_loop_factory()) as runner:
        runner.run(serve(config))


async def serve(config: ServerConfig, ready: asyncio.Event | None = None) -> None:
    """Run until SIGTERM or SIGINT, then shut every environment down and exit."""
    check_config(config)
    platform: Platform | ClusterNode
    if config.database_url is None:
        platform = await build_platform(config)
    else:  # cluster mode: an API replica, a worker or both (cluster/compose.py)
        platform = await build_cluster_node(config)
    runner = web.AppRunner(platform.api, access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    site = web.TCPSite(runner, config.host, config.port, reuse_address=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await site.start()
        log.info("lambdalet listening on http://%s:%d", config.host, config.port)
        if ready is not None:
            ready.set()
        await stop.wait()
        log.info("shutting down")
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(Exception):
                loop.remove_signal_handler(sig)
        await runner.cleanup()
        await platform.close()
        log.info("stopped")
