"""Function and layer name forms."""

from __future__ import annotations

import pytest

from lambdalet.api.arns import (
    FunctionRef,
    LayerVersionRef,
    Scope,
    function_arn,
    layer_version_arn,
    parse_function_name,
    parse_layer_name,
    parse_layer_version_arn,
    runtime_version_arn,
)
from lambdalet.errors import (
    InvalidParameterValueException,
    ResourceNotFoundException,
    ValidationException,
)

SCOPE = Scope("us-east-1", "123456789012")
ARN = "arn:aws:lambda:us-east-1:123456789012"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("my-fn", FunctionRef("my-fn")),
        ("my_fn:prod", FunctionRef("my_fn", "prod")),
        ("my-fn:$LATEST", FunctionRef("my-fn", "$LATEST")),
        (f"{ARN}:function:my-fn", FunctionRef("my-fn")),
        (f"{ARN}:function:my-fn:7", FunctionRef("my-fn", "7")),
        ("123456789012:function:my-fn", FunctionRef("my-fn")),
        ("123456789012:function:my-fn:$LATEST", FunctionRef("my-fn", "$LATEST")),
    ],
)
def test_function_name_forms(value: str, expected: FunctionRef) -> None:
    assert parse_function_name(value, SCOPE) == expected


def test_query_qualifier_must_agree() -> None:
    assert parse_function_name("f", SCOPE, "$LATEST") == FunctionRef("f", "$LATEST")
    assert parse_function_name("f:1", SCOPE, "1") == FunctionRef("f", "1")
    with pytest.raises(InvalidParameterValueException, match="derived qualifier"):
        parse_function_name("f:1", SCOPE, "2")
    with pytest.raises(ValidationException, match="at 'qualifier'"):
        parse_function_name("f", SCOPE, "bad qualifier")


@pytest.mark.parametrize("value", ["", "a b", "f:", "arn:aws:lambda:us-east-1:1:function:f", "a/b"])
def test_bad_names(value: str) -> None:
    with pytest.raises(ValidationException) as info:
        parse_function_name(value, SCOPE)
    assert info.value.message.startswith("1 validation error detected: Value ")
    assert "at 'functionName'" in info.value.message


def test_name_length() -> None:
    assert parse_function_name("x" * 64, SCOPE).name == "x" * 64
    with pytest.raises(ValidationException, match="less than or equal to 64"):
        parse_function_name("x" * 65, SCOPE)


def test_other_region_or_account_is_not_found() -> None:
    with pytest.raises(ResourceNotFoundException) as info:
        parse_function_name("arn:aws:lambda:eu-west-1:123456789012:function:f", SCOPE)
    assert (
        info.value.message == "Function not found: arn:aws:lambda:eu-west-1:123456789012:function:f"
    )
    with pytest.raises(ResourceNotFoundException):
        parse_function_name("999999999999:function:f", SCOPE)


def test_formatting() -> None:
    assert function_arn(SCOPE, "f") == f"{ARN}:function:f"
    assert function_arn(SCOPE, "f", "$LATEST") == f"{ARN}:function:f:$LATEST"
    assert layer_version_arn(SCOPE, "l", 3) == f"{ARN}:layer:l:3"
    assert runtime_version_arn(SCOPE, "python3.12") == runtime_version_arn(SCOPE, "python3.12")
    assert runtime_version_arn(SCOPE, "python3.12") != runtime_version_arn(SCOPE, "python3.13")


def test_layers() -> None:
    assert parse_layer_name("lay", SCOPE) == "lay"
    assert parse_layer_name(f"{ARN}:layer:lay", SCOPE) == "lay"
    with pytest.raises(ValidationException):
        parse_layer_name("bad name", SCOPE)
    with pytest.raises(ResourceNotFoundException):
        parse_layer_name("arn:aws:lambda:eu-west-1:123456789012:layer:lay", SCOPE)
    assert parse_layer_version_arn(f"{ARN}:layer:lay:12") == (SCOPE, LayerVersionRef("lay", 12))
    for bad in (f"{ARN}:layer:lay", "lay:1", f"{ARN}:function:f:1"):
        with pytest.raises(ValidationException):
            parse_layer_version_arn(bad)
