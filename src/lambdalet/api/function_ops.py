"""CreateFunction, GetFunction(Configuration), ListFunctions, UpdateFunctionCode,
UpdateFunctionConfiguration, DeleteFunction, and the presigned code download."""

from __future__ import annotations

import asyncio
from dataclasses import replace

from aiohttp import web

from lambdalet.api import render, shapes, validation
from lambdalet.api.handler_base import REQUEST_ID_KEY, HandlerBase
from lambdalet.api.presign import Refusal
from lambdalet.errors import InvalidParameterValueException, ResourceNotFoundException
from lambdalet.images import service as images
from lambdalet.model import IMAGE, LATEST, FunctionRecord


class FunctionOps(HandlerBase):
    async def create_function(self, request: web.Request) -> web.Response:
        body = validation.json_body(await request.read())
        spec, source = validation.create_function(body, self.scope)
        if isinstance(source, validation.ImageSource):
            assert spec.image is not None
            digest = await images.resolve(
                self._image_cache(), source.ref, source.uri, spec.architectures[0]
            )
            spec = replace(spec, image=replace(spec.image, digest=digest))
            record = self.store.create_function(spec, self.store.put_image_code(digest, 0))
            self._pull_later(record, publish=validation.publish_flag(body))
            return render.json_response(shapes.function_configuration(record, self.scope), 201)
        self._check_runtime(spec.runtime)
        code = await self.store.put_code(source)
        record = self.store.create_function(spec, code)
        if validation.publish_flag(body):
            self.store.settle(record.name)
            self.store.publish_version(record.name)
            record = self.store.get_function(record.name)
        else:
            self._settle_later(record.name)
        return render.json_response(await self._configuration(record), 201)

    async def get_function(self, request: web.Request) -> web.Response:
        name, qualifier = self._function(request)
        record, alias = self.store.resolve(name, qualifier)
        url = self._code_url(request, shapes.code_sha256_hex(record))
        reserved = self.store.reserved_concurrency(name)
        alias_name = None if alias is None else alias.name
        note = await asyncio.to_thread(self.runtime_note, record.runtime)
        return render.json_response(
            shapes.get_function(record, self.scope, url, reserved, alias_name, note)
        )

    async def get_function_configuration(self, request: web.Request) -> web.Response:
        name, qualifier = self._function(request)
        record, alias = self.store.resolve(name, qualifier)
        alias_name = None if alias is None else alias.name
        return render.json_response(await self._configuration(record, alias_name))

    async def list_functions(self, request: web.Request) -> web.Response:
        validation.function_version(request.query)
        params = validation.list_params(request.query, 10000)
        if request.query.get("FunctionVersion") == "ALL":
            page = self.store.list_all_versions(params.after, params.limit)
        else:
            page = self.store.list_functions(params.after, params.limit)
        return render.json_response(shapes.list_functions(page, self.scope))

    async def update_function_code(self, request: web.Request) -> web.Response:
        name, _ = self._function(request)
        update = validation.update_function_code(validation.json_body(await request.read()))
        current = self.store.get_function(name)
        if (current.package_type == IMAGE) != (update.image is not None):
            if current.package_type == IMAGE:
                raise InvalidParameterValueException(
                    "Please provide ImageUri when updating a function with packageType Image."
                )
            raise InvalidParameterValueException(
                "Please don't provide ImageUri when updating a function with packageType Zip."
            )
        if update.image is not None:
            return await self._update_image(name, current, update)
        code = await self.store.put_code(update.zip_file)
        if update.dry_run:
            record = self.store.get_function(name)
            dry = replace(record, code_sha256=code.sha256_b64, code_size=code.size)
            return render.json_response(shapes.function_configuration(dry, self.scope))
        record = self.store.update_function_code(
            name, code, architectures=update.architectures, revision_id=update.revision_id
        )
        await self.invoker.retire(name, LATEST)
        if update.publish:
            self.store.settle(name)
            record = self.store.publish_version(name)
        else:
            self._settle_later(name)
        return render.json_response(shapes.function_configuration(record, self.scope))

    async def _update_image(
        self, name: str, current: FunctionRecord, update: validation.CodeUpdate
    ) -> web.Response:
        assert update.image is not None and current.image is not None
        arch = (update.architectures or current.architectures)[0]
        source = update.image
        digest = await images.resolve(self._image_cache(), source.ref, source.uri, arch)
        image = replace(current.image, uri=source.uri, digest=digest)
        code = self.store.put_image_code(digest, 0)
        if update.dry_run:
            dry = replace(current, image=image, code_sha256=code.sha256_hex)
            return render.json_response(shapes.function_configuration(dry, self.scope))
        record = self.store.update_function_image(
            name, image, code, architectures=update.architectures, revision_id=update.revision_id
        )
        await self.invoker.retire(name, LATEST)
        self._pull_later(record, publish=update.publish)
        self._prune_images_later()
        return render.json_response(shapes.function_configuration(record, self.scope))

    async def update_function_configuration(self, request: web.Request) -> web.Response:
        name, _ = self._function(request)
        body = validation.json_body(await request.read())
        patch, revision_id = validation.update_function_configuration(body, self.scope)
        if self.store.get_function(name).package_type == IMAGE and (
            patch.runtime is not None or patch.handler is not None or patch.layers
        ):
            raise InvalidParameterValueException(validation.IMAGE_ONLY_FIELDS_MESSAGE)
        if patch.runtime is not None:
            self._check_runtime(patch.runtime)
        record = self.store.update_function_configuration(name, patch, revision_id=revision_id)
        await self.invoker.retire(name, LATEST)
        self._settle_later(name)
        return render.json_response(await self._configuration(record))

    async def delete_function(self, request: web.Request) -> web.Response:
        name, qualifier = self._function(request)
        if qualifier == LATEST:
            raise InvalidParameterValueException(
                "$LATEST version cannot be deleted without deleting the function."
            )
        if qualifier is not None:
            if not qualifier.isdigit():
                raise InvalidParameterValueException(
                    "Deletion of aliases is not supported through DeleteFunction; use DeleteAlias."
                )
            self.store.delete_version(name, qualifier)
            await self.provisioner.remove(name, qualifier)
            await self.invoker.retire(name, qualifier)
            self._prune_images_later()
            return render.empty(204)
        self.store.delete_function(name)
        self.limits.forget(name)
        await self.provisioner.forget_function(name)
        await self.invoker.retire(name)
        self._prune_images_later()
        return render.empty(204)

    async def download_code(self, request: web.Request) -> web.StreamResponse:
        sha256_hex = request.match_info["sha256"]
        try:
            self.signer.check(sha256_hex, request.query)
        except Refusal as e:
            return render.s3_error(403, e.code, e.message, request[REQUEST_ID_KEY])
        path = self.store.code_zip_path(sha256_hex)
        if path is None:
            raise ResourceNotFoundException("The resource you requested does not exist.")
        return web.FileResponse(path, headers={"Content-Type": "application/zip"})
