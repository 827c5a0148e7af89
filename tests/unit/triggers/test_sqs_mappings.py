"""SQS event source mappings in-process against a real SQS-compatible server (moto's,
over HTTP, found through ``AWS_ENDPOINT_URL_SQS`` like any SDK client would): the API and
its states, batches, filters, partial batch failures, retries after the visibility timeout.
The function is a scripted invoker (no sandboxes here; tests/integration has the real one).
"""

from __future__ import annotations

import asyncio
import base64
import json
import socket
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from aiohttp.test_utils import TestClient, TestServer
from moto.server import ThreadedMotoServer

from lambdalet.api import TASKS_KEY
from lambdalet.app import build_api
from lambdalet.config import ServerConfig
from lambdalet.model import FunctionRecord, InvokeInput, InvokeOutput, ProvisionResult
from lambdalet.store import Store
from tests.unit.api.model_check import check_response
from tests.unit.store.helpers import ARN, ROLE, zip_of

ESM = "/2015-03-31/event-source-mappings"


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def moto_url() -> Iterator[str]:
    port = _port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


class QueueFunction:
    """Answers SQS batches: messages whose body has "fail" are reported failed the first
    ``fail_times`` times they are seen."""

    def __init__(self) -> None:
        self.batches: list[list[dict[str, Any]]] = []
        self.fail_times = 1
        self.seen: dict[str, int] = {}

    async def invoke(self, request: InvokeInput) -> InvokeOutput:
        records = json.loads(request.payload)["Records"]
        self.batches.append(records)
        failures = []
        for r in records:
            self.seen[r["body"]] = self.seen.get(r["body"], 0) + 1
            if "fail" in r["body"] and self.seen[r["body"]] <= self.fail_times:
                failures.append({"itemIdentifier": r["messageId"]})
        return InvokeOutput(json.dumps({"batchItemFailures": failures}).encode(), "$LATEST")

    async def retire(self, function_name: str, version: str | None = None) -> None:
        return None

    async def provision(
        self, config_key: str, function: FunctionRecord, count: int
    ) -> ProvisionResult:
        return ProvisionResult(count)

    async def unprovision(self, config_key: str) -> None:
        return None


@pytest.fixture
async def env(
    tmp_path: Path, moto_url: str, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[tuple[TestClient, QueueFunction, Any]]:
    monkeypatch.setenv("AWS_ENDPOINT_URL_SQS", moto_url)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    config = ServerConfig(data_dir=tmp_path)
    store = Store(config)
    fn = QueueFunction()
    client = TestClient(TestServer(build_api(config, store, fn)))
    await client.start_server()
    body = {
        "FunctionName": "fn",
        "Runtime": "provided.al2023",
        "Handler": "h",
        "Role": ROLE,
        "Code": {"ZipFile": base64.b64encode(zip_of("one")).decode()},
    }
    assert (await client.post("/2015-03-31/functions", json=body)).status == 201
    await client.app[TASKS_KEY].wait_idle()
    sqs = boto3.client("sqs", region_name="us-east-1")
    yield client, fn, sqs
    await client.close()
    store.close()


async def call(client: TestClient, op: str, method: str, path: str, body: Any = None) -> Any:
    resp = await client.request(method, path, json=body)
    raw = await resp.read()
    assert resp.status < 300, (op, resp.status, raw)
    return check_response(op, resp.status, resp.headers, raw)


async def until(predicate: Any, what: str, limit_s: float = 30.0) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + limit_s
    while not predicate():
        if loop.time() > end:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


async def state_of(client: TestClient, uuid: str) -> str:
    got = await call(client, "GetEventSourceMapping", "GET", f"{ESM}/{uuid}")
    return str(got["State"])


async def wait_state(client: TestClient, uuid: str, state: str) -> None:
    for _ in range(600):
        if await state_of(client, uuid) == state:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"mapping never reached {state}")


def queue(sqs: Any, name: str, visibility: int = 5) -> tuple[str, str]:
    url = sqs.create_queue(QueueName=name, Attributes={"VisibilityTimeout": str(visibility)})[
        "QueueUrl"
    ]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    return url, arn


def counts(sqs: Any, url: str) -> tuple[int, int]:
    a = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    return int(a["ApproximateNumberOfMessages"]), int(a["ApproximateNumberOfMessagesNotVisible"])


