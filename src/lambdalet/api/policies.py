"""Resource-based policies of functions: AddPermission's request → a policy statement, the
policy document GetPolicy shows, and the one question the server asks of a policy (may
anyone invoke this function URL?).  No I/O.

Statements are rendered as AWS renders them (``Principal`` as ``"*"``, ``{"Service": ...}`` or
``{"AWS": ...}``; ``SourceArn`` as an ``ArnLike`` condition, ``SourceAccount``,
``PrincipalOrgID``, ``EventSourceToken`` and ``FunctionUrlAuthType`` as ``StringEquals``,
``InvokedViaFunctionUrl`` as ``Bool``), several conditions merged into one ``Condition``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from lambdalet.api.arns import validation_message
from lambdalet.errors import (
    InvalidParameterValueException,
    InvalidRequestContentException,
    ValidationException,
)

SID_PATTERN = r"([a-zA-Z0-9-_]+)"
_SID_RE = re.compile(r"[a-zA-Z0-9_-]{1,100}")
ACTION_PATTERN = r"(lambda:[*]|lambda:[a-zA-Z]+|[*])"
_ACTION_RE = re.compile(r"lambda:\*|lambda:[a-zA-Z]+|\*")
PRINCIPAL_PATTERN = r"[^\s]+"
_ACCOUNT_RE = re.compile(r"\d{12}")
URL_AUTH_TYPES = ("NONE", "AWS_IAM")
INVOKE_URL = "lambda:InvokeFunctionUrl"


@dataclass(frozen=True)
class Permission:
    """A validated AddPermission request."""

    sid: str
    action: str
    principal: str
    source_arn: str | None = None
    source_account: str | None = None
    principal_org_id: str | None = None
    event_source_token: str | None = None
    function_url_auth_type: str | None = None
    invoked_via_function_url: bool | None = None
    revision_id: str | None = None


def _field(body: Mapping[str, Any], key: str) -> str | None:
    v = body.get(key)
    if v is None:
        return None
    if not isinstance(v, str):
        raise InvalidRequestContentException(
            f"Could not parse request body into json: {key} must be a string"
        )
    return v


def _pattern(value: str, field: str, regex: re.Pattern[str], pattern: str) -> str:
    if not regex.fullmatch(value):
        raise ValidationException(
            validation_message(
                value, field, f"Member must satisfy regular expression pattern: {pattern}"
            )
        )
    return value


def statement_id(value: str, field: str = "statementId") -> str:
    return _pattern(value, field, _SID_RE, SID_PATTERN)


def permission(body: Mapping[str, Any]) -> Permission:
    """Validate AddPermission's body (AWS's constraints, AWS's wording)."""
    sid = _field(body, "StatementId")
    action = _field(body, "Action")
    principal = _field(body, "Principal")
    for value, field in ((sid, "statementId"), (action, "action"), (principal, "principal")):
        if value is None:
            raise ValidationException(validation_message(None, field, "Member must not be null"))
    assert sid is not None and action is not None and principal is not None
    statement_id(sid)
    _pattern(action, "action", _ACTION_RE, ACTION_PATTERN)
    if not principal or any(c.isspace() for c in principal):
        raise ValidationException(
            validation_message(
                principal,
                "principal",
                f"Member must satisfy regular expression pattern: {PRINCIPAL_PATTERN}",
            )
        )
    auth_type = _field(body, "FunctionUrlAuthType")
    if auth_type is not None and auth_type not in URL_AUTH_TYPES:
        raise ValidationException(
            validation_message(
                auth_type,
                "functionUrlAuthType",
                f"Member must satisfy enum value set: [{', '.join(URL_AUTH_TYPES)}]",
            )
        )
    via_url = body.get("InvokedViaFunctionUrl")
    if via_url is not None and not isinstance(via_url, bool):
        raise InvalidRequestContentException(
            "Could not parse request body into json: InvokedViaFunctionUrl must be a boolean"
        )
    source_account = _field(body, "SourceAccount")
    if source_account is not None and not _ACCOUNT_RE.fullmatch(source_account):
        raise ValidationException(
            validation_message(
                source_account,
                "sourceAccount",
                r"Member must satisfy regular expression pattern: \d{12}",
            )
        )
    if auth_type is not None and action not in (INVOKE_URL, "lambda:*", "*"):
        raise InvalidParameterValueException(
            "FunctionUrlAuthType is only supported for lambda:InvokeFunctionUrl action"
        )
    return Permission(
        sid=sid,
        action=action,
        principal=principal,
        source_arn=_field(body, "SourceArn"),
        source_account=source_account,
        principal_org_id=_field(body, "PrincipalOrgID"),
        event_source_token=_field(body, "EventSourceToken"),
        function_url_auth_type=auth_type,
        invoked_via_function_url=via_url,
        revision_id=_field(body, "RevisionId"),
    )


