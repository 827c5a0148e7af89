"""Policy statements as AWS renders them, and the public-URL check."""

from __future__ import annotations

import pytest

from lambdalet.api import policies
from lambdalet.errors import (
    InvalidParameterValueException,
    InvalidRequestContentException,
    ValidationException,
)

ARN = "arn:aws:lambda:us-east-1:123456789012:function:fn"


def test_service_principal_with_source_arn_and_account() -> None:
    p = policies.permission(
        {
            "StatementId": "s3-invoke",
            "Action": "lambda:InvokeFunction",
            "Principal": "s3.amazonaws.com",
            "SourceArn": "arn:aws:s3:::bucket",
            "SourceAccount": "123456789012",
        }
    )
    assert policies.statement(p, ARN) == {
        "Sid": "s3-invoke",
        "Effect": "Allow",
        "Principal": {"Service": "s3.amazonaws.com"},
        "Action": "lambda:InvokeFunction",
        "Resource": ARN,
        "Condition": {
            "StringEquals": {"AWS:SourceAccount": "123456789012"},
            "ArnLike": {"AWS:SourceArn": "arn:aws:s3:::bucket"},
        },
    }


@pytest.mark.parametrize(
    ("principal", "rendered"),
    [
        ("*", "*"),
        ("210987654321", {"AWS": "arn:aws:iam::210987654321:root"}),
        ("arn:aws:iam::210987654321:role/r", {"AWS": "arn:aws:iam::210987654321:role/r"}),
        ("events.amazonaws.com", {"Service": "events.amazonaws.com"}),
    ],
)
def test_principals(principal: str, rendered: object) -> None:
    p = policies.permission({"StatementId": "a", "Action": "lambda:*", "Principal": principal})
    assert policies.statement(p, ARN)["Principal"] == rendered
    assert "Condition" not in policies.statement(p, ARN)


def test_url_statement() -> None:
    p = policies.permission(
        {
            "StatementId": "FunctionURLAllowPublicAccess",
            "Action": "lambda:InvokeFunctionUrl",
            "Principal": "*",
            "FunctionUrlAuthType": "NONE",
        }
    )
    st = policies.statement(p, ARN)
    assert st["Condition"] == {"StringEquals": {"lambda:FunctionUrlAuthType": "NONE"}}
    assert policies.allows_public_url([st], "NONE")
    assert not policies.allows_public_url([st], "AWS_IAM")


def test_public_url_needs_the_right_statement() -> None:
    def st(**kw: object) -> dict[str, object]:
        base: dict[str, object] = {
            "Sid": "x",
            "Effect": "Allow",
            "Principal": "*",
            "Action": "lambda:InvokeFunctionUrl",
            "Resource": ARN,
        }
        base.update(kw)
        return base

    assert policies.allows_public_url([st()], "NONE")
    assert policies.allows_public_url([st(Action="lambda:*")], "NONE")
    assert not policies.allows_public_url([], "NONE")
    assert not policies.allows_public_url([st(Action="lambda:InvokeFunction")], "NONE")
    assert not policies.allows_public_url([st(Principal={"Service": "s3.amazonaws.com"})], "NONE")
    assert not policies.allows_public_url([st(Effect="Deny")], "NONE")
    cond = {"ArnLike": {"AWS:SourceArn": "arn:aws:s3:::b"}}
    assert not policies.allows_public_url([st(Condition=cond)], "NONE")


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ({"Action": "lambda:InvokeFunction", "Principal": "*"}, ValidationException),
        ({"StatementId": "a b", "Action": "lambda:X", "Principal": "*"}, ValidationException),
        ({"StatementId": "a", "Action": "s3:GetObject", "Principal": "*"}, ValidationException),
        (
            {"StatementId": "a", "Action": "lambda:X", "Principal": 3},
            InvalidRequestContentException,
        ),
        (
            {"StatementId": "a", "Action": "lambda:X", "Principal": "*", "SourceAccount": "1"},
            ValidationException,
        ),
        (
            {
                "StatementId": "a",
                "Action": "lambda:InvokeFunction",
                "Principal": "*",
                "FunctionUrlAuthType": "NONE",
            },
            InvalidParameterValueException,
        ),
        (
            {
                "StatementId": "a",
                "Action": "lambda:InvokeFunctionUrl",
                "Principal": "*",
                "FunctionUrlAuthType": "OPEN",
            },
            ValidationException,
        ),
    ],
)
def test_bad_requests(body: dict[str, object], error: type[Exception]) -> None:
    with pytest.raises(error):
        policies.permission(body)


def test_unknown_principal_form() -> None:
    p = policies.permission({"StatementId": "a", "Action": "lambda:X", "Principal": "nobody"})
    with pytest.raises(InvalidParameterValueException):
        policies.statement(p, ARN)
