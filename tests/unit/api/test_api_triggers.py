"""Resource policies, function URL configurations and URL requests, in-process: every
response checked against botocore's model; URL requests through the real middleware with
an invoker that answers as a test says."""

from __future__ import annotations

import base64
import io
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from lambdalet.api import TASKS_KEY
from lambdalet.app import build_api
from lambdalet.config import ServerConfig
from lambdalet.errors import LambdaApiError, TooManyRequestsException
from lambdalet.model import FunctionRecord, InvokeInput, InvokeOutput, ProvisionResult
from lambdalet.store import Store
from tests.unit.api.model_check import check_response
from tests.unit.store.helpers import ARN, ROLE, zip_of

FN = "/2015-03-31/functions"
URL = "/2021-10-31/functions"


class ScriptedInvoker:
    def __init__(self) -> None:
        self.calls: list[InvokeInput] = []
        self.answer: InvokeOutput | LambdaApiError = InvokeOutput(b'{"ok":true}', "$LATEST")

    async def invoke(self, request: InvokeInput) -> InvokeOutput:
        self.calls.append(request)
        if isinstance(self.answer, LambdaApiError):
            raise self.answer
        return self.answer

    async def retire(self, function_name: str, version: str | None = None) -> None:
        return None

    async def provision(
        self, config_key: str, function: FunctionRecord, count: int
    ) -> ProvisionResult:
        return ProvisionResult(count)

    async def unprovision(self, config_key: str) -> None:
        return None


class Api:
    def __init__(self, client: TestClient, invoker: ScriptedInvoker) -> None:
        self.client = client
        self.invoker = invoker

    async def call(
        self, op: str, method: str, path: str, body: Any = None, expected: int | None = None
    ) -> dict[str, Any]:
        data = None if body is None else json.dumps(body).encode()
        resp = await self.client.request(method, path, data=data)
        raw = await resp.read()
        assert resp.status < 300, (op, resp.status, raw)
        return check_response(op, resp.status, resp.headers, raw, expected)

    async def error(self, method: str, path: str, body: Any = None) -> tuple[int, str, str]:
        data = None if body is None else json.dumps(body).encode()
        resp = await self.client.request(method, path, data=data)
        payload = json.loads(await resp.read())
        return (
            resp.status,
            resp.headers["X-Amzn-ErrorType"],
            payload.get("message") or payload.get("Message"),
        )


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[Api]:
    config = ServerConfig(data_dir=tmp_path)
    store = Store(config)
    invoker = ScriptedInvoker()
    client = TestClient(TestServer(build_api(config, store, invoker)))
    await client.start_server()
    a = Api(client, invoker)
    body = {
        "FunctionName": "fn",
        "Runtime": "provided.al2023",
        "Handler": "h",
        "Role": ROLE,
        "Code": {"ZipFile": base64.b64encode(zip_of("one")).decode()},
        "Publish": True,
    }
    await a.call("CreateFunction", "POST", FN, body)
    await client.app[TASKS_KEY].wait_idle()
    await a.call(
        "CreateAlias", "POST", f"{FN}/fn/aliases", {"Name": "live", "FunctionVersion": "1"}
    )
    yield a
    await client.close()
    store.close()


PUBLIC = {
    "StatementId": "FunctionURLAllowPublicAccess",
    "Action": "lambda:InvokeFunctionUrl",
    "Principal": "*",
    "FunctionUrlAuthType": "NONE",
}


