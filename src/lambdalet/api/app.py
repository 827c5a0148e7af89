"""The Lambda API application: route table, middleware order, lifecycle of background tasks.

It builds nothing: :func:`lambdalet.app.build_api` (the composition root) constructs the
parts and hands them over as :class:`ApiParts`.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web
from aiohttp.typedefs import Middleware

from lambdalet.api import render
from lambdalet.api.auth import SigV4Verifier
from lambdalet.api.handlers import CODE_ROUTE, REQUEST_ID_KEY, Handlers
from lambdalet.api.logs_handlers import LogsApi
from lambdalet.api.route_gateway import RouteGateway
from lambdalet.api.tasks import BackgroundTasks
from lambdalet.api.trigger_handlers import TriggerHandlers, trigger_routes
from lambdalet.api.url_gateway import UrlGateway
from lambdalet.api.validation import MAX_ZIP_REQUEST
from lambdalet.control.async_queue import AsyncQueue
from lambdalet.control.provisioned import Provisioner
from lambdalet.errors import (
    DiskFullException,
    LambdaApiError,
    RequestEntityTooLargeException,
    ServiceException,
    UnknownOperationException,
)
from lambdalet.store.disk import is_disk_full
from lambdalet.triggers.mappings import MappingManager
from lambdalet.triggers.schedules import ScheduleRunner

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


@dataclass(frozen=True)
class ApiParts:
    """Every object the Lambda API's routes and middlewares are made of, built by the
    composition root (:func:`lambdalet.app.build_api`); this module only assembles them."""

    handlers: Handlers
    triggers: TriggerHandlers
    logs: LogsApi
    tasks: BackgroundTasks
    #: function URLs and template routes: outer middlewares, ahead of the API's own
    url_gateway: UrlGateway
    route_gateway: RouteGateway
    #: refuses requests from inside a sandbox (api/guard.py)
    guard: Middleware
    #: SigV4 verification, when credentials are configured
    auth: SigV4Verifier | None
    queue: AsyncQueue
    provisioner: Provisioner
    mappings: MappingManager
    schedules: ScheduleRunner


def build_api_app(parts: ApiParts) -> web.Application:
    """The Lambda API's routes and middlewares over ``parts``; the asynchronous-invocation
    queue, provisioned concurrency, event source mappings and schedules start and stop
    with the app."""
    # function URLs and template routes first: their requests never reach the API's routes,
    # its sandbox guard (a function may call a public URL, as on AWS) or its SigV4 check
    app = web.Application(
        middlewares=[
            parts.url_gateway.middleware,
            parts.route_gateway.middleware,
            aws_errors,
            parts.guard,
        ]
        + ([] if parts.auth is None else [parts.auth.middleware]),
        client_max_size=CLIENT_MAX_SIZE,
    )
    app[TASKS_KEY] = parts.tasks
    app[HANDLERS_KEY] = parts.handlers
    app[QUEUE_KEY] = parts.queue
    app.add_routes(routes(parts.handlers))
    # the CloudWatch Logs read API (JSON 1.1: every operation is POST / with X-Amz-Target)
    app.router.add_post("/", parts.logs.handle, name="CloudWatchLogs")
    app.add_routes(trigger_routes(parts.triggers))

    async def start(_: web.Application) -> None:
        parts.queue.start()
        parts.provisioner.restore()
        parts.mappings.restore()
        parts.schedules.start()

    async def stop(_: web.Application) -> None:
        await parts.schedules.close()
        await parts.mappings.close()
        await parts.queue.close()
        await parts.provisioner.close()
        await parts.tasks.close()

    app.on_startup.append(start)
    app.on_shutdown.append(stop)
    return app
