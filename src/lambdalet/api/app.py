"""The Lambda API application: route table, middleware, lifecycle of background tasks."""

from __future__ import annotations

import functools
import logging
import uuid
from collections.abc import Awaitable, Callable

from aiohttp import web

from lambdalet.api import render
from lambdalet.api.arns import Scope
from lambdalet.api.auth import UNSIGNED_PATHS, SigV4Verifier
from lambdalet.api.guard import PeerCheck, sandbox_guard
from lambdalet.api.handlers import CODE_ROUTE, REQUEST_ID_KEY, Handlers
from lambdalet.api.logs_handlers import LogsApi
from lambdalet.api.presign import CodeUrlSigner
from lambdalet.api.route_gateway import RouteGateway
from lambdalet.api.tasks import BackgroundTasks
from lambdalet.api.trigger_handlers import TriggerHandlers, trigger_routes
from lambdalet.api.url_gateway import UrlGateway
from lambdalet.api.validation import MAX_ZIP_REQUEST
from lambdalet.clock import Clock, SystemClock
from lambdalet.config import ServerConfig
from lambdalet.control.async_queue import AsyncQueue, RetryPolicy
from lambdalet.control.concurrency import ConcurrencyLimits
from lambdalet.control.provisioned import Provisioner
from lambdalet.errors import (
    DiskFullException,
    LambdaApiError,
    RequestEntityTooLargeException,
    ServiceException,
    UnknownOperationException,
)
from lambdalet.images import service as image_service
from lambdalet.images.cache import ImageCache
from lambdalet.model import Invoker
from lambdalet.runtimes.python import fallback_notice, fallback_problem
from lambdalet.store import Store
from lambdalet.store.disk import is_disk_full
from lambdalet.triggers.mappings import MappingManager
from lambdalet.triggers.schedules import Region, ScheduleRunner
from lambdalet.triggers.sqs_poller import SqsClientFactory, default_sqs_client

log = logging.getLogger(__name__)

#: Room for the base64 of a 50 MB zip (and so for a 6 MB payload) plus JSON around it;
#: anything under this is answered by the operation's own limits, not by aiohttp.
CLIENT_MAX_SIZE = MAX_ZIP_REQUEST + 4 * 1024 * 1024

TASKS_KEY = web.AppKey("lambdalet_api_tasks", BackgroundTasks)
HANDLERS_KEY = web.AppKey("lambdalet_api_handlers", Handlers)
QUEUE_KEY = web.AppKey("lambdalet_async_queue", AsyncQueue)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def routes(h: Handlers) -> list[web.RouteDef]:
    """Every operation of the API, by method and path."""
    fn = "/2015-03-31/functions"
    ly = "/2018-10-31/layers"
    eic = "/2019-09-25/functions/{name}/event-invoke-config"
    conc17 = "/2017-10-31/functions/{name}/concurrency"
    conc19 = "/2019-09-30/functions/{name}/concurrency"
    pc = "/2019-09-30/functions/{name}/provisioned-concurrency"
    tags = "/2017-03-31/tags/{arn}"
    return [
        web.post(fn, h.create_function, name="CreateFunction"),
        web.post(fn + "/", h.create_function),
        web.get(fn, h.list_functions, name="ListFunctions"),
        web.get(fn + "/", h.list_functions),
        web.get(fn + "/{name}", h.get_function, name="GetFunction"),
        web.delete(fn + "/{name}", h.delete_function, name="DeleteFunction"),
        web.get(
            fn + "/{name}/configuration",
            h.get_function_configuration,
            name="GetFunctionConfiguration",
        ),
        web.put(
            fn + "/{name}/configuration",
            h.update_function_configuration,
            name="UpdateFunctionConfiguration",
        ),
        web.put(fn + "/{name}/code", h.update_function_code, name="UpdateFunctionCode"),
        web.post(fn + "/{name}/invocations", h.invoke, name="Invoke"),
        web.post(
            "/2021-11-15/functions/{name}/response-streaming-invocations",
            h.invoke_with_response_stream,
            name="InvokeWithResponseStream",
        ),
        web.post(fn + "/{name}/versions", h.publish_version, name="PublishVersion"),
        web.get(
            fn + "/{name}/versions", h.list_versions_by_function, name="ListVersionsByFunction"
        ),
        web.post(fn + "/{name}/aliases", h.create_alias, name="CreateAlias"),
        web.get(fn + "/{name}/aliases", h.list_aliases, name="ListAliases"),
        web.get(fn + "/{name}/aliases/{alias}", h.get_alias, name="GetAlias"),
        web.put(fn + "/{name}/aliases/{alias}", h.update_alias, name="UpdateAlias"),
        web.delete(fn + "/{name}/aliases/{alias}", h.delete_alias, name="DeleteAlias"),
        web.put(eic, h.put_event_invoke_config, name="PutFunctionEventInvokeConfig"),
        web.post(eic, h.update_event_invoke_config, name="UpdateFunctionEventInvokeConfig"),
        web.get(eic, h.get_event_invoke_config, name="GetFunctionEventInvokeConfig"),
        web.delete(eic, h.delete_event_invoke_config, name="DeleteFunctionEventInvokeConfig"),
        web.get(eic + "/list", h.list_event_invoke_configs, name="ListFunctionEventInvokeConfigs"),
        web.put(conc17, h.put_function_concurrency, name="PutFunctionConcurrency"),
        web.delete(conc17, h.delete_function_concurrency, name="DeleteFunctionConcurrency"),
        web.get(conc19, h.get_function_concurrency, name="GetFunctionConcurrency"),
        web.put(pc, h.put_provisioned_concurrency, name="PutProvisionedConcurrencyConfig"),
        web.get(pc, h.get_provisioned_concurrency, name="GetProvisionedConcurrencyConfig"),
        web.delete(pc, h.delete_provisioned_concurrency, name="DeleteProvisionedConcurrencyConfig"),
        web.get("/2016-08-19/account-settings", h.get_account_settings, name="GetAccountSettings"),
        web.get("/2016-08-19/account-settings/", h.get_account_settings),
        web.post(tags, h.tag_resource, name="TagResource"),
        web.delete(tags, h.untag_resource, name="UntagResource"),
        web.get(tags, h.list_tags, name="ListTags"),
        web.get(ly, h.layers_root, name="ListLayers"),
        web.get(ly + "/{layer}/versions", h.list_layer_versions, name="ListLayerVersions"),
        web.post(ly + "/{layer}/versions", h.publish_layer_version, name="PublishLayerVersion"),
        web.get(ly + "/{layer}/versions/{version}", h.get_layer_version, name="GetLayerVersion"),
        web.delete(
            ly + "/{layer}/versions/{version}", h.delete_layer_version, name="DeleteLayerVersion"
        ),
        web.get(CODE_ROUTE, h.download_code, name="DownloadCode"),
    ]


