"""Versions and aliases: names, qualifiers, routing configurations, PublishVersion."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from lambdalet.api.validation.fields import (
    bad_type,
    invalid,
    max_len,
    one_of,
    opt_obj,
    opt_str,
    require,
)
from lambdalet.errors import InvalidParameterValueException
from lambdalet.store.records import AliasPatch, AliasSpec


def function_version(query: Mapping[str, str]) -> None:
    value = query.get("FunctionVersion")
    if value is not None:
        one_of(value, "functionVersion", ("ALL",))


ALIAS_PATTERN = "(?!^[0-9]+$)([a-zA-Z0-9-_]+)"

_ALIAS_RE = re.compile(r"(?!^[0-9]+$)[a-zA-Z0-9_-]{1,128}")

VERSION_PATTERN = r"(\$LATEST|[0-9]+)"

_VERSION_RE = re.compile(r"\$LATEST|[0-9]{1,1024}")


def alias_name(value: object, field: str = "name") -> str:
    if value is not None and not isinstance(value, str):
        raise bad_type("Name", "a string")
    name = require(value, field)
    if not name:
        raise invalid(name, field, "Member must have length greater than or equal to 1")
    max_len(name, field, 128)
    if not _ALIAS_RE.fullmatch(name):
        raise invalid(
            name, field, f"Member must satisfy regular expression pattern: {ALIAS_PATTERN}"
        )
    return name


def function_version_value(value: object, field: str = "functionVersion") -> str:
    if value is not None and not isinstance(value, str):
        raise bad_type("FunctionVersion", "a string")
    version = require(value, field)
    if not _VERSION_RE.fullmatch(version):
        raise invalid(
            version, field, f"Member must satisfy regular expression pattern: {VERSION_PATTERN}"
        )
    return version


def routing_config(value: Mapping[str, Any], primary: str | None) -> dict[str, float]:
    """``RoutingConfig.AdditionalVersionWeights``: one other published version, 0.0-1.0."""
    weights = opt_obj(value, "AdditionalVersionWeights") or {}
    out: dict[str, float] = {}
    for version, weight in weights.items():
        if isinstance(weight, bool) or not isinstance(weight, int | float):
            raise bad_type("AdditionalVersionWeights", "a map of numbers")
        if not isinstance(version, str) or not version.isdigit() or len(version) > 1024:
            raise invalid(
                version,
                "routingConfig.additionalVersionWeights.key",
                "Member must satisfy regular expression pattern: [0-9]+",
            )
        if not 0.0 <= float(weight) <= 1.0:
            raise invalid(
                weight,
                "routingConfig.additionalVersionWeights.value",
                "Member must have value between 0.0 and 1.0",
            )
        out[version] = float(weight)
    if len(out) > 1:
        raise InvalidParameterValueException(
            "Number of items in AdditionalVersionWeights cannot be greater than 1"
        )
    if out and primary == "$LATEST":
        raise InvalidParameterValueException(
            "$LATEST is not supported for an alias pointing to more than 1 version"
        )
    if primary is not None and primary in out:
        raise InvalidParameterValueException(
            f"Invalid function version {primary}. Function version {primary} is already "
            "included in routing configuration."
        )
    return out


def create_alias(body: Mapping[str, Any]) -> AliasSpec:
    name = alias_name(body.get("Name"))
    version = function_version_value(body.get("FunctionVersion"))
    desc = max_len(opt_str(body, "Description", "description") or "", "description", 256)
    routing = opt_obj(body, "RoutingConfig")
    weights = routing_config(routing, version) if routing is not None else {}
    return AliasSpec(name, version, desc, weights)


def update_alias(body: Mapping[str, Any]) -> AliasPatch:
    raw_version = body.get("FunctionVersion")
    version = function_version_value(raw_version) if raw_version is not None else None
    desc = opt_str(body, "Description", "description")
    routing = opt_obj(body, "RoutingConfig")
    return AliasPatch(
        function_version=version,
        description=max_len(desc, "description", 256) if desc is not None else None,
        weights=routing_config(routing, version) if routing is not None else None,
        revision_id=opt_str(body, "RevisionId", "revisionId"),
    )


@dataclass(frozen=True)
class PublishParams:
    code_sha256: str | None
    description: str | None
    revision_id: str | None


def publish_version(body: Mapping[str, Any]) -> PublishParams:
    desc = opt_str(body, "Description", "description")
    return PublishParams(
        code_sha256=opt_str(body, "CodeSha256", "codeSha256"),
        description=max_len(desc, "description", 256) if desc is not None else None,
        revision_id=opt_str(body, "RevisionId", "revisionId"),
    )


def qualifier_param(query: Mapping[str, str], required: bool = False) -> str | None:
    value = query.get("Qualifier")
    if value is None:
        if required:
            raise invalid(None, "qualifier", "Member must not be null")
        return None
    if not re.fullmatch(r"[a-zA-Z0-9$_-]{1,128}", value):
        raise invalid(
            value,
            "qualifier",
            r"Member must satisfy regular expression pattern: (|[a-zA-Z0-9$_-]+)",
        )
    return value