async def test_permissions(api: Api) -> None:
    status, code, _ = await api.error("GET", f"{FN}/fn/policy")
    assert (status, code) == (404, "ResourceNotFoundException")
    added = await api.call("AddPermission", "POST", f"{FN}/fn/policy", PUBLIC)
    st = json.loads(added["Statement"])
    assert st["Resource"] == f"{ARN}:fn" and st["Principal"] == "*"
    s3 = {"StatementId": "s3", "Action": "lambda:InvokeFunction", "Principal": "s3.amazonaws.com"}
    await api.call("AddPermission", "POST", f"{FN}/fn/policy", s3)
    got = await api.call("GetPolicy", "GET", f"{FN}/fn/policy")
    doc = json.loads(got["Policy"])
    assert (doc["Version"], doc["Id"]) == ("2012-10-17", "default")
    assert [s["Sid"] for s in doc["Statement"]] == ["FunctionURLAllowPublicAccess", "s3"]
    status, code, message = await api.error("POST", f"{FN}/fn/policy", s3)
    assert (status, code) == (409, "ResourceConflictException")
    assert message.startswith("The statement id (s3) provided already exists.")
    stale = {**s3, "StatementId": "s4", "RevisionId": "stale"}
    status, code, _ = await api.error("POST", f"{FN}/fn/policy", stale)
    assert (status, code) == (412, "PreconditionFailedException")
    ok = {**s3, "StatementId": "s4", "RevisionId": got["RevisionId"]}
    await api.call("AddPermission", "POST", f"{FN}/fn/policy", ok)
    await api.call("RemovePermission", "DELETE", f"{FN}/fn/policy/s4", expected=204)
    status, code, _ = await api.error("DELETE", f"{FN}/fn/policy/s4")
    assert (status, code) == (404, "ResourceNotFoundException")
    status, code, _ = await api.error("DELETE", f"{FN}/fn/policy/s3?RevisionId=stale")
    assert (status, code) == (412, "PreconditionFailedException")
    # per qualifier: the alias has its own policy, $LATEST none at all
    alias = await api.call("AddPermission", "POST", f"{FN}/fn/policy?Qualifier=live", s3)
    assert json.loads(alias["Statement"])["Resource"] == f"{ARN}:fn:live"
    live = json.loads(
        (await api.call("GetPolicy", "GET", f"{FN}/fn/policy?Qualifier=live"))["Policy"]
    )
    assert [s["Sid"] for s in live["Statement"]] == ["s3"]
    status, code, _ = await api.error("POST", f"{FN}/fn/policy?Qualifier=%24LATEST", s3)
    assert (status, code) == (400, "InvalidParameterValueException")
    status, code, _ = await api.error("POST", f"{FN}/nope/policy", s3)
    assert (status, code) == (404, "ResourceNotFoundException")
    status, code, _ = await api.error("POST", f"{FN}/fn/policy?Qualifier=gone", s3)
    assert (status, code) == (404, "ResourceNotFoundException")


async def test_url_configs(api: Api) -> None:
    created = await api.call(
        "CreateFunctionUrlConfig", "POST", f"{URL}/fn/url", {"AuthType": "NONE"}
    )
    assert created["FunctionArn"] == f"{ARN}:fn" and created["InvokeMode"] == "BUFFERED"
    host = f"http://{api.client.host}:{api.client.port}/lambda-url/"
    assert created["FunctionUrl"].startswith(host) and created["FunctionUrl"].endswith("/")
    status, code, _ = await api.error("POST", f"{URL}/fn/url", {"AuthType": "NONE"})
    assert (status, code) == (409, "ResourceConflictException")
    live = await api.call(
        "CreateFunctionUrlConfig",
        "POST",
        f"{URL}/fn/url?Qualifier=live",
        {"AuthType": "AWS_IAM", "InvokeMode": "RESPONSE_STREAM"},
    )
    assert live["FunctionArn"] == f"{ARN}:fn:live" and live["FunctionUrl"] != created["FunctionUrl"]
    got = await api.call("GetFunctionUrlConfig", "GET", f"{URL}/fn/url?Qualifier=live")
    assert got["InvokeMode"] == "RESPONSE_STREAM" and "LastModifiedTime" in got
    up = await api.call(
        "UpdateFunctionUrlConfig",
        "PUT",
        f"{URL}/fn/url",
        {"Cors": {"AllowOrigins": ["*"], "MaxAge": 10}},
    )
    assert up["AuthType"] == "NONE" and up["Cors"] == {"AllowOrigins": ["*"], "MaxAge": 10}
    page = await api.call("ListFunctionUrlConfigs", "GET", f"{URL}/fn/urls?MaxItems=1")
    assert [c["FunctionArn"] for c in page["FunctionUrlConfigs"]] == [f"{ARN}:fn"]
    rest = await api.call(
        "ListFunctionUrlConfigs", "GET", f"{URL}/fn/urls?Marker={page['NextMarker']}"
    )
    assert [c["FunctionArn"] for c in rest["FunctionUrlConfigs"]] == [f"{ARN}:fn:live"]
    assert "NextMarker" not in rest
    status, code, _ = await api.error("POST", f"{URL}/fn/url?Qualifier=1", {"AuthType": "NONE"})
    assert (status, code) == (400, "ValidationException")
    await api.call(
        "DeleteFunctionUrlConfig", "DELETE", f"{URL}/fn/url?Qualifier=live", expected=204
    )
    status, code, _ = await api.error("GET", f"{URL}/fn/url?Qualifier=live")
    assert (status, code) == (404, "ResourceNotFoundException")
    # deleting the alias takes its URL with it
    await api.call(
        "CreateFunctionUrlConfig", "POST", f"{URL}/fn/url?Qualifier=live", {"AuthType": "NONE"}
    )
    await api.call("DeleteAlias", "DELETE", f"{FN}/fn/aliases/live", expected=204)
    page = await api.call("ListFunctionUrlConfigs", "GET", f"{URL}/fn/urls")
    assert len(page["FunctionUrlConfigs"]) == 1