def principal_json(principal: str) -> object:
    """``*`` stays a string; a service gets ``Service``; an account or ARN gets ``AWS``."""
    if principal == "*":
        return "*"
    if _ACCOUNT_RE.fullmatch(principal):
        return {"AWS": f"arn:aws:iam::{principal}:root"}
    if principal.startswith("arn:"):
        return {"AWS": principal}
    if "." in principal:
        return {"Service": principal}
    raise InvalidParameterValueException(
        f"The provided principal was invalid. Please check the principal and try again: {principal}"
    )


def statement(p: Permission, resource_arn: str) -> dict[str, Any]:
    """The statement AddPermission adds (and answers with, as JSON text)."""
    conditions: dict[str, dict[str, str]] = {}

    def add(operator: str, key: str, value: str) -> None:
        conditions.setdefault(operator, {})[key] = value

    if p.source_account is not None:
        add("StringEquals", "AWS:SourceAccount", p.source_account)
    if p.principal_org_id is not None:
        add("StringEquals", "aws:PrincipalOrgID", p.principal_org_id)
    if p.event_source_token is not None:
        add("StringEquals", "lambda:EventSourceToken", p.event_source_token)
    if p.function_url_auth_type is not None:
        add("StringEquals", "lambda:FunctionUrlAuthType", p.function_url_auth_type)
    if p.invoked_via_function_url:
        add("Bool", "lambda:InvokedViaFunctionUrl", "true")
    if p.source_arn is not None:
        add("ArnLike", "AWS:SourceArn", p.source_arn)
    out: dict[str, Any] = {
        "Sid": p.sid,
        "Effect": "Allow",
        "Principal": principal_json(p.principal),
        "Action": p.action,
        "Resource": resource_arn,
    }
    if conditions:
        out["Condition"] = conditions
    return out


def document(statements: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The policy GetPolicy answers with (as JSON text)."""
    return {"Version": "2012-10-17", "Id": "default", "Statement": list(statements)}


def _is_public(principal: object) -> bool:
    return principal == "*" or (isinstance(principal, dict) and principal.get("AWS") == "*")


def _action_allows(action: object, wanted: str) -> bool:
    actions = action if isinstance(action, list) else [action]
    return any(a in (wanted, "lambda:*", "*") for a in actions)


def allows_public_url(statements: Sequence[Mapping[str, Any]], auth_type: str) -> bool:
    """Whether a statement lets anyone (principal ``*``) call a URL of ``auth_type``:
    ``lambda:InvokeFunctionUrl`` allowed, and a ``lambda:FunctionUrlAuthType`` condition,
    if any, naming this auth type.  Other conditions (source ARN, account, ...) cannot
    hold for an anonymous HTTP caller, so a statement carrying them does not count."""
    for st in statements:
        if st.get("Effect") != "Allow" or not _is_public(st.get("Principal")):
            continue
        if not _action_allows(st.get("Action"), INVOKE_URL):
            continue
        condition = st.get("Condition") or {}
        if not isinstance(condition, dict):
            continue
        keys = {(op, k) for op, kv in condition.items() if isinstance(kv, dict) for k in kv}
        if keys - {("StringEquals", "lambda:FunctionUrlAuthType")}:
            continue
        wanted = condition.get("StringEquals", {}).get("lambda:FunctionUrlAuthType", auth_type)
        if wanted == auth_type:
            return True
    return False
