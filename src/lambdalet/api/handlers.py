"""One thin handler per operation: parse → validate → one store/invoker call → render."""

from __future__ import annotations

import asyncio
from dataclasses import replace

from aiohttp import web

from lambdalet.api import render, shapes, validation
from lambdalet.api.arns import Scope, parse_function_name, parse_layer_name
from lambdalet.api.tasks import BackgroundTasks
from lambdalet.errors import (
    InvalidParameterValueException,
    ResourceConflictException,
    ResourceNotFoundException,
)
from lambdalet.model import LATEST, FunctionRecord, InvokeInput, Invoker
from lambdalet.store import Store
from lambdalet.store.records import PENDING

CODE_ROUTE = "/lambdalet/code/{sha256}.zip"
#: The id of this request (uuid4): x-amzn-RequestId, and an invocation's request id.
REQUEST_ID_KEY = web.RequestKey("lambdalet_request_id", str)


class Handlers:
    """The Lambda API's operations over one store and one invoker."""

    def __init__(
        self,
        scope: Scope,
        store: Store,
        invoker: Invoker,
        tasks: BackgroundTasks,
        settle_delay_s: float = 0.0,
    ) -> None:
        self.scope = scope
        self.store = store
        self.invoker = invoker
        self.tasks = tasks
        self.settle_delay_s = settle_delay_s

    # ----------------------------------------------------------- helpers

    def _settle_later(self, name: str) -> None:
        """Pending → Active, InProgress → Successful, just after the response is sent."""

        async def settle() -> None:
            await asyncio.sleep(self.settle_delay_s)
            self.store.settle(name)

        self.tasks.spawn(settle(), name=f"settle {name}")

    @staticmethod
    def _code_url(request: web.Request, sha256_hex: str) -> str:
        return f"{request.scheme}://{request.host}{CODE_ROUTE.format(sha256=sha256_hex)}"

    def _function(self, request: web.Request) -> tuple[str, str | None]:
        ref = parse_function_name(
            request.match_info["name"], self.scope, request.query.get("Qualifier")
        )
        return ref.name, ref.qualifier

    # --------------------------------------------------------- functions

    async def create_function(self, request: web.Request) -> web.Response:
        body = validation.json_body(await request.read())
        spec, zip_bytes = validation.create_function(body, self.scope)
        code = await self.store.put_code(zip_bytes)
        record = self.store.create_function(spec, code)
        self._settle_later(record.name)
        return render.json_response(shapes.function_configuration(record, self.scope), 201)

    async def get_function(self, request: web.Request) -> web.Response:
        name, qualifier = self._function(request)
        record = self.store.get_function(name, qualifier)
        url = self._code_url(request, shapes.code_sha256_hex(record))
        return render.json_response(shapes.get_function(record, self.scope, url))

    async def get_function_configuration(self, request: web.Request) -> web.Response:
        name, qualifier = self._function(request)
        record = self.store.get_function(name, qualifier)
        return render.json_response(shapes.function_configuration(record, self.scope))

    async def list_functions(self, request: web.Request) -> web.Response:
        validation.function_version(request.query)
        params = validation.list_params(request.query, 10000)
        page = self.store.list_functions(params.after, params.limit)
        return render.json_response(shapes.list_functions(page, self.scope))

    async def update_function_code(self, request: web.Request) -> web.Response:
        name, _ = self._function(request)
        update = validation.update_function_code(validation.json_body(await request.read()))
        code = await self.store.put_code(update.zip_file)
        if update.dry_run:
            record = self.store.get_function(name)
            dry = replace(record, code_sha256=code.sha256_b64, code_size=code.size)
            return render.json_response(shapes.function_configuration(dry, self.scope))
        record = self.store.update_function_code(
            name, code, architectures=update.architectures, revision_id=update.revision_id
        )
        await self.invoker.retire(name)
        self._settle_later(name)
        return render.json_response(shapes.function_configuration(record, self.scope))

    async def update_function_configuration(self, request: web.Request) -> web.Response:
        name, _ = self._function(request)
        body = validation.json_body(await request.read())
        patch, revision_id = validation.update_function_configuration(body, self.scope)
        record = self.store.update_function_configuration(name, patch, revision_id=revision_id)
        await self.invoker.retire(name)
        self._settle_later(name)
        return render.json_response(shapes.function_configuration(record, self.scope))

    async def delete_function(self, request: web.Request) -> web.Response:
        name, qualifier = self._function(request)
        if qualifier == LATEST:
            raise InvalidParameterValueException(
                "$LATEST version cannot be deleted without deleting the function."
            )
        if qualifier is not None:  # no published versions exist yet
            self.store.get_function(name, qualifier)
        self.store.delete_function(name)
        await self.invoker.retire(name)
        return render.empty(204)

    async def download_code(self, request: web.Request) -> web.StreamResponse:
        path = self.store.code_zip_path(request.match_info["sha256"])
        if path is None:
            raise ResourceNotFoundException("The resource you requested does not exist.")
        return web.FileResponse(path, headers={"Content-Type": "application/zip"})

    # ------------------------------------------------------------ invoke

    async def invoke(self, request: web.Request) -> web.StreamResponse:
        name, qualifier = self._function(request)
        params = validation.invoke_params(request.headers)
        payload = validation.invoke_payload(await request.read(), params.invocation_type)
        record = self.store.get_function(name, qualifier)
        _check_invocable(record)
        if params.invocation_type == "DryRun":
            return render.empty(204)
        invocation = InvokeInput(
            function=record,
            invoked_arn=f"{record.arn}:{qualifier}" if qualifier else record.arn,
            request_id=request[REQUEST_ID_KEY],
            payload=payload,
            client_context=params.client_context,
            log_tail=params.log_tail,
        )
        if params.invocation_type == "Event":
            # For now an async event lives only in this task: a restart loses it.  A durable
            # queue (written before the 202, with retries) replaces this later.
            event = replace(invocation, client_context=None, log_tail=False)
            self.tasks.spawn(self.invoker.invoke(event), name=f"event {invocation.request_id}")
            return render.empty(202)
        return render.invoke_output(await self.invoker.invoke(invocation))

    # ------------------------------------------------------------ layers

    async def publish_layer_version(self, request: web.Request) -> web.Response:
        name = parse_layer_name(request.match_info["layer"], self.scope)
        body = validation.json_body(await request.read())
        spec, zip_bytes = validation.publish_layer_version(name, body)
        code = await self.store.put_code(zip_bytes)
        record = self.store.publish_layer_version(spec, code)
        url = self._code_url(request, record.code.sha256_hex)
        return render.json_response(shapes.layer_version(record, url), 201)

    async def get_layer_version(self, request: web.Request) -> web.Response:
        name = parse_layer_name(request.match_info["layer"], self.scope)
        version = validation.layer_version_number(request.match_info["version"])
        record = self.store.get_layer_version(name, version)
        url = self._code_url(request, record.code.sha256_hex)
        return render.json_response(shapes.layer_version(record, url))

    async def get_layer_version_by_arn(self, request: web.Request) -> web.Response:
        ref = validation.layer_version_arn_param(request.query.get("Arn"), self.scope)
        if ref is None:
            raise ResourceNotFoundException("The resource you requested does not exist.")
        record = self.store.get_layer_version(ref.name, ref.version)
        url = self._code_url(request, record.code.sha256_hex)
        return render.json_response(shapes.layer_version(record, url))

    async def list_layer_versions(self, request: web.Request) -> web.Response:
        name = parse_layer_name(request.match_info["layer"], self.scope)
        runtime, arch = validation.compatible_filters(request.query)
        params = validation.list_params(request.query, 50)
        page = self.store.list_layer_versions(
            name,
            runtime=runtime,
            architecture=arch,
            after=validation.version_marker(params.after),
            limit=params.limit,
        )
        return render.json_response(shapes.list_layer_versions(page))

    async def list_layers(self, request: web.Request) -> web.Response:
        runtime, arch = validation.compatible_filters(request.query)
        params = validation.list_params(request.query, 50)
        page = self.store.list_layers(
            runtime=runtime, architecture=arch, after=params.after, limit=params.limit
        )
        return render.json_response(shapes.list_layers(page))

    async def layers_root(self, request: web.Request) -> web.Response:
        """``GET /2018-10-31/layers`` is ListLayers, or GetLayerVersionByArn with ``?find=``."""
        if request.query.get("find") == "LayerVersion":
            return await self.get_layer_version_by_arn(request)
        return await self.list_layers(request)

    async def delete_layer_version(self, request: web.Request) -> web.Response:
        name = parse_layer_name(request.match_info["layer"], self.scope)
        version = validation.layer_version_number(request.match_info["version"])
        self.store.delete_layer_version(name, version)
        return render.empty(204)


def _check_invocable(record: FunctionRecord) -> None:
    if record.state == PENDING:
        raise ResourceConflictException(
            "The operation cannot be performed at this time. "
            f"The function is currently in the following state: {record.state}"
        )
