"""Every response of issue 4's operations, in-process, checked against botocore's model.

The app runs on aiohttp's test server with a recording invoker (no sandboxes); each
response must have the documented status, only members the output shape has, and parse
with botocore's rest-json parser.
"""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import pytest
from aiohttp.test_utils import TestClient, TestServer

from lambdalet.api import TASKS_KEY
from lambdalet.api.app import HANDLERS_KEY
from lambdalet.app import build_api
from lambdalet.config import ServerConfig
from lambdalet.model import FunctionRecord, InvokeInput, InvokeOutput, ProvisionResult
from lambdalet.store import Store
from tests.unit.api.model_check import check_response
from tests.unit.store.helpers import ARN, ROLE, zip_of


class RecordingInvoker:
    def __init__(self) -> None:
        self.calls: list[InvokeInput] = []
        self.provisioned: dict[str, tuple[str, int]] = {}

    async def invoke(self, request: InvokeInput) -> InvokeOutput:
        self.calls.append(request)
        return InvokeOutput(b'{"ok":true}', request.function.version)

    async def retire(self, function_name: str, version: str | None = None) -> None:
        return None

    async def provision(
        self, config_key: str, function: FunctionRecord, count: int
    ) -> ProvisionResult:
        self.provisioned[config_key] = (function.version, count)
        return ProvisionResult(count)

    async def unprovision(self, config_key: str) -> None:
        self.provisioned.pop(config_key, None)


class Api:
    def __init__(self, client: TestClient, invoker: RecordingInvoker) -> None:
        self.client = client
        self.invoker = invoker

    async def call(
        self,
        op: str,
        method: str,
        path: str,
        body: Any = None,
        headers: dict[str, str] | None = None,
        expected: int | None = None,
    ) -> dict[str, Any]:
        """One request; the response checked against the model; botocore's parse of it."""
        data = None if body is None else json.dumps(body).encode()
        resp = await self.client.request(method, path, data=data, headers=headers)
        raw = await resp.read()
        assert resp.status < 300, (op, resp.status, raw)
        assert resp.headers["x-amzn-RequestId"]
        return check_response(op, resp.status, resp.headers, raw, expected)

    async def error(self, method: str, path: str, body: Any = None) -> tuple[int, str, str]:
        data = None if body is None else json.dumps(body).encode()
        resp = await self.client.request(method, path, data=data)
        payload = json.loads(await resp.read())
        message = payload.get("message", payload.get("Message"))
        return resp.status, resp.headers["X-Amzn-ErrorType"], message

    async def settle(self) -> None:
        await self.client.app[TASKS_KEY].wait_idle()


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[Api]:
    config = ServerConfig(data_dir=tmp_path)
    store = Store(config)
    invoker = RecordingInvoker()
    client = TestClient(TestServer(build_api(config, store, invoker)))
    await client.start_server()
    yield Api(client, invoker)
    await client.close()
    store.close()


FN = "/2015-03-31/functions"


async def create(api: Api, name: str, code: str = "one") -> None:
    body = {
        "FunctionName": name,
        "Runtime": "provided.al2023",
        "Handler": "h",
        "Role": ROLE,
        "Code": {"ZipFile": base64.b64encode(zip_of(code)).decode()},
    }
    await api.call("CreateFunction", "POST", FN, body)
    await api.settle()


async def two_versions(api: Api, name: str = "fn") -> None:
    await create(api, name)
    await api.call("PublishVersion", "POST", f"{FN}/{name}/versions", {})
    code = {"ZipFile": base64.b64encode(zip_of("two")).decode()}
    await api.call("UpdateFunctionCode", "PUT", f"{FN}/{name}/code", code)
    await api.settle()
    await api.call("PublishVersion", "POST", f"{FN}/{name}/versions", {"Description": "2nd"})


