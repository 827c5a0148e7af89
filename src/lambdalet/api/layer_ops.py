"""The layer operations: publish, get (by name or ARN), list, delete."""

from __future__ import annotations

from aiohttp import web

from lambdalet.api import render, shapes, validation
from lambdalet.api.arns import parse_layer_name
from lambdalet.api.handler_base import HandlerBase
from lambdalet.errors import ResourceNotFoundException


class LayerOps(HandlerBase):
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
