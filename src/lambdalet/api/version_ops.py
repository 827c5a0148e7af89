"""PublishVersion, ListVersionsByFunction and the alias operations."""

from __future__ import annotations

from aiohttp import web

from lambdalet.api import render, shapes, validation
from lambdalet.api.handler_base import HandlerBase


class VersionOps(HandlerBase):
    async def publish_version(self, request: web.Request) -> web.Response:
        name, _ = self._function(request)
        params = validation.publish_version(validation.json_body(await request.read()))
        record = self.store.publish_version(
            name,
            code_sha256=params.code_sha256,
            description=params.description,
            revision_id=params.revision_id,
        )
        return render.json_response(shapes.function_configuration(record, self.scope), 201)

    async def list_versions_by_function(self, request: web.Request) -> web.Response:
        name, _ = self._function(request)
        params = validation.list_params(request.query, 10000)
        page = self.store.list_versions(name, params.after, params.limit)
        return render.json_response(shapes.list_versions(page, self.scope))

    async def create_alias(self, request: web.Request) -> web.Response:
        name, _ = self._function(request)
        spec = validation.create_alias(validation.json_body(await request.read()))
        alias = self.store.create_alias(name, spec)
        return render.json_response(shapes.alias_configuration(alias), 201)

    async def get_alias(self, request: web.Request) -> web.Response:
        name, _ = self._function(request)
        alias = self.store.get_alias(name, validation.alias_name(request.match_info["alias"]))
        return render.json_response(shapes.alias_configuration(alias))

    async def update_alias(self, request: web.Request) -> web.Response:
        name, _ = self._function(request)
        alias_name = validation.alias_name(request.match_info["alias"])
        patch = validation.update_alias(validation.json_body(await request.read()))
        if patch.weights is not None and patch.function_version is None:
            primary = self.store.get_alias(name, alias_name).function_version
            validation.routing_config({"AdditionalVersionWeights": dict(patch.weights)}, primary)
        alias = self.store.update_alias(name, alias_name, patch)
        self._reprovision(name, alias_name)
        return render.json_response(shapes.alias_configuration(alias))

    async def delete_alias(self, request: web.Request) -> web.Response:
        name, _ = self._function(request)
        alias_name = validation.alias_name(request.match_info["alias"])
        self.store.delete_alias(name, alias_name)
        await self.provisioner.remove(name, alias_name)
        return render.empty(204)

    async def list_aliases(self, request: web.Request) -> web.Response:
        name, _ = self._function(request)
        raw_version = request.query.get("FunctionVersion")
        version = validation.function_version_value(raw_version) if raw_version else None
        params = validation.list_params(request.query, 10000)
        page = self.store.list_aliases(
            name, function_version=version, after=params.after, limit=params.limit
        )
        return render.json_response(shapes.list_aliases(page))