async def test_versions_and_aliases(api: Api) -> None:
    await two_versions(api)
    got = await api.call("ListVersionsByFunction", "GET", f"{FN}/fn/versions?MaxItems=2")
    assert [v["Version"] for v in got["Versions"]] == ["$LATEST", "1"]
    rest = await api.call(
        "ListVersionsByFunction", "GET", f"{FN}/fn/versions?Marker={got['NextMarker']}"
    )
    assert [v["FunctionArn"] for v in rest["Versions"]] == [f"{ARN}:fn:2"]
    body = {"Name": "live", "FunctionVersion": "1", "RoutingConfig": {}}
    body["RoutingConfig"] = {"AdditionalVersionWeights": {"2": 0.25}}
    alias = await api.call("CreateAlias", "POST", f"{FN}/fn/aliases", body)
    assert alias["AliasArn"] == f"{ARN}:fn:live"
    assert alias["RoutingConfig"] == {"AdditionalVersionWeights": {"2": 0.25}}
    await api.call("GetAlias", "GET", f"{FN}/fn/aliases/live")
    out = await api.call("Invoke", "POST", f"{FN}/fn/invocations?Qualifier=live", {})
    assert out["StatusCode"] == 200 and out["ExecutedVersion"] in ("1", "2")
    assert api.invoker.calls[-1].invoked_arn == f"{ARN}:fn:live"
    up = await api.call(
        "UpdateAlias", "PUT", f"{FN}/fn/aliases/live", {"Description": "d", "RoutingConfig": {}}
    )
    assert up["Description"] == "d"
    await api.call("CreateAlias", "POST", f"{FN}/fn/aliases", {"Name": "a", "FunctionVersion": "2"})
    page = await api.call("ListAliases", "GET", f"{FN}/fn/aliases?MaxItems=1")
    assert [a["Name"] for a in page["Aliases"]] == ["a"] and page["NextMarker"]
    await api.call("DeleteAlias", "DELETE", f"{FN}/fn/aliases/a")
    every = await api.call("ListFunctions", "GET", f"{FN}?FunctionVersion=ALL&MaxItems=2")
    assert len(every["Functions"]) == 2 and every["NextMarker"]
    # 204 as AWS answers (the model says 200; botocore accepts both)
    await api.call("DeleteFunction", "DELETE", f"{FN}/fn?Qualifier=2", expected=204)
    # an alias still uses version 1
    status, code, _ = await api.error("DELETE", f"{FN}/fn?Qualifier=1")
    assert (status, code) == (409, "ResourceConflictException")


async def test_get_function_by_alias_shows_the_alias_arn(api: Api) -> None:
    await two_versions(api)
    await api.call(
        "CreateAlias", "POST", f"{FN}/fn/aliases", {"Name": "live", "FunctionVersion": "2"}
    )
    for path in (f"{FN}/fn?Qualifier=live", f"{FN}/{quote(f'{ARN}:fn:live', safe='')}"):
        got = await api.call("GetFunction", "GET", path)
        cfg = got["Configuration"]
        assert (cfg["FunctionArn"], cfg["Version"]) == (f"{ARN}:fn:live", "2")
        assert urlsplit(got["Code"]["Location"]).path.endswith(".zip")
    for path in (f"{FN}/fn/configuration?Qualifier=live", f"{FN}/fn:live/configuration"):
        cfg = await api.call("GetFunctionConfiguration", "GET", path)
        assert (cfg["FunctionArn"], cfg["Version"]) == (f"{ARN}:fn:live", "2")
    # versions and $LATEST keep their own ARNs
    cfg = await api.call("GetFunctionConfiguration", "GET", f"{FN}/fn/configuration?Qualifier=1")
    assert (cfg["FunctionArn"], cfg["Version"]) == (f"{ARN}:fn:1", "1")
    cfg = await api.call("GetFunctionConfiguration", "GET", f"{FN}/fn/configuration")
    assert (cfg["FunctionArn"], cfg["Version"]) == (f"{ARN}:fn", "$LATEST")


