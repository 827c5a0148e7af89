"""Request validation: pure functions, AWS's words."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lambdalet.api import validation as v
from lambdalet.api.arns import Scope
from lambdalet.errors import (
    InvalidParameterValueException,
    InvalidRequestContentException,
    LambdaApiError,
    RequestEntityTooLargeException,
    RequestTooLargeException,
    ValidationException,
)
from lambdalet.store.records import LayerKey

SCOPE = Scope("us-east-1", "123456789012")
ROLE = "arn:aws:iam::123456789012:role/service-role/my-role"
ZIP_B64 = base64.b64encode(b"PK\x05\x06" + b"\0" * 18).decode()
LAYER = "arn:aws:lambda:us-east-1:123456789012:layer"


def body(**kw: Any) -> dict[str, Any]:
    out: dict[str, Any] = {
        "FunctionName": "fn",
        "Role": ROLE,
        "Runtime": "python3.12",
        "Handler": "app.handler",
        "Code": {"ZipFile": ZIP_B64},
    }
    out.update(kw)
    return {k: x for k, x in out.items() if x is not None}


def test_create_defaults() -> None:
    spec, data = v.create_function(body(), SCOPE)
    assert data == base64.b64decode(ZIP_B64)
    assert (spec.memory_mb, spec.timeout_s, spec.ephemeral_mb) == (128, 3, 512)
    assert spec.architectures == ("x86_64",) and spec.tracing_mode == "PassThrough"
    assert spec.environment == {} and spec.layers == ()
    assert spec.logging.log_format == "Text"


def test_create_everything() -> None:
    spec, _ = v.create_function(
        body(
            MemorySize=10240,
            Timeout=900,
            EphemeralStorage={"Size": 10240},
            Environment={"Variables": {"AB": "1", "a_9": "x"}},
            Layers=[f"{LAYER}:one:1", f"{LAYER}:two:4"],
            Description="d" * 256,
            Architectures=["arm64"],
            TracingConfig={"Mode": "Active"},
            LoggingConfig={"LogFormat": "JSON", "ApplicationLogLevel": "DEBUG"},
            Tags={"k": "v"},
        ),
        SCOPE,
    )
    assert spec.layers == (LayerKey("one", 1), LayerKey("two", 4))
    assert spec.logging.application_log_level == "DEBUG"
    assert spec.logging.system_log_level == "INFO"
    assert spec.architectures == ("arm64",)


@pytest.mark.parametrize("runtime", v.RUNTIMES)
def test_supported_runtimes(runtime: str) -> None:
    assert v.create_function(body(Runtime=runtime), SCOPE)[0].runtime == runtime


@pytest.mark.parametrize("runtime", ["nodejs20.x", "python3.7", "python", "java21"])
def test_other_runtimes(runtime: str) -> None:
    with pytest.raises(InvalidParameterValueException) as info:
        v.create_function(body(Runtime=runtime), SCOPE)
    assert f"Value '{runtime}' at 'runtime'" in info.value.message
    assert (
        "[python3.8, python3.9" in info.value.message and "provided.al2023]" in info.value.message
    )


@pytest.mark.parametrize(
    ("kw", "error"),
    [
        ({"MemorySize": 127}, ValidationException),
        ({"MemorySize": 10241}, ValidationException),
        ({"Timeout": 0}, ValidationException),
        ({"Timeout": 901}, ValidationException),
        ({"EphemeralStorage": {"Size": 511}}, ValidationException),
        ({"EphemeralStorage": {"Size": 10241}}, ValidationException),
        ({"MemorySize": "big"}, InvalidRequestContentException),
        ({"Role": "arn:aws:iam::123:role/x"}, ValidationException),
        ({"Role": None}, ValidationException),
        ({"Code": None}, ValidationException),
        ({"FunctionName": None}, ValidationException),
        ({"FunctionName": ""}, ValidationException),
        ({"FunctionName": "a.b"}, ValidationException),
        ({"Handler": "has space"}, ValidationException),
        ({"Handler": "h" * 129}, ValidationException),
        ({"Runtime": None}, InvalidParameterValueException),
        ({"Description": "d" * 257}, ValidationException),
        ({"Architectures": ["x86_64", "arm64"]}, ValidationException),
        ({"Architectures": ["mips"]}, ValidationException),
        ({"TracingConfig": {"Mode": "Loud"}}, ValidationException),
        ({"LoggingConfig": {"LogFormat": "XML"}}, ValidationException),
        ({"PackageType": "Image"}, InvalidParameterValueException),
        ({"Code": {"ImageUri": "x"}}, InvalidParameterValueException),
        ({"Code": {}}, InvalidParameterValueException),
        ({"Code": {"ZipFile": "***"}}, InvalidRequestContentException),
    ],
)
def test_create_refusals(kw: dict[str, Any], error: type[LambdaApiError]) -> None:
    with pytest.raises(error):
        v.create_function(body(**kw), SCOPE)


def test_role_null_message() -> None:
    with pytest.raises(ValidationException) as info:
        v.create_function(body(Role=None), SCOPE)
    assert info.value.message == (
        "1 validation error detected: Value null at 'role' failed to satisfy constraint: "
        "Member must not be null"
    )


def test_reserved_keys_are_listed() -> None:
    with pytest.raises(InvalidParameterValueException) as info:
        v.environment({"Variables": {"OK1": "x", "AWS_REGION": "x", "_HANDLER": "y"}})
    assert info.value.message == (
        "Lambda was unable to configure your environment variables because the environment "
        "variables you have provided contains reserved keys that are currently not supported for "
        "modification. Reserved keys used in this request: AWS_REGION, _HANDLER"
    )


def test_environment_4kb_boundary() -> None:
    # {"AB":"<n>"} is n + 9 bytes of compact JSON
    assert v.environment({"Variables": {"AB": "x" * 4087}})
    with pytest.raises(InvalidParameterValueException) as info:
        v.environment({"Variables": {"AB": "x" * 4088}})
    assert info.value.message.endswith('String measured: {"AB":"' + "x" * 4088 + '"}')
    assert "exceeded the 4KB limit" in info.value.message


@pytest.mark.parametrize("key", ["A", "1AB", "A-B", "A B", "ÄB"])
def test_environment_key_syntax(key: str) -> None:
    with pytest.raises(ValidationException, match="Map keys must satisfy constraint"):
        v.environment({"Variables": {key: "x"}})


@given(
    st.dictionaries(
        st.from_regex(r"[A-Z][A-Z0-9_]{1,10}", fullmatch=True),
        st.text(
            st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=50
        ),
        max_size=8,
    )
)
def test_environment_accepts_small_valid_maps(variables: dict[str, str]) -> None:
    variables = {
        k: x
        for k, x in variables.items()
        if not k.startswith("AWS_") and k not in {"LAMBDA_TASK_ROOT", "LAMBDA_RUNTIME_DIR"}
    }
    assert v.environment({"Variables": variables}) == variables


def test_layers() -> None:
    with pytest.raises(
        InvalidParameterValueException, match=r"Cannot reference more than 5 layers\."
    ):
        v.layers([f"{LAYER}:l{i}:1" for i in range(6)], SCOPE)
    with pytest.raises(InvalidParameterValueException, match="Two different versions"):
        v.layers([f"{LAYER}:l:1", f"{LAYER}:l:2"], SCOPE)
    foreign = "arn:aws:lambda:eu-west-1:123456789012:layer:l:1"
    with pytest.raises(
        InvalidParameterValueException, match=f"Layer version {foreign} does not exist."
    ):
        v.layers([foreign], SCOPE)
    with pytest.raises(ValidationException, match="at 'layers'"):
        v.layers(["nope"], SCOPE)


def test_zip_size_limit() -> None:
    with pytest.raises(RequestEntityTooLargeException) as info:
        v.zip_file(base64.b64encode(b"\0" * 52_428_801).decode(), "ZipFile", "UpdateFunctionCode")
    assert info.value.message == (
        "Request must be smaller than 69905067 bytes for the UpdateFunctionCode operation"
    )
    assert (
        len(v.zip_file(base64.b64encode(b"\0" * 52_428_800).decode(), "ZipFile", "X")) == 52_428_800
    )


def test_update_configuration_patch() -> None:
    patch, rev = v.update_function_configuration(
        {"Environment": {}, "Layers": [], "Timeout": 5, "RevisionId": "r"}, SCOPE
    )
    assert patch.environment == {} and patch.layers == () and patch.timeout_s == 5
    assert patch.memory_mb is None and patch.runtime is None and rev == "r"
    empty, rev = v.update_function_configuration({}, SCOPE)
    assert empty == type(empty)() and rev is None


def test_update_code() -> None:
    up = v.update_function_code({"ZipFile": ZIP_B64, "DryRun": True, "Architectures": ["arm64"]})
    assert up.dry_run and up.architectures == ("arm64",)
    with pytest.raises(InvalidParameterValueException, match="Please provide a source"):
        v.update_function_code({})


def test_publish_layer_version() -> None:
    spec, _ = v.publish_layer_version(
        "lay",
        {
            "Content": {"ZipFile": ZIP_B64},
            "CompatibleRuntimes": ["nodejs20.x"],
            "LicenseInfo": "MIT",
        },
    )
    assert spec.compatible_runtimes == ("nodejs20.x",) and spec.license_info == "MIT"
    with pytest.raises(ValidationException):
        v.publish_layer_version(
            "lay", {"Content": {"ZipFile": ZIP_B64}, "CompatibleRuntimes": ["cobol"]}
        )
    with pytest.raises(ValidationException):
        v.publish_layer_version(
            "lay",
            {
                "Content": {"ZipFile": ZIP_B64},
                "CompatibleArchitectures": ["x86_64", "arm64", "x86_64"],
            },
        )
    with pytest.raises(ValidationException, match="at 'content'"):
        v.publish_layer_version("lay", {})


def test_list_params_and_markers() -> None:
    assert v.list_params({}, 10000) == v.ListParams(None, 50)
    assert v.list_params({"MaxItems": "10000"}, 10000).limit == 10000
    marker = v.encode_marker("fn-9")
    assert v.list_params({"Marker": marker}, 50).after == "fn-9"
    for bad in ("0", "10001", "x"):
        with pytest.raises(ValidationException):
            v.list_params({"MaxItems": bad}, 10000)
    with pytest.raises(ValidationException):
        v.list_params({"MaxItems": "51"}, 50)
    with pytest.raises(InvalidParameterValueException):
        v.version_marker("not-a-number")


@given(st.text(min_size=1, max_size=100))
def test_marker_roundtrip(key: str) -> None:
    assert v.decode_marker(v.encode_marker(key)) == key


def test_json_body() -> None:
    assert v.json_body(b"") == {}
    assert v.json_body(b'{"a": 1}') == {"a": 1}
    for bad in (b"{", b"[1]", b"\xff"):
        with pytest.raises(
            InvalidRequestContentException, match=r"^Could not parse request body into json: "
        ):
            v.json_body(bad)


def test_invoke_params() -> None:
    p = v.invoke_params({})
    assert (p.invocation_type, p.log_tail, p.client_context) == ("RequestResponse", False, None)
    ctx = base64.b64encode(b'{"custom":{"a":1}}').decode()
    p = v.invoke_params(
        {"X-Amz-Invocation-Type": "Event", "X-Amz-Log-Type": "Tail", "X-Amz-Client-Context": ctx}
    )
    assert (p.invocation_type, p.log_tail, p.client_context) == (
        "Event",
        True,
        '{"custom":{"a":1}}',
    )
    with pytest.raises(ValidationException, match="at 'invocationType'"):
        v.invoke_params({"X-Amz-Invocation-Type": "Later"})
    with pytest.raises(ValidationException, match="at 'logType'"):
        v.invoke_params({"X-Amz-Log-Type": "All"})


def test_client_context() -> None:
    with pytest.raises(InvalidRequestContentException):
        v.client_context("not base64!")
    with pytest.raises(InvalidRequestContentException):
        v.client_context(base64.b64encode(b"[1]").decode())
    fits = base64.b64encode(json.dumps({"k": "v" * 2675}).encode()).decode()
    assert len(fits) <= 3583 and v.client_context(fits)
    with pytest.raises(InvalidParameterValueException):
        v.client_context(base64.b64encode(json.dumps({"k": "v" * 2700}).encode()).decode())


def test_invoke_payload() -> None:
    assert v.invoke_payload(b"", "RequestResponse") == b"{}"
    assert v.invoke_payload(b"  ", "RequestResponse") == b"{}"
    assert v.invoke_payload(b"[1, 2]", "RequestResponse") == b"[1, 2]"
    limit = b'"' + b"x" * (6_291_456 - 2) + b'"'
    assert v.invoke_payload(limit, "RequestResponse") is limit
    with pytest.raises(RequestTooLargeException) as info:
        v.invoke_payload(limit + b" ", "RequestResponse")
    assert info.value.message == (
        "6291457 byte payload is too large for the RequestResponse invocation type "
        "(limit 6291456 bytes)"
    )
    with pytest.raises(RequestTooLargeException, match="Event invocation type"):
        v.invoke_payload(b" " * 1_048_577, "Event")
    with pytest.raises(
        InvalidRequestContentException, match=r"^Could not parse request body into json: "
    ):
        v.invoke_payload(b"{nope", "RequestResponse")


@pytest.mark.parametrize("value", ["\x00", "a\x00b", "secret\x00"])
def test_environment_value_with_nul_is_refused(value: str) -> None:
    with pytest.raises(InvalidParameterValueException, match="NUL character"):
        v.environment({"Variables": {"OK_KEY": "fine", "BAD_KEY": value}})


@pytest.mark.parametrize("raw", [b"[" * 100_000 + b"]" * 100_000, b'{"a":' * 50_000 + b"0"])
def test_json_nested_too_deeply_is_bad_content(raw: bytes) -> None:
    with pytest.raises(InvalidRequestContentException):
        v.json_body(raw)
    with pytest.raises(InvalidRequestContentException):
        v.invoke_payload(raw[:6_000_000], "RequestResponse")
