"""Fuzzing the API: no request, well-formed or not, gets a 500 or shows a traceback.

Requests are generated from botocore's Lambda model (every operation, members of the
right JSON types but arbitrary values, names biased towards a function that exists) and
serialized by botocore's own rest-json serializer, plus raw garbage (methods, paths,
headers, bodies).  The server runs in-process over a real socket with an invoker double.
"""

from __future__ import annotations

import asyncio
import base64
import http.client
import io
import json
import threading
import urllib.parse
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import botocore.session
import pytest
from aiohttp import web
from botocore.serialize import create_serializer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lambdalet.app import build_api
from lambdalet.config import ServerConfig
from lambdalet.model import FunctionRecord, InvokeInput, InvokeOutput, ProvisionResult
from lambdalet.store import Store

MODEL = botocore.session.get_session().get_service_model("lambda")
SERIALIZER = create_serializer("rest-json", include_validation=False)
ARN = "arn:aws:lambda:us-east-1:123456789012:function"
NAMES = ["fz", "fz:1", "fz:live", "fz:$LATEST", f"{ARN}:fz", f"{ARN}:fz:live", "nope"]
EMPTY_ZIP_B64 = "UEsFBgAAAAAAAAAAAAAAAAAAAAAAAA=="
EMPTY_ZIP = base64.b64decode(EMPTY_ZIP_B64)


class EchoInvoker:
    async def invoke(self, request: InvokeInput) -> InvokeOutput:
        return InvokeOutput(payload=request.payload, executed_version=request.function.version)

    async def retire(self, function_name: str, version: str | None = None) -> None:
        return None

    async def provision(
        self, config_key: str, function: FunctionRecord, count: int
    ) -> ProvisionResult:
        return ProvisionResult(count)

    async def unprovision(self, config_key: str) -> None:
        return None