async def test_event_invoke_configs(api: Api) -> None:
    await create(api, "fn")
    await create(api, "dest")
    eic = "/2019-09-25/functions/fn/event-invoke-config"
    body = {
        "MaximumRetryAttempts": 1,
        "MaximumEventAgeInSeconds": 60,
        "DestinationConfig": {"OnFailure": {"Destination": f"{ARN}:dest"}},
    }
    put = await api.call("PutFunctionEventInvokeConfig", "PUT", eic, body)
    assert put["FunctionArn"] == f"{ARN}:fn:$LATEST" and put["MaximumRetryAttempts"] == 1
    assert put["DestinationConfig"]["OnFailure"] == {"Destination": f"{ARN}:dest"}
    up = await api.call("UpdateFunctionEventInvokeConfig", "POST", eic, {"MaximumRetryAttempts": 0})
    assert (up["MaximumRetryAttempts"], up["MaximumEventAgeInSeconds"]) == (0, 60)
    await api.call("GetFunctionEventInvokeConfig", "GET", eic + "?Qualifier=%24LATEST")
    listed = await api.call("ListFunctionEventInvokeConfigs", "GET", eic + "/list")
    assert len(listed["FunctionEventInvokeConfigs"]) == 1
    await api.call("DeleteFunctionEventInvokeConfig", "DELETE", eic)
    status, code, _ = await api.error("GET", eic)
    assert (status, code) == (404, "ResourceNotFoundException")
    # an Event invoke is accepted (202, empty) once queued
    out = await api.call(
        "Invoke",
        "POST",
        f"{FN}/fn/invocations",
        {"a": 1},
        headers={"X-Amz-Invocation-Type": "Event"},
        expected=202,
    )
    assert out["StatusCode"] == 202


async def test_concurrency_and_account_settings(api: Api) -> None:
    await create(api, "fn")
    put = await api.call(
        "PutFunctionConcurrency",
        "PUT",
        "/2017-10-31/functions/fn/concurrency",
        {"ReservedConcurrentExecutions": 7},
    )
    assert put == {"ReservedConcurrentExecutions": 7, "ResponseMetadata": put["ResponseMetadata"]}
    got = await api.call("GetFunctionConcurrency", "GET", "/2019-09-30/functions/fn/concurrency")
    assert got["ReservedConcurrentExecutions"] == 7
    fn = await api.call("GetFunction", "GET", f"{FN}/fn")
    assert fn["Concurrency"] == {"ReservedConcurrentExecutions": 7}
    acct = await api.call("GetAccountSettings", "GET", "/2016-08-19/account-settings")
    assert acct["AccountLimit"]["ConcurrentExecutions"] == 1000
    assert acct["AccountLimit"]["UnreservedConcurrentExecutions"] == 993
    assert acct["AccountUsage"]["FunctionCount"] == 1
    status, code, msg = await api.error(
        "PUT", "/2017-10-31/functions/fn/concurrency", {"ReservedConcurrentExecutions": 901}
    )
    assert (status, code) == (400, "InvalidParameterValueException")
    assert msg.endswith("below its minimum value of [100].")
    await api.call("DeleteFunctionConcurrency", "DELETE", "/2017-10-31/functions/fn/concurrency")
    got = await api.call("GetFunctionConcurrency", "GET", "/2019-09-30/functions/fn/concurrency")
    assert "ReservedConcurrentExecutions" not in got


PC = "/2019-09-30/functions/fn/provisioned-concurrency"


