"""The control plane (API + store) on a real port, driven by real boto3 and the real AWS CLI.

The invoke path is replaced by a recording double; the real one is tested end to end elsewhere.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import io
import json
import os
import subprocess
import threading
import time
import urllib.error
import urllib.request
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from aiohttp import web
from botocore.config import Config
from botocore.exceptions import ClientError

from lambdalet.app import build_api
from lambdalet.config import ServerConfig
from lambdalet.model import FunctionRecord, InvokeInput, InvokeOutput, ProvisionResult
from lambdalet.store.sqlite import Store
from tests.integration.harness import aws_cli

ROLE = "arn:aws:iam::123456789012:role/lambda-role"
ARN = "arn:aws:lambda:us-east-1:123456789012"


def make_zip(files: dict[str, str], executable: tuple[str, ...] = ()) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, text in files.items():
            info = zipfile.ZipInfo(name, date_time=(2024, 1, 1, 0, 0, 0))
            info.external_attr = (0o100000 | (0o755 if name in executable else 0o644)) << 16
            info.create_system = 3
            zf.writestr(info, text)
    return buf.getvalue()


APP_ZIP = make_zip({"app.py": "def handler(event, context):\n    return event\n"})


class RecordingInvoker:
    """Answers invocations from the request itself and records what the API asked for."""

    def __init__(self) -> None:
        self.calls: list[InvokeInput] = []
        self.retired: list[str] = []
        self.provisioned: dict[str, int] = {}

    async def invoke(self, request: InvokeInput) -> InvokeOutput:
        self.calls.append(request)
        event = json.loads(request.payload)
        if isinstance(event, dict) and event.get("crash"):
            raise RuntimeError("secret internal detail")
        if isinstance(event, dict) and event.get("fail"):
            return InvokeOutput(
                payload=b'{"errorMessage":"boom","errorType":"ValueError"}',
                executed_version=request.function.version,
                function_error="Unhandled",
            )
        log = base64.b64encode(b"START RequestId: x\n").decode() if request.log_tail else None
        body = {"event": event, "context": request.client_context}
        return InvokeOutput(
            payload=json.dumps(body).encode(),
            executed_version=request.function.version,
            log_result=log,
        )

    async def retire(self, function_name: str, version: str | None = None) -> None:
        self.retired.append(function_name)

    async def provision(
        self, config_key: str, function: FunctionRecord, count: int
    ) -> ProvisionResult:
        self.provisioned[config_key] = count
        return ProvisionResult(count)

    async def unprovision(self, config_key: str) -> None:
        self.provisioned.pop(config_key, None)


class ApiServer:
    """build_api on 127.0.0.1 (a free port) in its own thread and event loop."""

    def __init__(self, data_dir: Path, settle_delay_s: float = 0.0) -> None:
        self.config = ServerConfig(data_dir=data_dir)
        self.settle_delay_s = settle_delay_s
        self.invoker = RecordingInvoker()
        self._ready = threading.Event()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.port = 0

    def __enter__(self) -> ApiServer:
        self._thread.start()
        assert self._ready.wait(10), "server did not start"
        return self

    def __exit__(self, *_: object) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _run(self) -> None:
        loop = self._loop
        asyncio.set_event_loop(loop)
        store = Store(self.config)
        app = build_api(self.config, store, self.invoker, settle_delay_s=self.settle_delay_s)
        runner = web.AppRunner(app)
        loop.run_until_complete(runner.setup())
        site = web.TCPSite(runner, "127.0.0.1", 0)
        loop.run_until_complete(site.start())
        self.port = runner.addresses[0][1]
        self._ready.set()
        loop.run_forever()
        loop.run_until_complete(runner.cleanup())
        store.close()
        loop.close()


def client(url: str, validate: bool = True) -> Any:
    return boto3.client(
        "lambda",
        endpoint_url=url,
        region_name="us-east-1",
        aws_access_key_id="AKIDTEST",
        aws_secret_access_key="secret",
        config=Config(retries={"max_attempts": 1}, parameter_validation=validate),
    )


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    with ApiServer(tmp_path_factory.mktemp("cp")) as s:
        yield s


@pytest.fixture(scope="module")
def lam(server: ApiServer) -> Any:
    return client(server.url)


@pytest.fixture(scope="module")
def raw(server: ApiServer) -> Any:
    """A client that leaves validation to the server."""
    return client(server.url, validate=False)


_counter = iter(range(10**6))


def fresh(prefix: str = "fn") -> str:
    return f"{prefix}-{next(_counter)}-{os.getpid()}"


def create(lam: Any, name: str | None = None, **kw: Any) -> dict[str, Any]:
    args: dict[str, Any] = {
        "FunctionName": name or fresh(),
        "Runtime": "python3.12",
        "Role": ROLE,
        "Handler": "app.handler",
        "Code": {"ZipFile": APP_ZIP},
    }
    args.update(kw)
    out: dict[str, Any] = lam.create_function(**args)
    lam.get_waiter("function_active_v2").wait(
        FunctionName=args["FunctionName"], WaiterConfig={"Delay": 0.05, "MaxAttempts": 100}
    )
    return out


def error_of(call: Callable[[], Any]) -> tuple[int, str, str]:
    with pytest.raises(ClientError) as info:
        call()
    err = info.value.response
    return (
        err["ResponseMetadata"]["HTTPStatusCode"],
        err["Error"]["Code"],
        err["Error"]["Message"],
    )


def wait_for(pred: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.01)


# ----------------------------------------------------------------- functions


def test_create_function_answers_pending_then_becomes_active(lam: Any, server: ApiServer) -> None:
    name = fresh()
    out = lam.create_function(
        FunctionName=name,
        Runtime="python3.12",
        Role=ROLE,
        Handler="app.handler",
        Code={"ZipFile": APP_ZIP},
        Environment={"Variables": {"GREETING": "hi"}},
        Description="hello",
        MemorySize=256,
        Timeout=10,
        EphemeralStorage={"Size": 1024},
        Architectures=["x86_64"],
        TracingConfig={"Mode": "Active"},
        Tags={"team": "core"},
    )
    assert out["ResponseMetadata"]["HTTPStatusCode"] == 201
    assert out["ResponseMetadata"]["HTTPHeaders"]["x-amzn-requestid"]
    assert out["State"] == "Pending"
    assert out["StateReasonCode"] == "Creating"
    assert out["FunctionArn"] == f"{ARN}:function:{name}"
    assert out["Version"] == "$LATEST"
    assert out["PackageType"] == "Zip"
    assert out["CodeSha256"] == base64.b64encode(hashlib.sha256(APP_ZIP).digest()).decode()
    assert out["CodeSize"] == len(APP_ZIP)
    assert out["Environment"] == {"Variables": {"GREETING": "hi"}}
    assert out["MemorySize"] == 256 and out["Timeout"] == 10
    assert out["EphemeralStorage"] == {"Size": 1024}
    assert out["TracingConfig"] == {"Mode": "Active"}
    assert out["LoggingConfig"] == {"LogFormat": "Text", "LogGroup": f"/aws/lambda/{name}"}
    assert out["SnapStart"] == {"ApplyOn": "None", "OptimizationStatus": "Off"}
    assert out["RuntimeVersionConfig"]["RuntimeVersionArn"].startswith(
        "arn:aws:lambda:us-east-1::runtime:"
    )
    assert len(out["LastModified"]) == 28 and out["LastModified"].endswith("+0000")
    lam.get_waiter("function_active_v2").wait(
        FunctionName=name, WaiterConfig={"Delay": 0.05, "MaxAttempts": 100}
    )
    got = lam.get_function(FunctionName=name)
    assert got["Configuration"]["State"] == "Active"
    assert got["Configuration"]["LastUpdateStatus"] == "Successful"
    assert "StateReasonCode" not in got["Configuration"]
    assert got["Tags"] == {"team": "core"}
    assert got["Code"]["RepositoryType"] == "S3"
    with urllib.request.urlopen(got["Code"]["Location"]) as resp:
        assert resp.read() == APP_ZIP


def test_function_name_forms(lam: Any) -> None:
    name = create(lam)["FunctionName"]
    for form in (
        name,
        f"{name}:$LATEST",
        f"{ARN}:function:{name}",
        f"123456789012:function:{name}",
    ):
        assert lam.get_function_configuration(FunctionName=form)["FunctionName"] == name
    assert lam.get_function(FunctionName=name, Qualifier="$LATEST")["Configuration"]["Version"] == (
        "$LATEST"
    )
    status, code, msg = error_of(lambda: lam.get_function(FunctionName=name, Qualifier="7"))
    assert (status, code, msg) == (
        404,
        "ResourceNotFoundException",
        f"Function not found: {ARN}:function:{name}:7",
    )
    status, code, msg = error_of(lambda: lam.get_function_configuration(FunctionName="nope-x"))
    assert (status, code, msg) == (
        404,
        "ResourceNotFoundException",
        f"Function not found: {ARN}:function:nope-x",
    )


def test_reads_by_alias_show_the_alias_arn(lam: Any, server: ApiServer) -> None:
    name = create(lam)["FunctionName"]
    lam.publish_version(FunctionName=name)
    lam.create_alias(FunctionName=name, Name="live", FunctionVersion="1")
    alias_arn = f"{ARN}:function:{name}:live"
    for got in (
        lam.get_function(FunctionName=name, Qualifier="live")["Configuration"],
        lam.get_function(FunctionName=alias_arn)["Configuration"],
        lam.get_function_configuration(FunctionName=name, Qualifier="live"),
        lam.get_function_configuration(FunctionName=f"{name}:live"),
    ):
        assert (got["FunctionArn"], got["Version"]) == (alias_arn, "1")
    got = lam.get_function_configuration(FunctionName=name, Qualifier="1")
    assert got["FunctionArn"] == f"{ARN}:function:{name}:1"


def test_provisioned_concurrency_on_a_weighted_alias_is_split(lam: Any, server: ApiServer) -> None:
    name = create(lam)["FunctionName"]
    lam.publish_version(FunctionName=name)
    lam.update_function_configuration(FunctionName=name, Timeout=5)
    lam.get_waiter("function_updated_v2").wait(
        FunctionName=name, WaiterConfig={"Delay": 0.05, "MaxAttempts": 100}
    )
    lam.publish_version(FunctionName=name)
    lam.create_alias(
        FunctionName=name,
        Name="live",
        FunctionVersion="1",
        RoutingConfig={"AdditionalVersionWeights": {"2": 0.4}},
    )
    lam.put_provisioned_concurrency_config(
        FunctionName=name, Qualifier="live", ProvisionedConcurrentExecutions=5
    )
    wait_for(
        lambda: (
            lam.get_provisioned_concurrency_config(FunctionName=name, Qualifier="live")["Status"]
            == "READY"
        )
    )
    mine = {k: v for k, v in server.invoker.provisioned.items() if k.startswith(f"{name}:")}
    assert mine == {f"{name}:live@1": 3, f"{name}:live@2": 2}
    lam.delete_alias(FunctionName=name, Name="live")
    assert not any(k.startswith(f"{name}:") for k in server.invoker.provisioned)


def test_duplicate_name_conflicts(lam: Any) -> None:
    name = create(lam)["FunctionName"]
    assert error_of(lambda: create(lam, name)) == (
        409,
        "ResourceConflictException",
        f"Function already exist: {name}",
    )


RESERVED_MSG = (
    "Lambda was unable to configure your environment variables because the environment variables "
    "you have provided contains reserved keys that are currently not supported for modification. "
    "Reserved keys used in this request: AWS_REGION"
)


@pytest.mark.parametrize(
    ("override", "status", "code", "message"),
    [
        (
            {"Runtime": "java21"},
            400,
            "InvalidParameterValueException",
            "1 validation error detected: Value 'java21' at 'runtime' failed to satisfy "
            "constraint: Member must satisfy enum value set: [python3.8, python3.9, python3.10, "
            "python3.11, python3.12, python3.13, python3.14, nodejs20.x, nodejs22.x, nodejs24.x, "
            "provided, provided.al2, provided.al2023]",
        ),
        ({"MemorySize": 20000}, 400, "ValidationException", "less than or equal to 10240"),
        ({"MemorySize": 64}, 400, "ValidationException", "greater than or equal to 128"),
        ({"Timeout": 901}, 400, "ValidationException", "less than or equal to 900"),
        ({"Timeout": 0}, 400, "ValidationException", "greater than or equal to 1"),
        ({"EphemeralStorage": {"Size": 100}}, 400, "ValidationException", "equal to 512"),
        ({"EphemeralStorage": {"Size": 20000}}, 400, "ValidationException", "equal to 10240"),
        (
            {"Environment": {"Variables": {"AWS_REGION": "x"}}},
            400,
            "InvalidParameterValueException",
            RESERVED_MSG,
        ),
        (
            {"Environment": {"Variables": {"1BAD": "x"}}},
            400,
            "ValidationException",
            "Map keys must satisfy constraint",
        ),
        (
            {"Environment": {"Variables": {"BIG": "x" * 4090}}},
            400,
            "InvalidParameterValueException",
            'exceeded the 4KB limit. String measured: {"BIG":"' + "x" * 4090 + '"}',
        ),
        ({"Role": "not-a-role"}, 400, "ValidationException", "at 'role' failed to satisfy"),
        ({"Role": None}, 400, "ValidationException", "Value null at 'role'"),
        ({"FunctionName": "x" * 65}, 400, "ValidationException", "less than or equal to 64"),
        ({"FunctionName": "bad/name"}, 400, "ValidationException", "regular expression"),
        (
            {"Handler": None},
            400,
            "InvalidParameterValueException",
            "Runtime and Handler are mandatory parameters for functions created with deployment "
            "packages.",
        ),
        (
            {"Layers": [f"{ARN}:layer:l{i}:1" for i in range(6)]},
            400,
            "InvalidParameterValueException",
            "Cannot reference more than 5 layers.",
        ),
        (
            {"Layers": [f"{ARN}:layer:missing:1"]},
            400,
            "InvalidParameterValueException",
            f"Layer version {ARN}:layer:missing:1 does not exist.",
        ),
        (
            {"Code": {"ZipFile": b"this is not a zip"}},
            400,
            "InvalidParameterValueException",
            "Could not unzip uploaded file. Please check your file, then try to upload again.",
        ),
        (
            {"Code": {"S3Bucket": "b", "S3Key": "k"}},
            400,
            "InvalidParameterValueException",
            "not supported",
        ),
    ],
)
def test_create_function_validation(
    raw: Any, override: dict[str, Any], status: int, code: str, message: str
) -> None:
    args: dict[str, Any] = {
        "FunctionName": fresh(),
        "Runtime": "python3.12",
        "Role": ROLE,
        "Handler": "app.handler",
        "Code": {"ZipFile": APP_ZIP},
    }
    args.update(override)
    args = {k: v for k, v in args.items() if v is not None}
    got_status, got_code, got_message = error_of(lambda: raw.create_function(**args))
    assert (got_status, got_code) == (status, code)
    assert message in got_message


def test_every_supported_runtime_is_accepted(lam: Any) -> None:
    for rt in ("python3.8", "python3.14", "provided", "provided.al2", "provided.al2023"):
        assert create(lam, Runtime=rt)["Runtime"] == rt


def test_zip_over_50_mb_is_refused(raw: Any) -> None:
    big = os.urandom(52_428_801)
    status, code, msg = error_of(
        lambda: raw.create_function(
            FunctionName=fresh(),
            Runtime="python3.12",
            Role=ROLE,
            Handler="a.b",
            Code={"ZipFile": big},
        )
    )
    assert (status, code) == (413, "RequestEntityTooLargeException")
    assert msg == "Request must be smaller than 69905067 bytes for the CreateFunction operation"


def test_unzipped_over_250_mb_is_refused(raw: Any) -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("big.bin", b"\0" * 262_144_001)
    status, code, msg = error_of(
        lambda: raw.create_function(
            FunctionName=fresh(),
            Runtime="python3.12",
            Role=ROLE,
            Handler="a.b",
            Code={"ZipFile": buf.getvalue()},
        )
    )
    assert (status, code, msg) == (
        400,
        "InvalidParameterValueException",
        "Unzipped size must be smaller than 262144000 bytes",
    )


def test_list_functions_paginates(lam: Any) -> None:
    names = {create(lam, fresh("page"))["FunctionName"] for _ in range(5)}
    seen: list[str] = []
    marker: str | None = None
    while True:
        kw: dict[str, Any] = {"MaxItems": 2}
        if marker:
            kw["Marker"] = marker
        page = lam.list_functions(**kw)
        assert len(page["Functions"]) <= 2
        seen += [f["FunctionName"] for f in page["Functions"]]
        marker = page.get("NextMarker")
        if not marker:
            break
    assert names <= set(seen)
    assert len(seen) == len(set(seen))
    via_paginator = [
        f["FunctionName"]
        for p in lam.get_paginator("list_functions").paginate(PaginationConfig={"PageSize": 3})
        for f in p["Functions"]
    ]
    assert via_paginator == seen
    assert lam.list_functions(FunctionVersion="ALL")["Functions"]


def test_update_function_code(lam: Any, raw: Any, server: ApiServer) -> None:
    before = create(lam)
    name = before["FunctionName"]
    new_zip = make_zip({"app.py": "def handler(e, c):\n    return 2\n"})
    out = lam.update_function_code(FunctionName=name, ZipFile=new_zip)
    assert out["LastUpdateStatus"] == "InProgress"
    assert out["CodeSha256"] != before["CodeSha256"]
    assert out["CodeSize"] == len(new_zip)
    assert out["RevisionId"] != before["RevisionId"]
    assert name in server.invoker.retired
    lam.get_waiter("function_updated_v2").wait(
        FunctionName=name, WaiterConfig={"Delay": 0.05, "MaxAttempts": 100}
    )
    after = lam.get_function(FunctionName=name)["Configuration"]
    assert after["LastUpdateStatus"] == "Successful"
    status, code, _ = error_of(
        lambda: lam.update_function_code(FunctionName=name, ZipFile=APP_ZIP, RevisionId="stale")
    )
    assert (status, code) == (412, "PreconditionFailedException")
    status, code, msg = error_of(lambda: raw.update_function_code(FunctionName=name))
    assert (status, code) == (400, "InvalidParameterValueException")
    dry = lam.update_function_code(FunctionName=name, ZipFile=APP_ZIP, DryRun=True)
    assert dry["CodeSha256"] == before["CodeSha256"]
    assert lam.get_function(FunctionName=name)["Configuration"]["CodeSha256"] == out["CodeSha256"]
    status, code, msg = error_of(
        lambda: lam.update_function_code(FunctionName="nope-y", ZipFile=APP_ZIP)
    )
    assert (status, code, msg) == (
        404,
        "ResourceNotFoundException",
        f"Function not found: {ARN}:function:nope-y",
    )


def test_update_function_configuration(lam: Any, raw: Any, server: ApiServer) -> None:
    layer = lam.publish_layer_version(LayerName=fresh("ly"), Content={"ZipFile": APP_ZIP})
    name = create(lam, Environment={"Variables": {"AA": "1", "BB": "2"}})["FunctionName"]
    out = lam.update_function_configuration(
        FunctionName=name,
        Environment={"Variables": {"CC": "3"}},
        MemorySize=512,
        Layers=[layer["LayerVersionArn"]],
        LoggingConfig={"LogFormat": "JSON"},
    )
    assert out["Environment"] == {"Variables": {"CC": "3"}}
    assert out["MemorySize"] == 512
    assert out["Layers"] == [{"Arn": layer["LayerVersionArn"], "CodeSize": len(APP_ZIP)}]
    assert out["LoggingConfig"]["ApplicationLogLevel"] == "INFO"
    assert out["LastUpdateStatus"] == "InProgress"
    assert server.invoker.retired.count(name) == 1
    lam.get_waiter("function_updated_v2").wait(
        FunctionName=name, WaiterConfig={"Delay": 0.05, "MaxAttempts": 100}
    )
    out = lam.update_function_configuration(FunctionName=name, Layers=[], Timeout=30)
    assert "Layers" not in out and out["Timeout"] == 30
    assert out["Environment"] == {"Variables": {"CC": "3"}}
    lam.get_waiter("function_updated_v2").wait(
        FunctionName=name, WaiterConfig={"Delay": 0.05, "MaxAttempts": 100}
    )
    status, code, msg = error_of(
        lambda: raw.update_function_configuration(
            FunctionName=name, Environment={"Variables": {"AWS_REGION": "x"}}
        )
    )
    assert (status, code, msg) == (400, "InvalidParameterValueException", RESERVED_MSG)
    status, code, _ = error_of(
        lambda: raw.update_function_configuration(FunctionName=name, Runtime="java21")
    )
    assert (status, code) == (400, "InvalidParameterValueException")


def test_update_conflicts_while_in_progress(tmp_path: Path) -> None:
    with ApiServer(tmp_path, settle_delay_s=0.5) as slow:
        lam = client(slow.url)
        name = fresh()
        lam.create_function(
            FunctionName=name,
            Runtime="python3.12",
            Role=ROLE,
            Handler="app.handler",
            Code={"ZipFile": APP_ZIP},
        )
        status, code, msg = error_of(lambda: lam.invoke(FunctionName=name, Payload=b"{}"))
        assert (status, code, msg) == (
            409,
            "ResourceConflictException",
            "The operation cannot be performed at this time. The function is currently in the "
            "following state: Pending",
        )
        lam.get_waiter("function_active_v2").wait(
            FunctionName=name, WaiterConfig={"Delay": 0.1, "MaxAttempts": 50}
        )
        lam.update_function_configuration(FunctionName=name, Timeout=5)
        status, code, msg = error_of(
            lambda: lam.update_function_configuration(FunctionName=name, Timeout=6)
        )
        assert (status, code) == (409, "ResourceConflictException")
        assert msg.endswith(f"An update is in progress for resource: {ARN}:function:{name}")
        lam.get_waiter("function_updated_v2").wait(
            FunctionName=name, WaiterConfig={"Delay": 0.1, "MaxAttempts": 50}
        )


def test_delete_function(lam: Any, server: ApiServer) -> None:
    name = create(lam)["FunctionName"]
    status, code, msg = error_of(
        lambda: lam.delete_function(FunctionName=name, Qualifier="$LATEST")
    )
    assert (status, code) == (400, "InvalidParameterValueException")
    assert msg == "$LATEST version cannot be deleted without deleting the function."
    out = lam.delete_function(FunctionName=name)
    assert out["ResponseMetadata"]["HTTPStatusCode"] == 204
    assert name in server.invoker.retired
    assert error_of(lambda: lam.get_function(FunctionName=name))[:2] == (
        404,
        "ResourceNotFoundException",
    )
    assert error_of(lambda: lam.delete_function(FunctionName=name))[:2] == (
        404,
        "ResourceNotFoundException",
    )


# -------------------------------------------------------------------- invoke


def test_invoke_request_response(lam: Any, server: ApiServer) -> None:
    name = create(lam)["FunctionName"]
    out = lam.invoke(FunctionName=name, Payload=b'{"a": 1}')
    assert out["StatusCode"] == 200
    assert out["ExecutedVersion"] == "$LATEST"
    assert "FunctionError" not in out and "LogResult" not in out
    assert json.loads(out["Payload"].read()) == {"event": {"a": 1}, "context": None}
    call = server.invoker.calls[-1]
    assert call.request_id == out["ResponseMetadata"]["HTTPHeaders"]["x-amzn-requestid"]
    assert call.invoked_arn == f"{ARN}:function:{name}"
    assert call.function.name == name and not call.log_tail


def test_invoke_options(lam: Any, server: ApiServer) -> None:
    name = create(lam)["FunctionName"]
    ctx = base64.b64encode(json.dumps({"custom": {"k": "v"}}).encode()).decode()
    out = lam.invoke(
        FunctionName=f"{ARN}:function:{name}",
        Qualifier="$LATEST",
        LogType="Tail",
        ClientContext=ctx,
    )
    assert base64.b64decode(out["LogResult"]).startswith(b"START")
    body = json.loads(out["Payload"].read())
    assert body == {"event": {}, "context": json.dumps({"custom": {"k": "v"}})}
    assert server.invoker.calls[-1].invoked_arn == f"{ARN}:function:{name}:$LATEST"
    failed = lam.invoke(FunctionName=name, Payload=b'{"fail": true}')
    assert failed["StatusCode"] == 200 and failed["FunctionError"] == "Unhandled"
    assert json.loads(failed["Payload"].read())["errorType"] == "ValueError"


def test_invoke_dry_run_and_event(lam: Any, server: ApiServer) -> None:
    name = create(lam)["FunctionName"]
    n = len(server.invoker.calls)
    assert lam.invoke(FunctionName=name, InvocationType="DryRun")["StatusCode"] == 204
    assert len(server.invoker.calls) == n
    out = lam.invoke(FunctionName=name, InvocationType="Event", Payload=b'{"async": 1}')
    assert out["StatusCode"] == 202
    rid = out["ResponseMetadata"]["HTTPHeaders"]["x-amzn-requestid"]
    wait_for(lambda: any(c.request_id == rid for c in server.invoker.calls))


def test_invoke_errors(lam: Any, raw: Any) -> None:
    name = create(lam)["FunctionName"]
    big = b'"' + b"x" * 6_291_456 + b'"'
    assert error_of(lambda: lam.invoke(FunctionName=name, Payload=big)) == (
        413,
        "RequestTooLargeException",
        f"{len(big)} byte payload is too large for the RequestResponse invocation type "
        "(limit 6291456 bytes)",
    )
    status, code, msg = error_of(lambda: lam.invoke(FunctionName=name, Payload=b"not json"))
    assert (status, code) == (400, "InvalidRequestContentException")
    assert msg.startswith("Could not parse request body into json: ")
    assert error_of(lambda: lam.invoke(FunctionName=name, Qualifier="3")) == (
        404,
        "ResourceNotFoundException",
        f"Function not found: {ARN}:function:{name}:3",
    )
    assert error_of(lambda: lam.invoke(FunctionName=f"{name}:1", Qualifier="2"))[:2] == (
        400,
        "InvalidParameterValueException",
    )
    assert error_of(lambda: lam.invoke(FunctionName="missing-fn"))[:2] == (
        404,
        "ResourceNotFoundException",
    )
    assert error_of(lambda: raw.invoke(FunctionName=name, InvocationType="Sometimes"))[:2] == (
        400,
        "ValidationException",
    )
    assert error_of(lambda: lam.invoke(FunctionName=name, ClientContext="%%%"))[:2] == (
        400,
        "InvalidRequestContentException",
    )
    too_long = base64.b64encode(json.dumps({"k": "v" * 3000}).encode()).decode()
    assert error_of(lambda: lam.invoke(FunctionName=name, ClientContext=too_long))[:2] == (
        400,
        "InvalidParameterValueException",
    )


def test_unexpected_exception_is_a_service_exception(lam: Any) -> None:
    name = create(lam)["FunctionName"]
    status, code, msg = error_of(lambda: lam.invoke(FunctionName=name, Payload=b'{"crash": 1}'))
    assert (status, code) == (500, "ServiceException")
    assert "secret" not in msg and "Traceback" not in msg


def test_unknown_route(server: ApiServer) -> None:
    for method, path in (("GET", "/2015-03-31/nothing"), ("PATCH", "/2015-03-31/functions")):
        req = urllib.request.Request(server.url + path, method=method)
        with pytest.raises(urllib.error.HTTPError) as info:
            urllib.request.urlopen(req)
        assert info.value.code == 404
        assert info.value.headers["X-Amzn-ErrorType"] == "UnknownOperationException"
        assert info.value.headers["x-amzn-RequestId"]
        assert json.loads(info.value.read())["Type"] == "User"


# -------------------------------------------------------------------- layers


def test_layer_lifecycle(lam: Any) -> None:
    layer = fresh("layer")
    layer_zip = make_zip({"python/util.py": "X = 1\n"})
    v1 = lam.publish_layer_version(
        LayerName=layer,
        Content={"ZipFile": layer_zip},
        Description="first",
        CompatibleRuntimes=["python3.12"],
        CompatibleArchitectures=["x86_64"],
        LicenseInfo="MIT",
    )
    assert v1["ResponseMetadata"]["HTTPStatusCode"] == 201
    assert v1["Version"] == 1
    assert v1["LayerArn"] == f"{ARN}:layer:{layer}"
    assert v1["LayerVersionArn"] == f"{ARN}:layer:{layer}:1"
    assert v1["Content"]["CodeSize"] == len(layer_zip)
    with urllib.request.urlopen(v1["Content"]["Location"]) as resp:
        assert resp.read() == layer_zip
    v2 = lam.publish_layer_version(LayerName=layer, Content={"ZipFile": APP_ZIP})
    assert v2["Version"] == 2
    got = lam.get_layer_version(LayerName=layer, VersionNumber=1)
    assert got["Description"] == "first" and got["LicenseInfo"] == "MIT"
    assert lam.get_layer_version(LayerName=v1["LayerArn"], VersionNumber=2)["Version"] == 2
    assert lam.get_layer_version_by_arn(Arn=v1["LayerVersionArn"])["Version"] == 1
    versions = lam.list_layer_versions(LayerName=layer)["LayerVersions"]
    assert [v["Version"] for v in versions] == [2, 1]
    page = lam.list_layer_versions(LayerName=layer, MaxItems=1)
    assert [v["Version"] for v in page["LayerVersions"]] == [2]
    rest = lam.list_layer_versions(LayerName=layer, Marker=page["NextMarker"])
    assert [v["Version"] for v in rest["LayerVersions"]] == [1]
    matching = lam.list_layer_versions(LayerName=layer, CompatibleRuntime="python3.12")
    assert [v["Version"] for v in matching["LayerVersions"]] == [1]
    listed = {x["LayerName"]: x for x in lam.list_layers()["Layers"]}
    assert listed[layer]["LatestMatchingVersion"]["Version"] == 2
    listed = {x["LayerName"]: x for x in lam.list_layers(CompatibleRuntime="python3.12")["Layers"]}
    assert listed[layer]["LatestMatchingVersion"]["Version"] == 1
    fn = create(lam, Layers=[v1["LayerVersionArn"]])
    assert fn["Layers"] == [{"Arn": v1["LayerVersionArn"], "CodeSize": len(layer_zip)}]
    out = lam.delete_layer_version(LayerName=layer, VersionNumber=1)
    assert out["ResponseMetadata"]["HTTPStatusCode"] == 204
    assert error_of(lambda: lam.get_layer_version(LayerName=layer, VersionNumber=1)) == (
        404,
        "ResourceNotFoundException",
        "The resource you requested does not exist.",
    )
    assert error_of(lambda: lam.get_layer_version_by_arn(Arn=v1["LayerVersionArn"]))[:2] == (
        404,
        "ResourceNotFoundException",
    )
    lam.delete_layer_version(LayerName=layer, VersionNumber=1)  # idempotent
    # the function keeps the deleted version's code
    cfg = lam.get_function_configuration(FunctionName=fn["FunctionName"])
    assert cfg["Layers"] == fn["Layers"]
    v3 = lam.publish_layer_version(LayerName=layer, Content={"ZipFile": APP_ZIP})
    assert v3["Version"] == 3


def test_layer_errors(raw: Any) -> None:
    status, code, msg = error_of(
        lambda: raw.publish_layer_version(LayerName=fresh("l"), Content={"ZipFile": b"garbage"})
    )
    assert (status, code) == (400, "InvalidParameterValueException")
    assert msg == "Could not unzip uploaded file. Please check your file, then try to upload again."
    assert error_of(lambda: raw.get_layer_version_by_arn(Arn="nonsense"))[:2] == (
        400,
        "ValidationException",
    )
    assert error_of(lambda: raw.list_layers(MaxItems=51))[:2] == (400, "ValidationException")


# ------------------------------------------------------------------- restart


def test_restart_keeps_functions_and_layers(tmp_path: Path) -> None:
    with ApiServer(tmp_path) as first:
        lam = client(first.url)
        layer = lam.publish_layer_version(LayerName="keep-layer", Content={"ZipFile": APP_ZIP})
        fn = create(lam, "keep-fn", Layers=[layer["LayerVersionArn"]], Tags={"a": "b"})
    with ApiServer(tmp_path) as second:
        lam = client(second.url)
        got = lam.get_function(FunctionName="keep-fn")
        assert got["Configuration"]["CodeSha256"] == fn["CodeSha256"]
        assert got["Configuration"]["RevisionId"] == fn["RevisionId"]
        assert got["Configuration"]["State"] == "Active"
        assert got["Configuration"]["Layers"] == fn["Layers"]
        assert got["Tags"] == {"a": "b"}
        assert lam.get_layer_version_by_arn(Arn=layer["LayerVersionArn"])["Version"] == 1
        assert lam.invoke(FunctionName="keep-fn")["StatusCode"] == 200


# ----------------------------------------------------------------------- CLI


def aws(server: ApiServer, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return aws_cli(server.url, "lambda", *args, check=check)


def test_aws_cli_every_operation(server: ApiServer, tmp_path: Path) -> None:
    zip_path = tmp_path / "fn.zip"
    zip_path.write_bytes(APP_ZIP)
    name, layer = fresh("cli"), fresh("clilayer")
    lv = json.loads(
        aws(
            server,
            "publish-layer-version",
            "--layer-name",
            layer,
            "--zip-file",
            f"fileb://{zip_path}",
            "--compatible-runtimes",
            "python3.12",
        ).stdout
    )
    assert lv["Version"] == 1
    assert (
        json.loads(
            aws(server, "get-layer-version", "--layer-name", layer, "--version-number", "1").stdout
        )["LayerVersionArn"]
        == lv["LayerVersionArn"]
    )
    assert (
        json.loads(aws(server, "get-layer-version-by-arn", "--arn", lv["LayerVersionArn"]).stdout)[
            "Version"
        ]
        == 1
    )
    assert (
        json.loads(aws(server, "list-layer-versions", "--layer-name", layer).stdout)[
            "LayerVersions"
        ][0]["Version"]
        == 1
    )
    assert layer in {
        x["LayerName"] for x in json.loads(aws(server, "list-layers").stdout)["Layers"]
    }

    created = json.loads(
        aws(
            server,
            "create-function",
            "--function-name",
            name,
            "--runtime",
            "python3.12",
            "--role",
            ROLE,
            "--handler",
            "app.handler",
            "--zip-file",
            f"fileb://{zip_path}",
            "--layers",
            lv["LayerVersionArn"],
            "--environment",
            "Variables={KK=VV}",
        ).stdout
    )
    assert created["State"] == "Pending"
    aws(server, "wait", "function-active-v2", "--function-name", name)
    got = json.loads(aws(server, "get-function", "--function-name", name).stdout)
    assert got["Configuration"]["State"] == "Active"
    cfg = json.loads(aws(server, "get-function-configuration", "--function-name", name).stdout)
    assert cfg["Environment"] == {"Variables": {"KK": "VV"}}
    listed = json.loads(aws(server, "list-functions").stdout)
    assert name in {f["FunctionName"] for f in listed["Functions"]}

    upd = json.loads(
        aws(
            server,
            "update-function-configuration",
            "--function-name",
            name,
            "--timeout",
            "20",
        ).stdout
    )
    assert upd["Timeout"] == 20
    aws(server, "wait", "function-updated-v2", "--function-name", name)
    zip2 = tmp_path / "fn2.zip"
    zip2.write_bytes(make_zip({"app.py": "def handler(e, c):\n    return 3\n"}))
    code = json.loads(
        aws(
            server, "update-function-code", "--function-name", name, "--zip-file", f"fileb://{zip2}"
        ).stdout
    )
    assert code["CodeSha256"] != created["CodeSha256"]
    aws(server, "wait", "function-updated-v2", "--function-name", name)

    out_file = tmp_path / "out.json"
    inv = json.loads(
        aws(
            server,
            "invoke",
            "--function-name",
            name,
            "--payload",
            '{"x": 1}',
            "--log-type",
            "Tail",
            str(out_file),
        ).stdout
    )
    assert inv["StatusCode"] == 200 and inv["ExecutedVersion"] == "$LATEST"
    assert json.loads(out_file.read_text())["event"] == {"x": 1}

    bad = aws(
        server,
        "create-function",
        "--function-name",
        name,
        "--runtime",
        "python3.12",
        "--role",
        ROLE,
        "--handler",
        "app.handler",
        "--zip-file",
        f"fileb://{zip_path}",
        check=False,
    )
    assert bad.returncode != 0
    assert "ResourceConflictException" in bad.stderr
    assert f"Function already exist: {name}" in bad.stderr

    aws(server, "delete-function", "--function-name", name)
    gone = aws(server, "get-function", "--function-name", name, check=False)
    assert gone.returncode != 0 and "ResourceNotFoundException" in gone.stderr
    aws(server, "delete-layer-version", "--layer-name", layer, "--version-number", "1")
