"""One thin handler per operation: parse → validate → one store/invoker call → render."""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from aiohttp import web

from lambdalet.api import render, shapes, validation
from lambdalet.api.arns import Scope, parse_function_name, parse_layer_name
from lambdalet.api.presign import CodeUrlSigner, Refusal
from lambdalet.api.tasks import BackgroundTasks
from lambdalet.control.async_queue import AsyncQueue
from lambdalet.control.concurrency import ConcurrencyLimits
from lambdalet.control.provisioned import Provisioner
from lambdalet.control.streaming import invoke_streaming
from lambdalet.errors import (
    DiskFullException,
    InvalidParameterValueException,
    ProvisionedConcurrencyConfigNotFoundException,
    ResourceConflictException,
    ResourceNotFoundException,
)
from lambdalet.images import service as images
from lambdalet.images.cache import ImageCache
from lambdalet.model import IMAGE, LATEST, FunctionRecord, InvokeInput, Invoker
from lambdalet.store import Store, aws_timestamp
from lambdalet.store.records import (
    FAILED,
    PENDING,
    EventInvokeConfig,
    EventInvokePatch,
    NewEvent,
    ProvisionedConfig,
    pick_version,
)

CODE_ROUTE = "/lambdalet/code/{sha256}.zip"
#: a function that could not settle (Pending → Active) because the disk was full tries again
SETTLE_RETRY_S = 1.0

