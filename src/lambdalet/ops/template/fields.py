"""Typed reads of a resource's properties; every error names the resource and the field."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from lambdalet.ops.template.plans import PlanError

NAME_RE = re.compile(r"[a-zA-Z0-9_-]{1,64}")


def resource_props(lid: str, res: Mapping[str, Any]) -> Mapping[str, Any]:
    props = res.get("Properties", {}) or {}
    if not isinstance(props, Mapping):
        raise PlanError(lid, "Properties", "must be a mapping")
    return props


def required_field(lid: str, key: str, value: Any) -> Any:
    if value is None:
        raise PlanError(lid, key, "is required")
    return value


def str_field(lid: str, key: str, value: Any) -> str:
    if not isinstance(value, str):
        raise PlanError(lid, key, f"must be a string, not {shown_value(value)}")
    return value


def scalar_str_field(lid: str, key: str, value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | int | float):
        return str(value)
    raise PlanError(lid, key, f"must be a string, not {shown_value(value)}")


def str_list_field(lid: str, key: str, value: Any) -> list[str]:
    if not isinstance(value, list):
        raise PlanError(lid, key, f"must be a list, not {shown_value(value)}")
    return [str_field(lid, key, v) for v in value]


def int_field(
    lid: str, key: str, value: Any, *, minimum: int | None = None, maximum: int | None = None
) -> int:
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise PlanError(lid, key, f"must be an integer, not {shown_value(value)}")
    if minimum is not None and value < minimum:
        raise PlanError(lid, key, f"{value} is below the minimum {minimum}")
    if maximum is not None and value > maximum:
        raise PlanError(lid, key, f"{value} is above the maximum {maximum}")
    return value


def checked_name(lid: str, key: str, value: Any) -> str:
    name = str_field(lid, key, value)
    if not NAME_RE.fullmatch(name):
        raise PlanError(lid, key, f"{name!r} is not a valid name (letters, digits, - and _)")
    return name


def shown_value(value: Any) -> str:
    if isinstance(value, Mapping):
        return f"a mapping {dict(value)!r}"
    return f"{type(value).__name__} {value!r}"