@web.middleware
async def aws_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Give every response a request id and every failure AWS's error shape."""
    request_id = str(uuid.uuid4())
    request[REQUEST_ID_KEY] = request_id
    try:
        response = await handler(request)
    except LambdaApiError as e:
        response = render.error(e)
    except web.HTTPRequestEntityTooLarge:
        op = request.match_info.route.name or "request"
        response = render.error(
            RequestEntityTooLargeException(
                f"Request must be smaller than {MAX_ZIP_REQUEST} bytes for the {op} operation"
            )
        )
    except (web.HTTPNotFound, web.HTTPMethodNotAllowed):
        response = render.error(UnknownOperationException("Unknown operation"))
    except web.HTTPException:
        raise
    except Exception as e:
        if is_disk_full(e):
            log.error("%s %s: the data disk is full (%s)", request.method, request.path, e)
            response = render.error(DiskFullException())
        else:
            log.exception(
                "unexpected error in %s %s (request %s)", request.method, request.path, request_id
            )
            response = render.error(ServiceException("An internal error occurred."))
    response.headers[render.REQUEST_ID_HEADER] = request_id
    return response


def _never(peer: tuple[str, int], local: tuple[str, int]) -> bool:
    return False


def _default_peer_check() -> PeerCheck:
    """Socket-owner lookups where the kernel answers them (Linux); else none, said once."""
    from lambdalet.sandbox import peers

    problem = peers.usable()
    if problem is None:
        return peers.from_sandbox
    log.warning("%s: requests from sandboxes cannot be told apart", problem)
    return _never


def build_api_app(
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
    if is_sandbox is None:
        is_sandbox = _default_peer_check()
    guard = sandbox_guard(is_sandbox, signed_api=auth is not None, open_prefixes=UNSIGNED_PATHS)
    scope = Scope(config.region, config.account_id)
    # function URLs and template routes first: their requests never reach the API's routes,
    # its sandbox guard (a function may call a public URL, as on AWS) or its SigV4 check
    gateway = UrlGateway(scope, store, invoker, clock, auth)
    http_routes = RouteGateway(scope, store, invoker, clock)
    app = web.Application(
        middlewares=[gateway.middleware, http_routes.middleware, aws_errors, guard]
        + ([] if auth is None else [auth.middleware]),
        client_max_size=CLIENT_MAX_SIZE,
    )
    tasks = BackgroundTasks()
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
        images=images if images is not None else image_service.cache_for(config),
        runtime_problem=functools.partial(fallback_problem, policy=config.python_fallback),
        runtime_note=functools.partial(fallback_notice, policy=config.python_fallback),
    )
    app[TASKS_KEY] = tasks
    app[HANDLERS_KEY] = handlers
    app[QUEUE_KEY] = queue
    app.add_routes(routes(handlers))
    # the CloudWatch Logs read API (JSON 1.1: every operation is POST / with X-Amz-Target)
    logs = LogsApi(store, config.logs_dir, config.region, config.account_id)
    app.router.add_post("/", logs.handle, name="CloudWatchLogs")
    mappings = MappingManager(store, invoker, sqs_client_factory or default_sqs_client)
    schedules = ScheduleRunner(store, queue.submit, clock, Region(config.region, config.account_id))
    app.add_routes(
        trigger_routes(TriggerHandlers(scope, store, clock, mappings, schedules, http_routes))
    )

    async def start(_: web.Application) -> None:
        queue.start()
        provisioner.restore()
        mappings.restore()
        schedules.start()

    async def stop(_: web.Application) -> None:
        await schedules.close()
        await mappings.close()
        await queue.close()
        await provisioner.close()
        await tasks.close()

    app.on_startup.append(start)
    app.on_shutdown.append(stop)
    return app