async def _url(api: Api, **body: Any) -> str:
    created = await api.call("CreateFunctionUrlConfig", "POST", f"{URL}/fn/url", body)
    return str(created["FunctionUrl"]).split(str(api.client.port), 1)[1]


async def test_url_requests(api: Api) -> None:
    path = await _url(api, AuthType="NONE", Cors={"AllowOrigins": ["https://a.example"]})
    resp = await api.client.get(path + "hello?x=1")
    assert resp.status == 403
    body = await resp.json()
    assert body["Message"].startswith("Forbidden.") and "add-permission" in body["lambdalet"]
    assert api.invoker.calls == []
    await api.call("AddPermission", "POST", f"{FN}/fn/policy", PUBLIC)
    api.invoker.answer = InvokeOutput(
        json.dumps({"statusCode": 201, "body": "made", "cookies": ["a=1"]}).encode(), "$LATEST"
    )
    resp = await api.client.post(
        path + "hello?x=1",
        data=b"\x00\xff",
        headers={"Origin": "https://a.example", "Content-Type": "application/octet-stream"},
    )
    assert (resp.status, await resp.read()) == (201, b"made")
    assert resp.headers["Set-Cookie"] == "a=1"
    assert resp.headers["Access-Control-Allow-Origin"] == "https://a.example"
    event = json.loads(api.invoker.calls[-1].payload)
    assert (event["rawPath"], event["rawQueryString"]) == ("/hello", "x=1")
    assert event["isBase64Encoded"] and base64.b64decode(event["body"]) == b"\x00\xff"
    assert event["requestContext"]["requestId"] == api.invoker.calls[-1].request_id
    assert event["requestContext"]["accountId"] == "anonymous"
    assert api.invoker.calls[-1].invoked_arn == f"{ARN}:fn"
    # function error → 502; throttled → 429
    api.invoker.answer = InvokeOutput(
        b'{"errorMessage":"x"}', "$LATEST", function_error="Unhandled"
    )
    resp = await api.client.get(path)
    assert (resp.status, await resp.text()) == (502, "Internal Server Error")
    api.invoker.answer = TooManyRequestsException(
        "ReservedFunctionConcurrentInvocationLimitExceeded"
    )
    assert (await api.client.get(path)).status == 429
    # too large a request
    api.invoker.answer = InvokeOutput(b"{}", "$LATEST")
    calls = len(api.invoker.calls)
    resp = await api.client.post(path, data=io.BytesIO(b"x" * (5 * 1024 * 1024)))
    assert resp.status == 413 and len(api.invoker.calls) == calls
    # unknown URL id
    resp = await api.client.get("/lambda-url/" + "b" * 32 + "/")
    assert resp.status == 403


async def test_iam_urls_need_a_signature(api: Api) -> None:
    path = await _url(api, AuthType="AWS_IAM")
    assert (await api.client.get(path)).status == 403
    import botocore.auth
    import botocore.awsrequest
    import botocore.credentials

    url = f"http://{api.client.host}:{api.client.port}{path}"
    req = botocore.awsrequest.AWSRequest(method="GET", url=url)
    botocore.auth.SigV4Auth(
        botocore.credentials.Credentials("AKIDEXAMPLE", "secret"), "lambda", "us-east-1"
    ).add_auth(req)
    resp = await api.client.get(path, headers=dict(req.headers))
    assert resp.status == 200
    event = json.loads(api.invoker.calls[-1].payload)
    assert event["requestContext"]["authorizer"]["iam"]["accessKey"] == "AKIDEXAMPLE"
    assert event["requestContext"]["accountId"] == "123456789012"


