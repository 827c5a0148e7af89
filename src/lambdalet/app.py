"""The composition root: builds every part from one config and runs the server.

Nothing else constructs the store, the sandbox backend, the pool or the HTTP
apps; everything below receives what it needs as constructor arguments.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import signal
from collections.abc import Callable
from dataclasses import dataclass

from aiohttp import web

from lambdalet.api.app import ApiParts, build_api_app
from lambdalet.api.arns import Scope
from lambdalet.api.auth import UNSIGNED_PATHS, SigV4Verifier, is_loopback
from lambdalet.api.guard import PeerCheck, sandbox_guard
from lambdalet.api.handlers import Handlers
from lambdalet.api.logs_handlers import LogsApi
from lambdalet.api.presign import MAX_TTL_S, CodeUrlSigner
from lambdalet.api.route_gateway import RouteGateway
from lambdalet.api.tasks import BackgroundTasks
from lambdalet.api.trigger_handlers import TriggerHandlers
from lambdalet.api.url_gateway import UrlGateway
from lambdalet.clock import Clock, SystemClock
from lambdalet.config import ServerConfig
from lambdalet.control.admin import RecentInvocations, build_admin_app
from lambdalet.control.async_queue import AsyncQueue, RetryPolicy
from lambdalet.control.concurrency import ConcurrencyLimits
from lambdalet.control.invoker import PoolInvoker
from lambdalet.control.launcher import RuntimeLauncher
from lambdalet.control.metrics import Metrics, metrics_handler
from lambdalet.control.pool import Pool, PoolSettings
from lambdalet.control.provisioned import Provisioner
from lambdalet.control.stats import FunctionStats
from lambdalet.dashboard import build_dashboard_app
from lambdalet.env.environment import EnvSettings
from lambdalet.env.log_files import LogLimits, logged_functions, remove_logs
from lambdalet.env.observer import FanOut
from lambdalet.images.cache import ImageCache
from lambdalet.images.service import cache_for
from lambdalet.images.upload import upload_handler
from lambdalet.model import Invoker
from lambdalet.runtimes.python import fallback_notice, fallback_problem
from lambdalet.sandbox import peers
from lambdalet.sandbox.base import SandboxBackend
from lambdalet.sandbox.detect import choose_backend
from lambdalet.store.disk import secure
from lambdalet.store.sqlite import Store
from lambdalet.store.test_events import TestEvents
from lambdalet.triggers.mappings import MappingManager
from lambdalet.triggers.schedules import Region, ScheduleRunner
from lambdalet.triggers.sqs_poller import SqsClientFactory, default_sqs_client

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


def pool_settings(config: ServerConfig) -> PoolSettings:
    """What every pool (the single process's, a cluster worker's) is told by the config."""
    return PoolSettings(
        idle_timeout_s=config.idle_timeout_s,
        account_concurrency=config.account_concurrency,
        env=EnvSettings(
            init_timeout_s=config.init_timeout_s,
            bill_init=config.bill_init,
            freeze_delay_s=config.freeze_delay_s,
            lean_runtime_api=config.lean_runtime_api,
        ),
        log_limits=LogLimits(config.log_max_bytes, config.log_backups),
    )


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
        settings=pool_settings(config),
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
    api = build_api(
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


def _never(peer: tuple[str, int], local: tuple[str, int]) -> bool:
    return False


def _default_peer_check() -> PeerCheck:
    """Socket-owner lookups where the kernel answers them (Linux); else none, said once."""
    problem = peers.usable()
    if problem is None:
        return peers.from_sandbox
    log.warning("%s: requests from sandboxes cannot be told apart", problem)
    return _never


def build_api(
    config: ServerConfig,
    store: Store,
    invoker: Invoker,
    *,
    settle_delay_s: float = 0.0,
    limits: ConcurrencyLimits | None = None,
    clock: Clock | None = None,
    is_sandbox: PeerCheck | None = None,
    signer: CodeUrlSigner | None = None,
    sqs_client_factory: SqsClientFactory | None = None,
    images: ImageCache | None = None,
) -> web.Application:
    """The Lambda API over ``store`` and ``invoker``, with the asynchronous-invocation queue
    and the provisioned-concurrency manager it owns (started and stopped with the app).

    ``settle_delay_s``: how long after a create/update the function stays Pending/InProgress
    (0: settled right after the response; tests raise it to observe the transient states).
    ``limits``: the concurrency accounting shared with the pool (a fresh one if omitted).
    ``is_sandbox``: tells connections made from inside a sandbox (refused unless signed;
    by default :func:`lambdalet.sandbox.peers.from_sandbox`).
    ``signer``: signs the code-download URLs (a fresh secret if omitted).
    ``sqs_client_factory``: how event source mappings get an SQS client for a region (boto3's,
    from the standard SDK configuration, if omitted).
    """
    clock = clock or SystemClock()
    limits = limits or ConcurrencyLimits(config.account_concurrency)
    for name, value in store.all_reserved_concurrency().items():
        limits.set_reserved(name, value)
    queue = AsyncQueue(
        store,
        invoker,
        limits,
        clock,
        RetryPolicy(scale=config.async_delay_scale),
        max_in_flight=config.async_workers,
    )
    provisioner = Provisioner(store, invoker, limits)
    auth = SigV4Verifier(config, clock) if config.credentials else None
    guard = sandbox_guard(
        is_sandbox if is_sandbox is not None else _default_peer_check(),
        signed_api=auth is not None,
        open_prefixes=UNSIGNED_PATHS,
    )
    scope = Scope(config.region, config.account_id)
    route_gateway = RouteGateway(scope, store, invoker, clock)
    tasks = BackgroundTasks()
    mappings = MappingManager(store, invoker, sqs_client_factory or default_sqs_client)
    schedules = ScheduleRunner(store, queue.submit, clock, Region(config.region, config.account_id))
    handlers = Handlers(
        scope,
        store,
        invoker,
        tasks,
        settle_delay_s,
        queue=queue,
        limits=limits,
        provisioner=provisioner,
        signer=signer or CodeUrlSigner(clock, ttl_s=config.code_url_ttl_s),
        images=images if images is not None else cache_for(config),
        runtime_problem=functools.partial(fallback_problem, policy=config.python_fallback),
        runtime_note=functools.partial(fallback_notice, policy=config.python_fallback),
    )
    return build_api_app(
        ApiParts(
            handlers=handlers,
            triggers=TriggerHandlers(scope, store, clock, mappings, schedules, route_gateway),
            logs=LogsApi(store, config.logs_dir, config.region, config.account_id),
            tasks=tasks,
            url_gateway=UrlGateway(scope, store, invoker, clock, auth),
            route_gateway=route_gateway,
            guard=guard,
            auth=auth,
            queue=queue,
            provisioner=provisioner,
            mappings=mappings,
            schedules=schedules,
        )
    )


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
    from lambdalet.cluster.compose import ClusterNode, build_cluster_node  # imports this module

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
        if isinstance(platform, ClusterNode):
            await platform.drain()  # replicas stop routing here before the listener closes
        await runner.cleanup()
        await platform.close()
        log.info("stopped")