class Served:
    def __init__(self, data_dir: Path) -> None:
        self.config = ServerConfig(data_dir=data_dir)
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.port = 0
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        store = Store(self.config)
        runner = web.AppRunner(build_api(self.config, store, EchoInvoker()))
        self.loop.run_until_complete(runner.setup())
        site = web.TCPSite(runner, "127.0.0.1", 0)
        self.loop.run_until_complete(site.start())
        self.port = runner.addresses[0][1]
        self.ready.set()
        self.loop.run_forever()
        self.loop.run_until_complete(runner.cleanup())
        store.close()
        self.loop.close()

    def request(
        self, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None
    ) -> tuple[int, dict[str, str], bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            resp = conn.getresponse()
            return resp.status, dict(resp.getheaders()), resp.read()
        finally:
            conn.close()


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    s = Served(tmp_path_factory.mktemp("fuzz"))
    s.thread.start()
    assert s.ready.wait(10)
    create = {
        "FunctionName": "fz",
        "Runtime": "python3.12",
        "Role": "arn:aws:iam::123456789012:role/r",
        "Handler": "app.handler",
        "Code": {"ZipFile": base64.b64encode(EMPTY_ZIP).decode()},
        "Publish": True,
    }
    assert s.request("POST", "/2015-03-31/functions", json.dumps(create).encode())[0] == 201
    alias = {"Name": "live", "FunctionVersion": "1"}
    status, _, _ = s.request("POST", "/2015-03-31/functions/fz/aliases", json.dumps(alias).encode())
    assert status == 201
    yield s
    s.loop.call_soon_threadsafe(s.loop.stop)
    s.thread.join(10)


def check(status: int, headers: dict[str, str], body: bytes) -> None:
    assert status < 500, (status, body[:500])
    assert b"Traceback" not in body and b'File "' not in body, body[:500]
    lower = {k.lower(): v for k, v in headers.items()}
    assert lower.get("x-amzn-requestid"), headers
    if status >= 400:
        assert lower.get("x-amzn-errortype"), headers
        parsed = json.loads(body)
        assert parsed["Type"] in ("User", "Service")
        assert isinstance(parsed.get("message", parsed.get("Message")), str)


# ------------------------------------------------------------------ model-driven inputs

_text = st.text(max_size=40)
_interesting_strings = st.sampled_from(
    [
        "",
        "1",
        "$LATEST",
        "live",
        "fz",
        "ALL",
        "x" * 300,
        "arn:aws:lambda:us-east-1:123456789012:function:fz",
        "é",
        "../..",
        "%00",
    ]
)


def shape_strategy(shape: Any, depth: int = 0) -> st.SearchStrategy[Any]:
    t = shape.type_name
    if t == "structure":
        if depth > 3:
            return st.just({})
        members = {k: shape_strategy(v, depth + 1) for k, v in shape.members.items()}
        return st.fixed_dictionaries({}, optional=members)
    if t == "list":
        return st.lists(shape_strategy(shape.member, depth + 1), max_size=3)
    if t == "map":
        return st.dictionaries(_text, shape_strategy(shape.value, depth + 1), max_size=3)
    if t in ("integer", "long"):
        return st.one_of(st.integers(-5, 5), st.integers(-(2**40), 2**40))
    if t in ("float", "double"):
        return st.floats(allow_nan=False, allow_infinity=False, min_value=-10, max_value=10)
    if t == "boolean":
        return st.booleans()
    if t == "blob":
        return st.one_of(st.binary(max_size=64), st.just(EMPTY_ZIP), st.just(b'{"a": 1}'))
    if t == "timestamp":
        return st.just(0)
    if shape.enum:
        return st.one_of(st.sampled_from(list(shape.enum)), _text)
    if shape.name in ("FunctionName", "NamespacedFunctionName", "FunctionArn"):
        return st.one_of(st.sampled_from(NAMES), _text)
    return st.one_of(_interesting_strings, _text)


OPERATIONS = sorted(MODEL.operation_names)


@st.composite
def model_request(draw: st.DrawFn) -> tuple[str, dict[str, Any]]:
    name = draw(st.sampled_from(OPERATIONS))
    op = MODEL.operation_model(name)
    params = draw(shape_strategy(op.input_shape)) if op.input_shape is not None else {}
    if op.input_shape is not None:
        for member in op.input_shape.required_members:
            if member not in params:
                shape = op.input_shape.members[member]
                params[member] = draw(shape_strategy(shape, 4))
    return name, params


def _is_valid_header(value: str) -> bool:
    return all(32 <= ord(c) < 127 for c in value)


@settings(
    max_examples=400,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(model_request())
def test_model_driven_requests_never_fail_the_server(
    served: Served, req: tuple[str, dict[str, Any]]
) -> None:
    name, params = req
    op = MODEL.operation_model(name)
    try:
        wire = SERIALIZER.serialize_to_request(params, op)
    except (TypeError, ValueError, KeyError, AttributeError):
        return  # botocore itself cannot put this on the wire
    path = wire["url_path"]
    query = wire.get("query_string") or {}
    if query:
        path += ("&" if "?" in path else "?") + urllib.parse.urlencode(query, doseq=True)
    headers = {k: str(v) for k, v in wire["headers"].items() if _is_valid_header(str(v))}
    body = wire["body"]
    if isinstance(body, str):
        body = body.encode()
    check(*served.request(wire["method"], path, body or b"", headers))


# ------------------------------------------------------------------ raw garbage

_paths = st.one_of(
    st.sampled_from(
        [
            "/2015-03-31/functions",
            "/2015-03-31/functions/fz",
            "/2015-03-31/functions/fz/invocations",
            "/2015-03-31/functions/fz/versions",
            "/2015-03-31/functions/fz/aliases/live",
            "/2019-09-25/functions/fz/event-invoke-config",
            "/2019-09-30/functions/fz/provisioned-concurrency?Qualifier=1",
            "/2017-10-31/functions/fz/concurrency",
            "/2017-03-31/tags/arn:aws:lambda:us-east-1:123456789012:function:fz",
            "/2016-08-19/account-settings",
            "/2018-10-31/layers",
        ]
    ),
    st.text(alphabet="/abcfz0123456789-_:$%?=&.", max_size=60).map(lambda p: "/" + p),
)


@settings(
    max_examples=250,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    method=st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD"]),
    path=_paths,
    body=st.one_of(
        st.binary(max_size=200),
        st.builds(
            lambda v: json.dumps(v).encode(),
            st.recursive(
                st.none() | st.booleans() | st.integers() | st.text(max_size=10),
                lambda inner: (
                    st.lists(inner, max_size=3)
                    | st.dictionaries(st.text(max_size=8), inner, max_size=3)
                ),
                max_leaves=8,
            ),
        ),
    ),
    invocation_type=st.sampled_from([None, "Event", "RequestResponse", "DryRun", "bogus"]),
    client_context=st.sampled_from([None, "", "e30=", "%%%", "bm90IGpzb24="]),
)
def test_raw_requests_never_fail_the_server(
    served: Served,
    method: str,
    path: str,
    body: bytes,
    invocation_type: str | None,
    client_context: str | None,
) -> None:
    headers = {}
    if invocation_type is not None:
        headers["X-Amz-Invocation-Type"] = invocation_type
    if client_context is not None:
        headers["X-Amz-Client-Context"] = client_context
    status, resp_headers, resp_body = served.request(method, path, body, headers)
    if method == "HEAD":
        assert status < 500
        return
    check(status, resp_headers, resp_body)


# ------------------------------------------------------------------ hostile inputs (issue 10)


def _zip(entries: list[tuple[str, bytes]]) -> str:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in entries:
            zf.writestr(zipfile.ZipInfo(name), data)
    return base64.b64encode(buf.getvalue()).decode()


def _create(name: str, zip_b64: str, **extra: Any) -> bytes:
    body = {
        "FunctionName": name,
        "Runtime": "python3.12",
        "Role": "arn:aws:iam::123456789012:role/r",
        "Handler": "app.handler",
        "Code": {"ZipFile": zip_b64},
        **extra,
    }
    return json.dumps(body).encode()


DEEP = b"[" * 100_000 + b"]" * 100_000
DEEP_OBJECT = b'{"a":' * 100_000 + b"1" + b"}" * 100_000


@pytest.mark.parametrize(
    ("method", "path", "body", "error_type"),
    [
        ("POST", "/2015-03-31/functions", DEEP, "InvalidRequestContentException"),
        ("POST", "/2015-03-31/functions", DEEP_OBJECT, "InvalidRequestContentException"),
        (
            "PUT",
            "/2015-03-31/functions/fz/configuration",
            DEEP_OBJECT,
            "InvalidRequestContentException",
        ),
        ("POST", "/2015-03-31/functions/fz/invocations", DEEP, "InvalidRequestContentException"),
        (
            "POST",
            "/2015-03-31/functions",
            _create("fz-dup", _zip([("x", b"file"), ("x/", b"")])),
            "InvalidParameterValueException",
        ),
        (
            "POST",
            "/2015-03-31/functions",
            _create("fz-dup2", _zip([("x/", b""), ("x", b"file")])),
            "InvalidParameterValueException",
        ),
        (
            "POST",
            "/2015-03-31/functions",
            _create("fz-under", _zip([("x", b"file"), ("x/y", b"under a file")])),
            "InvalidParameterValueException",
        ),
        (
            "POST",
            "/2015-03-31/functions",
            _create("fz-long", _zip([("a" * 300, b"long name")])),
            "InvalidParameterValueException",
        ),
        (
            "POST",
            "/2015-03-31/functions",
            _create("fz-deep", _zip([("/".join(["d" * 200] * 30) + "/f", b"long path")])),
            "InvalidParameterValueException",
        ),
        (
            "POST",
            "/2015-03-31/functions",
            _create("fz-nul", EMPTY_ZIP_B64, Environment={"Variables": {"SECRET": "a\u0000b"}}),
            "InvalidParameterValueException",
        ),
        (
            "PUT",
            "/2015-03-31/functions/fz/configuration",
            json.dumps({"Environment": {"Variables": {"KEY": "\u0000"}}}).encode(),
            "InvalidParameterValueException",
        ),
    ],
    ids=[
        "deep-array",
        "deep-object",
        "deep-config",
        "deep-payload",
        "file-then-folder",
        "folder-then-file",
        "file-under-file",
        "long-name",
        "long-path",
        "env-nul-create",
        "env-nul-update",
    ],
)
def test_hostile_inputs_get_a_4xx_of_aws_type(
    served: Served, method: str, path: str, body: bytes, error_type: str
) -> None:
    status, headers, resp = served.request(method, path, body)
    check(status, headers, resp)
    assert status == 400, resp[:300]
    assert {k.lower(): v for k, v in headers.items()}["x-amzn-errortype"] == error_type
    # nothing was created by a refused CreateFunction
    if method == "POST" and path == "/2015-03-31/functions":
        name = json.loads(body)["FunctionName"] if body[:1] == b"{" and len(body) < 10**5 else ""
        if name:
            assert served.request("GET", f"/2015-03-31/functions/{name}")[0] == 404
