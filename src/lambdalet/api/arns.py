"""Function and layer names and ARNs: parsing every form callers use, and formatting.  No I/O.

Function name forms (path parameter ``FunctionName``)::

    my-function                       my-function:qualifier
    123456789012:function:my-function[:qualifier]
    arn:aws:lambda:us-east-1:123456789012:function:my-function[:qualifier]
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from lambdalet.errors import (
    InvalidParameterValueException,
    ResourceNotFoundException,
    ValidationException,
)

MAX_NAME = 64

FUNCTION_NAME_PATTERN = (
    r"(arn:(aws[a-zA-Z-]*)?:lambda:)?([a-z]{2}(-gov)?-[a-z]+-\d{1}:)?(\d{12}:)?"
    r"(function:)?([a-zA-Z0-9-_]+)(:(\$LATEST|[a-zA-Z0-9-_]+))?"
)
_FUNCTION_RE = re.compile(
    r"(?:arn:(?:aws[a-zA-Z-]*):lambda:(?P<region>[a-z]{2}(?:-gov|-iso[a-z]?)?-[a-z]+-\d):"
    r"(?P<account>\d{12}):function:"
    r"|(?P<account2>\d{12}):function:)?"
    r"(?P<name>[a-zA-Z0-9_-]+)"
    r"(?::(?P<qualifier>\$LATEST|[a-zA-Z0-9_-]+))?"
)
QUALIFIER_PATTERN = r"(|[a-zA-Z0-9$_-]+)"
_QUALIFIER_RE = re.compile(r"[a-zA-Z0-9$_-]{1,128}")

LAYER_NAME_PATTERN = (
    r"(arn:[a-zA-Z0-9-]+:lambda:[a-zA-Z0-9-]+:\d{12}:layer:[a-zA-Z0-9-_]+)|[a-zA-Z0-9-_]+"
)
_LAYER_NAME_RE = re.compile(
    r"(?:arn:aws[a-zA-Z-]*:lambda:(?P<region>[a-zA-Z0-9-]+):(?P<account>\d{12}):layer:)?"
    r"(?P<name>[a-zA-Z0-9_-]{1,140})"
)
LAYER_VERSION_ARN_PATTERN = (
    r"arn:[a-zA-Z0-9-]+:lambda:[a-zA-Z0-9-]+:\d{12}:layer:[a-zA-Z0-9-_]+:[0-9]+"
)
_LAYER_VERSION_ARN_RE = re.compile(
    r"arn:aws[a-zA-Z-]*:lambda:(?P<region>[a-zA-Z0-9-]+):(?P<account>\d{12}):layer:"
    r"(?P<name>[a-zA-Z0-9_-]{1,140}):(?P<version>[0-9]{1,15})"
)


@dataclass(frozen=True)
class Scope:
    """The region and account this server answers for."""

    region: str
    account_id: str


@dataclass(frozen=True)
class FunctionRef:
    """A function named by a caller: bare name plus the qualifier, if any."""

    name: str
    qualifier: str | None = None


@dataclass(frozen=True)
class LayerVersionRef:
    name: str
    version: int


def validation_message(value: object, field: str, constraint: str) -> str:
    """AWS's wording for a request that breaks the API model's constraints."""
    shown = "null" if value is None else f"'{value}'"
    return (
        f"1 validation error detected: Value {shown} at '{field}' failed to satisfy "
        f"constraint: {constraint}"
    )


def function_arn(scope: Scope, name: str, qualifier: str | None = None) -> str:
    arn = f"arn:aws:lambda:{scope.region}:{scope.account_id}:function:{name}"
    return f"{arn}:{qualifier}" if qualifier else arn


def layer_arn(scope: Scope, name: str) -> str:
    return f"arn:aws:lambda:{scope.region}:{scope.account_id}:layer:{name}"


def layer_version_arn(scope: Scope, name: str, version: int) -> str:
    return f"{layer_arn(scope, name)}:{version}"


def runtime_version_arn(scope: Scope, runtime: str) -> str:
    """A stable RuntimeVersionArn per runtime (there is one runtime version per runtime here)."""
    digest = hashlib.sha256(runtime.encode()).hexdigest()
    return f"arn:aws:lambda:{scope.region}::runtime:{digest}"


def parse_function_name(
    value: str, scope: Scope, query_qualifier: str | None = None
) -> FunctionRef:
    """Split any function name form into name and qualifier.

    A name under another region or account is not found here; a qualifier both in the name
    and in ``?Qualifier=`` must agree.
    """
    m = _FUNCTION_RE.fullmatch(value)
    if m is None or len(value) > 170:
        raise ValidationException(
            validation_message(
                value,
                "functionName",
                f"Member must satisfy regular expression pattern: {FUNCTION_NAME_PATTERN}",
            )
        )
    name = m["name"]
    if len(name) > MAX_NAME:
        raise ValidationException(
            validation_message(
                value, "functionName", f"Member must have length less than or equal to {MAX_NAME}"
            )
        )
    qualifier = m["qualifier"]
    if query_qualifier is not None:
        if not _QUALIFIER_RE.fullmatch(query_qualifier):
            raise ValidationException(
                validation_message(
                    query_qualifier,
                    "qualifier",
                    f"Member must satisfy regular expression pattern: {QUALIFIER_PATTERN}",
                )
            )
        if qualifier is not None and qualifier != query_qualifier:
            raise InvalidParameterValueException(
                "The derived qualifier from the function name does not match the specified "
                "qualifier."
            )
        qualifier = query_qualifier
    region = m["region"] or scope.region
    account = m["account"] or m["account2"] or scope.account_id
    if (region, account) != (scope.region, scope.account_id):
        foreign = Scope(region, account)
        raise ResourceNotFoundException(
            f"Function not found: {function_arn(foreign, name, qualifier)}"
        )
    return FunctionRef(name, qualifier)


def parse_layer_name(value: str, scope: Scope) -> str:
    """A layer named by name or by layer ARN (path parameter ``LayerName``)."""
    m = _LAYER_NAME_RE.fullmatch(value)
    if m is None:
        raise ValidationException(
            validation_message(
                value,
                "layerName",
                f"Member must satisfy regular expression pattern: {LAYER_NAME_PATTERN}",
            )
        )
    if m["region"] is not None and (m["region"], m["account"]) != (
        scope.region,
        scope.account_id,
    ):
        raise ResourceNotFoundException("The resource you requested does not exist.")
    return m["name"]


def parse_layer_version_arn(value: str, field: str = "arn") -> tuple[Scope, LayerVersionRef]:
    """A layer version ARN; returns its region/account too, for the caller to check."""
    m = _LAYER_VERSION_ARN_RE.fullmatch(value) if isinstance(value, str) else None
    if m is None:
        raise ValidationException(
            validation_message(
                value,
                field,
                f"Member must satisfy regular expression pattern: {LAYER_VERSION_ARN_PATTERN}",
            )
        )
    return Scope(m["region"], m["account"]), LayerVersionRef(m["name"], int(m["version"]))