async def test_filters_partial_failures_and_retries(env: Any) -> None:
    client, fn, sqs = env
    url, arn = queue(sqs, "orders")
    created = await call(
        client,
        "CreateEventSourceMapping",
        "POST",
        ESM,
        {
            "EventSourceArn": arn,
            "FunctionName": "fn",
            "BatchSize": 10,
            "MaximumBatchingWindowInSeconds": 1,
            "FunctionResponseTypes": ["ReportBatchItemFailures"],
            "FilterCriteria": {"Filters": [{"Pattern": '{"body": {"kind": ["order"]}}'}]},
        },
    )
    assert created["State"] == "Creating"
    assert created["FunctionArn"] == f"{ARN}:fn"
    assert created["EventSourceMappingArn"].endswith(f":event-source-mapping:{created['UUID']}")
    await wait_state(client, created["UUID"], "Enabled")
    for body in ({"kind": "order", "n": 1}, {"kind": "order", "n": 2, "x": "fail"}):
        sqs.send_message(QueueUrl=url, MessageBody=json.dumps(body))
    sqs.send_message(QueueUrl=url, MessageBody=json.dumps({"kind": "other"}))
    sqs.send_message(QueueUrl=url, MessageBody="plain text")
    failing = json.dumps({"kind": "order", "n": 2, "x": "fail"})
    await until(lambda: fn.seen.get(failing, 0) >= 2, "the failed message to come back")
    await until(lambda: counts(sqs, url) == (0, 0), "the queue to be empty")
    bodies = [r["body"] for b in fn.batches for r in b]
    assert not any("other" in b or b == "plain text" for b in bodies)  # filtered, deleted
    assert fn.seen[json.dumps({"kind": "order", "n": 1})] == 1  # succeeded once, deleted
    retried = [r for b in fn.batches for r in b if r["body"] == failing]
    assert [r["attributes"]["ApproximateReceiveCount"] for r in retried] == ["1", "2"]
    record = fn.batches[0][0]
    assert record["eventSource"] == "aws:sqs" and record["eventSourceARN"] == arn
    assert record["awsRegion"] == "us-east-1" and "SentTimestamp" in record["attributes"]
    got = await call(client, "GetEventSourceMapping", "GET", f"{ESM}/{created['UUID']}")
    assert got["LastProcessingResult"] == "OK"


async def test_states_updates_and_listing(env: Any) -> None:
    client, fn, sqs = env
    url, arn = queue(sqs, "states")
    created = await call(
        client,
        "CreateEventSourceMapping",
        "POST",
        ESM,
        {"EventSourceArn": arn, "FunctionName": f"{ARN}:fn", "Enabled": False},
    )
    uuid = created["UUID"]
    await wait_state(client, uuid, "Disabled")
    resp = await client.post(ESM, json={"EventSourceArn": arn, "FunctionName": "fn"})
    assert resp.status == 409 and uuid in (await resp.json())["message"]
    sqs.send_message(QueueUrl=url, MessageBody="while disabled")
    up = await call(
        client,
        "UpdateEventSourceMapping",
        "PUT",
        f"{ESM}/{uuid}",
        {"Enabled": True, "BatchSize": 5},
    )
    assert (up["State"], up["BatchSize"]) == ("Enabling", 5)
    await until(lambda: fn.seen.get("while disabled") == 1, "the message to be delivered")
    await wait_state(client, uuid, "Enabled")
    up = await call(client, "UpdateEventSourceMapping", "PUT", f"{ESM}/{uuid}", {"BatchSize": 3})
    assert up["State"] == "Updating"
    await wait_state(client, uuid, "Enabled")
    listed = await call(client, "ListEventSourceMappings", "GET", f"{ESM}?FunctionName=fn")
    assert [m["UUID"] for m in listed["EventSourceMappings"]] == [uuid]
    gone = await call(client, "DeleteEventSourceMapping", "DELETE", f"{ESM}/{uuid}")
    assert gone["State"] == "Deleting"
    for _ in range(600):
        if (await client.get(f"{ESM}/{uuid}")).status == 404:
            break
        await asyncio.sleep(0.05)
    else:
        raise AssertionError("the mapping was never deleted")


@pytest.mark.parametrize(
    "body",
    [
        {"FunctionName": "fn", "EventSourceArn": "arn:aws:kinesis:us-east-1:123456789012:stream/s"},
        {
            "FunctionName": "fn",
            "EventSourceArn": "arn:aws:sqs:us-east-1:123456789012:q",
            "BatchSize": 11,
        },
        {
            "FunctionName": "fn",
            "EventSourceArn": "arn:aws:sqs:us-east-1:123456789012:q.fifo",
            "BatchSize": 20,
            "MaximumBatchingWindowInSeconds": 1,
        },
        {
            "FunctionName": "fn",
            "EventSourceArn": "arn:aws:sqs:us-east-1:123456789012:q",
            "StartingPosition": "LATEST",
        },
        {
            "FunctionName": "fn",
            "EventSourceArn": "arn:aws:sqs:us-east-1:123456789012:q",
            "FilterCriteria": {"Filters": [{"Pattern": "nope"}]},
        },
        {
            "FunctionName": "fn",
            "EventSourceArn": "arn:aws:sqs:us-east-1:123456789012:q",
            "ScalingConfig": {"MaximumConcurrency": 1},
        },
        {"FunctionName": "nope", "EventSourceArn": "arn:aws:sqs:us-east-1:123456789012:q"},
    ],
)
async def test_bad_mappings(env: Any, body: dict[str, Any]) -> None:
    client, _, _ = env
    resp = await client.post(ESM, json=body)
    assert 400 <= resp.status < 500
    assert resp.headers["X-Amzn-ErrorType"] in (
        "InvalidParameterValueException",
        "ValidationException",
        "ResourceNotFoundException",
    )
