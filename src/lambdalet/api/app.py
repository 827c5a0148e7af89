"""The Lambda API application: route table, middleware, lifecycle of background tasks."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable

from aiohttp import web

from lambdalet.api import render
from lambdalet.api.arns import Scope
from lambdalet.api.handlers import CODE_ROUTE, REQUEST_ID_KEY, Handlers
from lambdalet.api.tasks import BackgroundTasks
from lambdalet.api.validation import MAX_ZIP_REQUEST
from lambdalet.config import ServerConfig
from lambdalet.errors import (
    LambdaApiError,
    RequestEntityTooLargeException,
    ServiceException,
    UnknownOperationException,
)
from lambdalet.model import Invoker
from lambdalet.store import Store

log = logging.getLogger(__name__)

#: Room for the base64 of a 50 MB zip (and so for a 6 MB payload) plus JSON around it;
#: anything under this is answered by the operation's own limits, not by aiohttp.
CLIENT_MAX_SIZE = MAX_ZIP_REQUEST + 4 * 1024 * 1024

TASKS_KEY = web.AppKey("lambdalet_api_tasks", BackgroundTasks)
HANDLERS_KEY = web.AppKey("lambdalet_api_handlers", Handlers)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def routes(h: Handlers) -> list[web.RouteDef]:
    """Every operation of the API, by method and path."""
    fn = "/2015-03-31/functions"
    ly = "/2018-10-31/layers"
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
    except Exception:
        log.exception(
            "unexpected error in %s %s (request %s)", request.method, request.path, request_id
        )
        response = render.error(ServiceException("An internal error occurred."))
    response.headers[render.REQUEST_ID_HEADER] = request_id
    return response


def build_api_app(
    config: ServerConfig, store: Store, invoker: Invoker, *, settle_delay_s: float = 0.0
) -> web.Application:
    """The Lambda API over ``store`` and ``invoker``.

    ``settle_delay_s``: how long after a create/update the function stays Pending/InProgress
    (0: settled right after the response; tests raise it to observe the transient states).
    """
    app = web.Application(middlewares=[aws_errors], client_max_size=CLIENT_MAX_SIZE)
    tasks = BackgroundTasks()
    handlers = Handlers(
        Scope(config.region, config.account_id), store, invoker, tasks, settle_delay_s
    )
    app[TASKS_KEY] = tasks
    app[HANDLERS_KEY] = handlers
    app.add_routes(routes(handlers))

    async def stop_tasks(_: web.Application) -> None:
        await tasks.close()

    app.on_shutdown.append(stop_tasks)
    return app