log = logging.getLogger(__name__)
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
        *,
        queue: AsyncQueue,
        limits: ConcurrencyLimits,
        provisioner: Provisioner,
        signer: CodeUrlSigner,
        draw: Callable[[], float] = random.random,
        images: ImageCache | None = None,
        runtime_problem: Callable[[str], str | None] = lambda _runtime: None,
        runtime_note: Callable[[str], str | None] = lambda _runtime: None,
    ) -> None:
        self.scope = scope
        self.store = store
        self.invoker = invoker
        self.tasks = tasks
        self.settle_delay_s = settle_delay_s
        self.queue = queue
        self.limits = limits
        self.provisioner = provisioner
        self.signer = signer
        self.draw = draw
        self.images = images
        #: why a runtime cannot run on this server (--python-fallback refuse), or None
        self.runtime_problem = runtime_problem
        #: what a function's runtime runs on when it is not the version it names, or None
        self.runtime_note = runtime_note

    # ----------------------------------------------------------- helpers

    def _settle_later(self, name: str) -> None:
        """Pending → Active, InProgress → Successful, just after the response is sent."""

        async def settle() -> None:
            await asyncio.sleep(self.settle_delay_s)
            while True:
                try:
                    self.store.settle(name)
                    return
                except DiskFullException:
                    log.warning("%s stays Pending/InProgress until the data disk has room", name)
                    await asyncio.sleep(SETTLE_RETRY_S)

        self.tasks.spawn(settle(), name=f"settle {name}")

    def _code_url(self, request: web.Request, sha256_hex: str) -> str:
        """A presigned download URL of the zip, valid for ``signer.ttl_s`` (10 min)."""
        path = CODE_ROUTE.format(sha256=sha256_hex)
        return f"{request.scheme}://{request.host}{path}?{self.signer.query(sha256_hex)}"

    async def _configuration(
        self, record: FunctionRecord, alias: str | None = None
    ) -> dict[str, Any]:
        out = shapes.function_configuration(record, self.scope, alias)
        note = await asyncio.to_thread(self.runtime_note, record.runtime)
        return shapes.with_runtime_note(out, note)

    def _check_runtime(self, runtime: str) -> None:
        problem = self.runtime_problem(runtime)
        if problem is not None:
            raise InvalidParameterValueException(problem)

    def _function(self, request: web.Request) -> tuple[str, str | None]:
        ref = parse_function_name(
            request.match_info["name"], self.scope, request.query.get("Qualifier")
        )
        return ref.name, ref.qualifier

    # --------------------------------------------------------- functions

    def _image_cache(self) -> ImageCache:
        if self.images is None:
            raise InvalidParameterValueException(
                "Container images are not supported by this server (no image store)."
            )
        return self.images

    def _pull_later(self, record: FunctionRecord, publish: bool = False) -> None:
        """Pull the image of ``$LATEST`` after the response: then Active / Successful (and
        the version published if asked), or Failed with Lambda's reason code."""
        name = record.name

        async def settle() -> None:
            self.store.settle(name)
            if publish:
                self.store.publish_version(name)

        async def pull() -> None:
            await images.pull_then(
                self._image_cache(),
                record,
                settle=settle,
                fail=lambda code, reason: self.store.image_failed(name, code, reason),
            )

        self.tasks.spawn(pull(), name=f"pull image of {name}")

    def _prune_images_later(self) -> None:
        """Remove pulled images no function version uses any more."""
        if self.images is not None:
            self.tasks.spawn(self.images.prune(self.store.image_digests), name="prune images")

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

    # ------------------------------------------------------------ invoke

    async def invoke(self, request: web.Request) -> web.StreamResponse:
        name, qualifier = self._function(request)
        params = validation.invoke_params(request.headers)
        payload = validation.invoke_payload(await request.read(), params.invocation_type)
        record, alias = self.store.resolve(name, qualifier)
        _check_invocable(record)
        if params.invocation_type == "DryRun":
            return render.empty(204)
        request_id = request[REQUEST_ID_KEY]
        if params.invocation_type == "Event":
            # committed to the durable queue before the 202 (control.async_queue)
            self.queue.submit(NewEvent(request_id, name, qualifier, payload))
            return render.empty(202)
        if alias is not None and alias.weights:
            version = pick_version(alias, self.draw())
            if version != record.version:
                record = self.store.get_function(name, version)
        invocation = InvokeInput(
            function=record,
            invoked_arn=f"{record.arn}:{qualifier}" if qualifier else record.arn,
            request_id=request_id,
            payload=payload,
            client_context=params.client_context,
            log_tail=params.log_tail,
        )
        return render.invoke_output(await self.invoker.invoke(invocation))

    async def invoke_with_response_stream(self, request: web.Request) -> web.StreamResponse:
        name, qualifier = self._function(request)
        params = validation.invoke_stream_params(request.headers)
        payload = validation.invoke_payload(await request.read(), "RequestResponse")
        record, alias = self.store.resolve(name, qualifier)
        _check_invocable(record)
        if params.invocation_type == "DryRun":
            return render.empty(204)
        if alias is not None and alias.weights:
            version = pick_version(alias, self.draw())
            if version != record.version:
                record = self.store.get_function(name, version)
        invocation = InvokeInput(
            function=record,
            invoked_arn=f"{record.arn}:{qualifier}" if qualifier else record.arn,
            request_id=request[REQUEST_ID_KEY],
            payload=payload,
            client_context=params.client_context,
            log_tail=params.log_tail,
        )
        streamed = await invoke_streaming(self.invoker, invocation)
        return await render.invoke_stream(request, streamed, record.version, invocation.request_id)

    # ---------------------------------------------------------- versions

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

    # ----------------------------------------------------------- aliases

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

    # --------------------------------------------------- event invoke config

    def _event_target(self, request: web.Request) -> tuple[str, str]:
        name, qualifier = self._function(request)
        qualifier = qualifier or LATEST
        self.store.resolve(name, qualifier)
        return name, qualifier

    async def put_event_invoke_config(self, request: web.Request) -> web.Response:
        name, qualifier = self._event_target(request)
        p = validation.event_invoke_config(validation.json_body(await request.read()), self.scope)
        config = self.store.put_event_invoke_config(
            EventInvokeConfig(
                name,
                qualifier,
                max_retry_attempts=p.max_retry_attempts,
                max_event_age_s=p.max_event_age_s,
                on_success=p.on_success or None,
                on_failure=p.on_failure or None,
            )
        )
        arn = self.store.function_arn(name)
        return render.json_response(shapes.event_invoke_config(config, arn))

    async def update_event_invoke_config(self, request: web.Request) -> web.Response:
        name, qualifier = self._event_target(request)
        p = validation.event_invoke_config(validation.json_body(await request.read()), self.scope)
        config = self.store.update_event_invoke_config(
            name,
            qualifier,
            EventInvokePatch(p.max_retry_attempts, p.max_event_age_s, p.on_success, p.on_failure),
        )
        arn = self.store.function_arn(name)
        return render.json_response(shapes.event_invoke_config(config, arn))

    async def get_event_invoke_config(self, request: web.Request) -> web.Response:
        name, qualifier = self._event_target(request)
        config = self.store.get_event_invoke_config(name, qualifier)
        arn = self.store.function_arn(name)
        return render.json_response(shapes.event_invoke_config(config, arn))

    async def delete_event_invoke_config(self, request: web.Request) -> web.Response:
        name, qualifier = self._event_target(request)
        self.store.delete_event_invoke_config(name, qualifier)
        return render.empty(204)

    async def list_event_invoke_configs(self, request: web.Request) -> web.Response:
        name, _ = self._function(request)
        params = validation.list_params(request.query, 50)
        page = self.store.list_event_invoke_configs(name, params.after, params.limit)
        arn = self.store.function_arn(name)
        return render.json_response(shapes.list_event_invoke_configs(page, arn))

    # ------------------------------------------------------- concurrency

    async def put_function_concurrency(self, request: web.Request) -> web.Response:
        name, _ = self._function(request)
        value = validation.reserved_concurrency(validation.json_body(await request.read()))
        self.store.get_function(name)
        self.limits.check_reserved(name, value)
        self.store.set_reserved_concurrency(name, value)
        self.limits.set_reserved(name, value)
        return render.json_response({"ReservedConcurrentExecutions": value})

    async def get_function_concurrency(self, request: web.Request) -> web.Response:
        name, _ = self._function(request)
        self.store.get_function(name)
        value = self.store.reserved_concurrency(name)
        body = {} if value is None else {"ReservedConcurrentExecutions": value}
        return render.json_response(body)

    async def delete_function_concurrency(self, request: web.Request) -> web.Response:
        name, _ = self._function(request)
        self.store.set_reserved_concurrency(name, None)
        self.limits.set_reserved(name, None)
        return render.empty(204)

    async def get_account_settings(self, request: web.Request) -> web.Response:
        size, count = self.store.account_usage()
        return render.json_response(
            shapes.account_settings(
                self.limits.account_limit, self.limits.unreserved(), size, count
            )
        )

    # ---------------------------------------------- provisioned concurrency

    def _pc_target(self, request: web.Request) -> tuple[str, str, FunctionRecord]:
        name, _ = self._function(request)
        qualifier = validation.qualifier_param(request.query, required=True)
        assert qualifier is not None
        if qualifier == LATEST:
            raise InvalidParameterValueException(
                "Provisioned Concurrency Configs cannot be applied to unpublished function "
                "versions."
            )
        record, _ = self.store.resolve(name, qualifier)
        return name, qualifier, record

    def _reprovision(self, name: str, qualifier: str) -> None:
        """An alias moved: its provisioned environments follow the new version."""
        try:
            config = self.store.provisioned_config(name, qualifier)
        except ProvisionedConcurrencyConfigNotFoundException:
            return
        self.provisioner.apply(name, qualifier, config.requested)

    def _pc_body(self, config: ProvisionedConfig, with_arn: bool = False) -> dict[str, object]:
        st = self.provisioner.status(config.function_name, config.qualifier, config.requested)
        arn = self.store.function_arn(config.function_name) if with_arn else None
        return shapes.provisioned_config(
            config, st.requested, st.allocated, st.status, st.reason, arn
        )

    async def put_provisioned_concurrency(self, request: web.Request) -> web.Response:
        name, qualifier, _ = self._pc_target(request)
        value = validation.provisioned_concurrency(validation.json_body(await request.read()))
        self.limits.check_provisioned(name, f"{name}:{qualifier}", value)
        config = ProvisionedConfig(name, qualifier, value, aws_timestamp(time.time()))
        self.store.put_provisioned_config(config)
        self.provisioner.apply(name, qualifier, value)
        return render.json_response(self._pc_body(config), 202)

    async def get_provisioned_concurrency(self, request: web.Request) -> web.Response:
        if request.query.get("List") == "ALL":
            return await self.list_provisioned_concurrency(request)
        name, qualifier, _ = self._pc_target(request)
        config = self.store.provisioned_config(name, qualifier)
        return render.json_response(self._pc_body(config))

    async def delete_provisioned_concurrency(self, request: web.Request) -> web.Response:
        name, qualifier, _ = self._pc_target(request)
        self.store.provisioned_config(name, qualifier)
        self.store.delete_provisioned_config(name, qualifier)
        await self.provisioner.remove(name, qualifier)
        return render.empty(204)

    async def list_provisioned_concurrency(self, request: web.Request) -> web.Response:
        name, _ = self._function(request)
        self.store.get_function(name)
        params = validation.list_params(request.query, 50)
        page = self.store.list_provisioned_configs(name, params.after, params.limit)
        out: dict[str, object] = {
            "ProvisionedConcurrencyConfigs": [self._pc_body(c, True) for c in page.items]
        }
        if page.next_after is not None:
            out["NextMarker"] = validation.encode_marker(page.next_after)
        return render.json_response(out)

    # -------------------------------------------------------------- tags

    def _tag_target(self, request: web.Request) -> str:
        ref = parse_function_name(request.match_info["arn"], self.scope)
        if ref.qualifier is not None:
            raise InvalidParameterValueException(
                "Tags are supported on functions only, not on versions or aliases."
            )
        self.store.get_function(ref.name)
        return ref.name

    async def tag_resource(self, request: web.Request) -> web.Response:
        name = self._tag_target(request)
        tags = validation.tag_map(validation.json_body(await request.read()))
        self.store.tag_function(name, tags)
        return render.empty(204)

    async def untag_resource(self, request: web.Request) -> web.Response:
        name = self._tag_target(request)
        keys = validation.tag_keys(request.query.getall("tagKeys", []))
        self.store.untag_function(name, keys)
        return render.empty(204)

    async def list_tags(self, request: web.Request) -> web.Response:
        name = self._tag_target(request)
        return render.json_response({"Tags": dict(self.store.get_function(name).tags)})

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
    if record.state in (PENDING, FAILED):
        raise ResourceConflictException(
            "The operation cannot be performed at this time. "
            f"The function is currently in the following state: {record.state}"
        )