async def test_provisioned_concurrency(api: Api) -> None:
    await two_versions(api)
    status, code, msg = await api.error(
        "PUT", PC + "?Qualifier=%24LATEST", {"ProvisionedConcurrentExecutions": 1}
    )
    assert (status, code, msg) == (
        400,
        "InvalidParameterValueException",
        "Provisioned Concurrency Configs cannot be applied to unpublished function versions.",
    )
    put = await api.call(
        "PutProvisionedConcurrencyConfig",
        "PUT",
        PC + "?Qualifier=1",
        {"ProvisionedConcurrentExecutions": 2},
    )
    assert put["Status"] in ("IN_PROGRESS", "READY")
    got = await wait_ready(api, "1")
    assert got["AllocatedProvisionedConcurrentExecutions"] == 2
    listed = await api.call("ListProvisionedConcurrencyConfigs", "GET", PC + "?List=ALL")
    assert [c["FunctionArn"] for c in listed["ProvisionedConcurrencyConfigs"]] == [f"{ARN}:fn:1"]
    # reserved below provisioned is refused
    status, code, msg = await api.error(
        "PUT", "/2017-10-31/functions/fn/concurrency", {"ReservedConcurrentExecutions": 1}
    )
    assert (status, code) == (400, "InvalidParameterValueException")
    assert msg.endswith("provisioned concurrency [2].")
    await api.call("DeleteProvisionedConcurrencyConfig", "DELETE", PC + "?Qualifier=1")
    status, code, _ = await api.error("GET", PC + "?Qualifier=1")
    assert (status, code) == (404, "ProvisionedConcurrencyConfigNotFoundException")
    assert api.invoker.provisioned == {}


async def wait_ready(api: Api, qualifier: str) -> dict[str, Any]:
    await api.client.app[HANDLERS_KEY].provisioner.wait_idle()
    got = await api.call("GetProvisionedConcurrencyConfig", "GET", f"{PC}?Qualifier={qualifier}")
    assert got["Status"] == "READY", got
    return got


async def test_provisioned_concurrency_on_a_weighted_alias_warms_both_versions(api: Api) -> None:
    await two_versions(api)
    body = {
        "Name": "live",
        "FunctionVersion": "1",
        "RoutingConfig": {"AdditionalVersionWeights": {"2": 0.5}},
    }
    await api.call("CreateAlias", "POST", f"{FN}/fn/aliases", body)
    await api.call(
        "PutProvisionedConcurrencyConfig",
        "PUT",
        PC + "?Qualifier=live",
        {"ProvisionedConcurrentExecutions": 4},
    )
    got = await wait_ready(api, "live")
    assert got["AllocatedProvisionedConcurrentExecutions"] == 4
    assert api.invoker.provisioned == {"fn:live@1": ("1", 2), "fn:live@2": ("2", 2)}
    # the weights change: the split follows
    await api.call(
        "UpdateAlias",
        "PUT",
        f"{FN}/fn/aliases/live",
        {"RoutingConfig": {"AdditionalVersionWeights": {"2": 0.25}}},
    )
    await wait_ready(api, "live")
    assert api.invoker.provisioned == {"fn:live@1": ("1", 3), "fn:live@2": ("2", 1)}
    # all on one version: the other's environments go
    await api.call("UpdateAlias", "PUT", f"{FN}/fn/aliases/live", {"RoutingConfig": {}})
    await wait_ready(api, "live")
    assert api.invoker.provisioned == {"fn:live@1": ("1", 4)}
    await api.call("DeleteAlias", "DELETE", f"{FN}/fn/aliases/live")
    assert api.invoker.provisioned == {}


async def test_tags(api: Api) -> None:
    await create(api, "fn")
    res = f"/2017-03-31/tags/{quote(f'{ARN}:fn', safe='')}"
    await api.call("TagResource", "POST", res, {"Tags": {"a": "1", "b": "2"}})
    await api.call("UntagResource", "DELETE", res + "?tagKeys=a")
    got = await api.call("ListTags", "GET", res)
    assert got["Tags"] == {"b": "2"}
    status, code, _ = await api.error("GET", f"/2017-03-31/tags/{quote(f'{ARN}:fn:1', safe='')}")
    assert (status, code) == (400, "InvalidParameterValueException")
