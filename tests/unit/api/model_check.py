"""Checks of response bodies against botocore's Lambda service model."""

from __future__ import annotations

import json
from typing import Any

import botocore.session
from botocore.parsers import create_parser

MODEL = botocore.session.get_session().get_service_model("lambda")


def out_shape(op: str) -> Any:
    return MODEL.operation_model(op).output_shape


def conforms(value: Any, shape: Any, path: str = "") -> None:
    """Every member we send exists in the model with the right JSON type."""
    if shape.type_name == "structure":
        assert isinstance(value, dict), path
        for k, x in value.items():
            assert k in shape.members, f"{path}.{k} is not in {shape.name}"
            conforms(x, shape.members[k], f"{path}.{k}")
    elif shape.type_name == "list":
        assert isinstance(value, list), path
        for i, x in enumerate(value):
            conforms(x, shape.member, f"{path}[{i}]")
    elif shape.type_name == "map":
        assert isinstance(value, dict), path
        for k, x in value.items():
            conforms(k, shape.key, f"{path}<key>")
            conforms(x, shape.value, f"{path}[{k}]")
    elif shape.type_name in ("integer", "long"):
        assert isinstance(value, int) and not isinstance(value, bool), path
    elif shape.type_name in ("double", "float"):
        assert isinstance(value, int | float) and not isinstance(value, bool), path
    elif shape.type_name == "timestamp":
        # rest-json timestamps: epoch seconds (a number) unless the shape says otherwise
        assert isinstance(value, int | float | str) and not isinstance(value, bool), path
    elif shape.type_name == "string":
        assert isinstance(value, str), path
        if shape.enum:
            assert value in shape.enum, f"{path}={value!r} not in enum"
    elif shape.type_name == "boolean":
        assert isinstance(value, bool), path


def check_response(
    op: str, status: int, headers: Any, body: bytes, expected: int | None = None
) -> dict[str, Any]:
    """A response of ``op`` as botocore would receive it: the documented status (or
    ``expected`` where AWS differs from its model, or the status is a member, as Invoke's
    202), a body whose members all exist in the output shape, and botocore's parser
    accepting it.  Returns what botocore parsed."""
    operation = MODEL.operation_model(op)
    documented = operation.http.get("responseCode", 200)
    assert status == (documented if expected is None else expected), f"{op}: status {status}"
    shape = operation.output_shape
    # a payload member (Invoke's) is the raw body: nothing to check member by member
    if body and shape is not None and "payload" not in shape.serialization:
        conforms(json.loads(body), shape, op)
    parser = create_parser(MODEL.metadata["protocol"])
    parsed: dict[str, Any] = parser.parse(
        {"status_code": status, "headers": headers, "body": body}, shape
    )
    assert "Error" not in parsed, parsed
    return parsed
