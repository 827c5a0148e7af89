"""A worker's internal endpoint: invokes routed to it by API replicas, retire requests,
and the health endpoints both roles serve.

Only other nodes of the cluster may call it: every request carries the cluster's shared
secret (``X-Lambdalet-Cluster-Token``, from the database).  On a worker-only node
(``lambdalet worker``) the sandbox guard is not in front of this app yet: a sandbox that
reaches ``--listen`` gets 403 without the token, but ``/lambdalet/healthz``, ``readyz`` and
``/metrics`` answer it (docs/security.md).  ``serve --database [--worker]`` has the guard.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from lambdalet.api import render
from lambdalet.cluster import protocol
from lambdalet.errors import (
    AccessDeniedException,
    InvalidRequestContentException,
    LambdaApiError,
    ServiceException,
)
from lambdalet.model import InvokeInput, Invoker
from lambdalet.store import Store

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def internal_routes(
    store: Store,
    invoker: Invoker,
    token: str,
    accepting: Callable[[], bool],
    environments: Callable[[], dict[str, Any]],
) -> list[web.RouteDef]:
    """``accepting()``: False while draining (invokes are refused as not run: retry next);
    ``environments()``: this worker's admin listing (``Environments``, ``Ended``)."""

    def authorised(request: web.Request) -> bool:
        given = request.headers.get(protocol.TOKEN_HEADER, "")
        return hmac.compare_digest(given.encode(), token.encode())

    async def invoke(request: web.Request) -> web.StreamResponse:
        if not authorised(request):
            return render.error(AccessDeniedException("Invalid cluster token."))
        if not accepting():
            resp = render.error(ServiceException("This worker is draining."))
            resp.headers[protocol.RETRY_HEADER] = "next"
            return resp
        try:
            routed = protocol.parse_request(request.headers, await request.read())
        except ValueError as e:
            return render.error(InvalidRequestContentException(str(e)))
        try:
            record = store.get_function(routed.function_name, routed.version)
            if record.revision_id != routed.revision_id:  # written since our last look
                store.forget_cached()
                record = store.get_function(routed.function_name, routed.version)
            output = await invoker.invoke(
                InvokeInput(
                    function=record,
                    invoked_arn=routed.invoked_arn,
                    request_id=routed.request_id,
                    payload=routed.payload,
                    client_context=routed.client_context,
                    log_tail=routed.log_tail,
                    trace_id=routed.trace_id,
                )
            )
        except LambdaApiError as e:
            resp = render.error(e)
            resp.headers.update(protocol.error_headers(e))
            return resp
        return web.Response(body=output.payload, headers=protocol.output_headers(output))

    async def retire(request: web.Request) -> web.StreamResponse:
        if not authorised(request):
            return render.error(AccessDeniedException("Invalid cluster token."))
        await invoker.retire(request.query["name"], request.query.get("version"))
        return web.Response(status=204)

    async def provision(request: web.Request) -> web.StreamResponse:
        if not authorised(request):
            return render.error(AccessDeniedException("Invalid cluster token."))
        doc = await request.json()
        try:
            record = store.get_function(str(doc["name"]), str(doc["version"]))
        except LambdaApiError as e:
            return render.error(e)
        result = await invoker.provision(str(doc["config_key"]), record, int(doc["count"]))
        return render.json_response({"Ready": result.ready, "Failure": result.failure})

    async def unprovision(request: web.Request) -> web.StreamResponse:
        if not authorised(request):
            return render.error(AccessDeniedException("Invalid cluster token."))
        await invoker.unprovision(request.query["config_key"])
        return web.Response(status=204)

    async def list_environments(request: web.Request) -> web.StreamResponse:
        if not authorised(request):
            return render.error(AccessDeniedException("Invalid cluster token."))
        return render.json_response(environments())

    return [
        web.post(protocol.INVOKE_PATH, invoke),
        web.post(protocol.RETIRE_PATH, retire),
        web.get(protocol.ENVIRONMENTS_PATH, list_environments),
        web.post(protocol.PROVISION_PATH, provision),
        web.post(protocol.UNPROVISION_PATH, unprovision),
    ]


def health_routes(ready: Callable[[], bool]) -> list[web.RouteDef]:
    """Liveness (the process answers) and readiness (``ready()``: database reachable and,
    for a worker, registered and alive)."""

    async def healthz(_: web.Request) -> web.Response:
        return render.json_response({"status": "ok"})

    async def readyz(_: web.Request) -> web.Response:
        try:
            ok = ready()
        except Exception as e:
            log.warning("readiness: %s", e)
            ok = False
        if ok:
            return render.json_response({"status": "ready"})
        return render.json_response({"status": "not ready"}, status=503)

    return [web.get("/lambdalet/healthz", healthz), web.get("/lambdalet/readyz", readyz)]
