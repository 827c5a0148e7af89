"""A function's settings: asynchronous invocation configs, reserved and provisioned
concurrency, account settings, tags."""

from __future__ import annotations

import time

from aiohttp import web

from lambdalet.api import render, shapes, validation
from lambdalet.api.arns import parse_function_name
from lambdalet.api.handler_base import HandlerBase
from lambdalet.errors import InvalidParameterValueException
from lambdalet.model import LATEST, FunctionRecord
from lambdalet.store import aws_timestamp
from lambdalet.store.records import EventInvokeConfig, EventInvokePatch, ProvisionedConfig


class SettingsOps(HandlerBase):
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
        items = [self._pc_body(c, True) for c in page.items]
        return render.json_response(
            shapes.paged("ProvisionedConcurrencyConfigs", items, page.next_after)
        )

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
