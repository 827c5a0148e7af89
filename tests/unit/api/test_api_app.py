"""The aiohttp app in-process: middleware, request ids, limits, shutdown of background tasks."""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer

from lambdalet.api import TASKS_KEY
from lambdalet.api.app import CLIENT_MAX_SIZE, HANDLERS_KEY
from lambdalet.app import build_api
from lambdalet.config import ServerConfig
from lambdalet.model import FunctionRecord, InvokeInput, InvokeOutput, ProvisionResult
from lambdalet.store import Store


class HangingInvoker:
    def __init__(self) -> None:
        self.started = asyncio.Event()
        self.cancelled = False

    async def invoke(self, request: InvokeInput) -> InvokeOutput:
        self.started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            self.cancelled = True
            raise
        raise AssertionError("unreachable")

    async def retire(self, function_name: str, version: str | None = None) -> None:
        return None

    async def provision(
        self, config_key: str, function: FunctionRecord, count: int
    ) -> ProvisionResult:
        return ProvisionResult(count)

    async def unprovision(self, config_key: str) -> None:
        return None


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[tuple[TestClient, HangingInvoker]]:
    config = ServerConfig(data_dir=tmp_path)
    store = Store(config)
    invoker = HangingInvoker()
    client = TestClient(TestServer(build_api(config, store, invoker)))
    await client.start_server()
    yield client, invoker
    await client.close()
    store.close()


async def test_oversize_body_is_an_aws_413(api: tuple[TestClient, HangingInvoker]) -> None:
    client, _ = api
    big = io.BytesIO(b"x" * (CLIENT_MAX_SIZE + 1))
    resp = await client.post("/2015-03-31/functions", data=big)
    assert resp.status == 413
    assert resp.headers["X-Amzn-ErrorType"] == "RequestEntityTooLargeException"
    assert resp.headers["x-amzn-RequestId"]
    body = json.loads(await resp.read())
    assert body["message"] == (
        "Request must be smaller than 69905067 bytes for the CreateFunction operation"
    )


async def test_unknown_operation_and_method(api: tuple[TestClient, HangingInvoker]) -> None:
    client, _ = api
    for method, path in (("GET", "/2099-01-01/whatever"), ("PUT", "/2015-03-31/functions")):
        resp = await client.request(method, path)
        assert resp.status == 404
        assert resp.headers["X-Amzn-ErrorType"] == "UnknownOperationException"
        assert json.loads(await resp.read()) == {"Type": "User", "message": "Unknown operation"}


async def test_event_attempts_are_cancelled_at_shutdown_and_stay_queued(
    api: tuple[TestClient, HangingInvoker], tmp_path: Path
) -> None:
    client, invoker = api
    zip_b64 = "UEsFBgAAAAAAAAAAAAAAAAAAAAAAAA=="  # an empty zip
    resp = await client.post(
        "/2015-03-31/functions",
        json={
            "FunctionName": "f",
            "Runtime": "provided.al2023",
            "Handler": "h",
            "Role": "arn:aws:iam::123456789012:role/r",
            "Code": {"ZipFile": zip_b64},
        },
    )
    assert resp.status == 201
    tasks = client.app[TASKS_KEY]
    await tasks.wait_idle()  # the function settles to Active
    resp = await client.post(
        "/2015-03-31/functions/f/invocations", headers={"X-Amz-Invocation-Type": "Event"}
    )
    assert resp.status == 202
    await asyncio.wait_for(invoker.started.wait(), 5)
    store = client.app[HANDLERS_KEY].store
    assert store.queued_events() == 1
    await client.close()
    # cancelled at shutdown, and still queued: it runs again after a restart
    assert invoker.cancelled and len(tasks) == 0
    assert store.queued_events() == 1