async def test_with_server_credentials_urls_skip_api_signing_and_iam_urls_verify(
    tmp_path: Path,
) -> None:
    import botocore.auth
    import botocore.awsrequest
    import botocore.credentials

    config = ServerConfig(data_dir=tmp_path, credentials=(("AKIDGOOD", "right-secret"),))
    store = Store(config)
    invoker = ScriptedInvoker()
    client = TestClient(TestServer(build_api(config, store, invoker)))
    await client.start_server()
    base = f"http://{client.host}:{client.port}"

    def signed(method: str, path: str, secret: str, body: bytes = b"") -> dict[str, str]:
        req = botocore.awsrequest.AWSRequest(method=method, url=base + path, data=body)
        creds = botocore.credentials.Credentials("AKIDGOOD", secret)
        botocore.auth.SigV4Auth(creds, "lambda", "us-east-1").add_auth(req)
        return dict(req.headers)

    try:
        body = json.dumps(
            {
                "FunctionName": "fn",
                "Runtime": "provided.al2023",
                "Handler": "h",
                "Role": ROLE,
                "Code": {"ZipFile": base64.b64encode(zip_of("one")).decode()},
            }
        ).encode()
        assert (await client.post(FN, data=body)).status == 403  # the API wants signatures
        resp = await client.post(FN, data=body, headers=signed("POST", FN, "right-secret", body))
        assert resp.status == 201
        await client.app[TASKS_KEY].wait_idle()
        url_ids = {}
        create = json.dumps({"AuthType": "NONE"}).encode()
        path = f"{URL}/fn/url"
        resp = await client.post(
            path, data=create, headers=signed("POST", path, "right-secret", create)
        )
        url_ids["NONE"] = (await resp.json())["FunctionUrl"].split(str(client.port), 1)[1]
        perm = json.dumps(PUBLIC).encode()
        ppath = f"{FN}/fn/policy"
        resp = await client.post(
            ppath, data=perm, headers=signed("POST", ppath, "right-secret", perm)
        )
        assert resp.status == 201
        # a public URL answers unsigned requests although the API requires signatures
        assert (await client.get(url_ids["NONE"] + "x")).status == 200
        # an IAM URL checks the signature with the server's credentials
        up = json.dumps({"AuthType": "AWS_IAM"}).encode()
        resp = await client.put(path, data=up, headers=signed("PUT", path, "right-secret", up))
        assert resp.status == 200
        target = url_ids["NONE"] + "x"
        assert (await client.get(target)).status == 403
        bad = await client.get(target, headers=signed("GET", target, "wrong-secret"))
        assert bad.status == 403
        good = await client.get(target, headers=signed("GET", target, "right-secret"))
        assert good.status == 200
    finally:
        await client.close()
        store.close()


async def test_template_routes_answer_like_api_gateway(api: Api) -> None:
    apis = {
        "Apis": [
            {
                "Id": "Rest",
                "Kind": "Api",
                "Stage": "v1",
                "Routes": [{"Path": "/items/{id}", "Method": "GET", "FunctionName": "fn"}],
            },
            {
                "Id": "Http",
                "Kind": "HttpApi",
                "Routes": [{"Path": "$default", "Method": "ANY", "FunctionName": "fn"}],
            },
        ]
    }
    resp = await api.client.put("/lambdalet/triggers/stacks/shop/apis", json=apis)
    assert resp.status == 200
    endpoints = {e["api"]: e["url"] for e in (await resp.json())["Endpoints"]}
    host = f"http://{api.client.host}:{api.client.port}"
    assert endpoints == {
        "Rest": f"{host}/lambdalet/stacks/shop/Rest/v1/items/{{id}}",
        "Http": f"{host}/lambdalet/stacks/shop/Http/",
    }
    rest, http = "/lambdalet/stacks/shop/Rest/v1/items/7", "/lambdalet/stacks/shop/Http/any"
    api.invoker.answer = InvokeOutput(b'{"statusCode": 201, "body": "ok"}', "$LATEST")
    got = await api.client.get(rest)
    assert (got.status, await got.text()) == (201, "ok")
    event = json.loads(api.invoker.calls[-1].payload)
    assert event["pathParameters"] == {"id": "7"} and event["requestContext"]["stage"] == "v1"
    # a bare value: REST refuses it (502), payload 2.0 infers a 200
    api.invoker.answer = InvokeOutput(b'"hello"', "$LATEST")
    got = await api.client.get(rest)
    assert (got.status, await got.json()) == (502, {"message": "Internal server error"})
    got = await api.client.post(http, data=b"x")
    assert (got.status, await got.text()) == (200, '"hello"')
    # function errors: REST 502, HTTP API 500; throttles 429
    api.invoker.answer = InvokeOutput(b"{}", "$LATEST", function_error="Unhandled")
    assert (await api.client.get(rest)).status == 502
    got = await api.client.get(http)
    assert (got.status, await got.json()) == (500, {"message": "Internal Server Error"})
    api.invoker.answer = TooManyRequestsException(
        "ReservedFunctionConcurrentInvocationLimitExceeded"
    )
    assert (await api.client.get(http)).status == 429
    # wrong stage, unknown API
    assert (await api.client.get("/lambdalet/stacks/shop/Rest/prod/items/7")).status == 403
    assert (await api.client.get("/lambdalet/stacks/shop/Nope/x")).status == 404
    # a redeploy without APIs stops serving them
    assert (
        await api.client.put("/lambdalet/triggers/stacks/shop/apis", json={"Apis": []})
    ).status == 200
    assert (await api.client.get(http)).status == 404
