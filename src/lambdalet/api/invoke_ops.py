"""Invoke and InvokeWithResponseStream."""

from __future__ import annotations

from aiohttp import web

from lambdalet.api import render, validation
from lambdalet.api.handler_base import REQUEST_ID_KEY, HandlerBase
from lambdalet.control.streaming import invoke_streaming
from lambdalet.errors import ResourceConflictException
from lambdalet.model import FunctionRecord, InvokeInput
from lambdalet.store.records import FAILED, PENDING, AliasRecord, NewEvent, pick_version


class InvokeOps(HandlerBase):
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
        invocation = self._invocation(record, alias, qualifier, request_id, payload, params)
        return render.invoke_output(await self.invoker.invoke(invocation))

    async def invoke_with_response_stream(self, request: web.Request) -> web.StreamResponse:
        name, qualifier = self._function(request)
        params = validation.invoke_stream_params(request.headers)
        payload = validation.invoke_payload(await request.read(), "RequestResponse")
        record, alias = self.store.resolve(name, qualifier)
        _check_invocable(record)
        if params.invocation_type == "DryRun":
            return render.empty(204)
        invocation = self._invocation(
            record, alias, qualifier, request[REQUEST_ID_KEY], payload, params
        )
        streamed = await invoke_streaming(self.invoker, invocation)
        return await render.invoke_stream(request, streamed, record.version, invocation.request_id)

    def _invocation(
        self,
        record: FunctionRecord,
        alias: AliasRecord | None,
        qualifier: str | None,
        request_id: str,
        payload: bytes,
        params: validation.InvokeParams,
    ) -> InvokeInput:
        """What the invoker runs: the version an alias's weights pick, and the ARN invoked."""
        if alias is not None and alias.weights:
            version = pick_version(alias, self.draw())
            if version != record.version:
                record = self.store.get_function(record.name, version)
        return InvokeInput(
            function=record,
            invoked_arn=f"{record.arn}:{qualifier}" if qualifier else record.arn,
            request_id=request_id,
            payload=payload,
            client_context=params.client_context,
            log_tail=params.log_tail,
        )


def _check_invocable(record: FunctionRecord) -> None:
    if record.state in (PENDING, FAILED):
        raise ResourceConflictException(
            "The operation cannot be performed at this time. "
            f"The function is currently in the following state: {record.state}"
        )
