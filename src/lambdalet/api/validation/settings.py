"""A function's other settings: asynchronous invocation (destinations, retries),
reserved and provisioned concurrency, tags."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from lambdalet.api.arns import Scope
from lambdalet.api.validation.fields import (
    in_range,
    invalid,
    max_len,
    opt_int,
    opt_obj,
    opt_str,
    require,
)
from lambdalet.api.validation.function_fields import tags
from lambdalet.errors import InvalidParameterValueException


@dataclass(frozen=True)
class EventInvokeParams:
    max_retry_attempts: int | None
    max_event_age_s: int | None
    on_success: str | None  # "" clears (UpdateFunctionEventInvokeConfig)
    on_failure: str | None


def _destination(config: Mapping[str, Any] | None, key: str, scope: Scope) -> str | None:
    if config is None:
        return None
    target = opt_obj(config, key)
    if target is None:
        return None
    arn = opt_str(target, "Destination", "destination")
    if arn is None or arn == "":
        return "" if arn == "" else None
    max_len(arn, f"destinationConfig.{key[0].lower()}{key[1:]}.destination", 350)
    m = re.fullmatch(
        r"arn:aws[a-zA-Z-]*:lambda:(?P<region>[a-z0-9-]+):(?P<account>\d{12}):function:"
        r"[a-zA-Z0-9_-]{1,64}(?::(?:\$LATEST|[a-zA-Z0-9_-]{1,128}))?",
        arn,
    )
    if m is None or (m["region"], m["account"]) != (scope.region, scope.account_id):
        raise InvalidParameterValueException(
            f"The destination ARN {arn} is invalid. This server delivers only to Lambda "
            f"functions in {scope.region} of account {scope.account_id}."
        )
    return arn


def event_invoke_config(body: Mapping[str, Any], scope: Scope) -> EventInvokeParams:
    retries = opt_int(body, "MaximumRetryAttempts")
    age = opt_int(body, "MaximumEventAgeInSeconds")
    dest = opt_obj(body, "DestinationConfig")
    return EventInvokeParams(
        max_retry_attempts=(
            in_range(retries, "maximumRetryAttempts", 0, 2) if retries is not None else None
        ),
        max_event_age_s=(
            in_range(age, "maximumEventAgeInSeconds", 60, 21600) if age is not None else None
        ),
        on_success=_destination(dest, "OnSuccess", scope),
        on_failure=_destination(dest, "OnFailure", scope),
    )


def reserved_concurrency(body: Mapping[str, Any]) -> int:
    value = require(opt_int(body, "ReservedConcurrentExecutions"), "reservedConcurrentExecutions")
    if value < 0:
        raise invalid(
            value,
            "reservedConcurrentExecutions",
            "Member must have value greater than or equal to 0",
        )
    return value


def provisioned_concurrency(body: Mapping[str, Any]) -> int:
    value = require(
        opt_int(body, "ProvisionedConcurrentExecutions"), "provisionedConcurrentExecutions"
    )
    if value < 1:
        raise invalid(
            value,
            "provisionedConcurrentExecutions",
            "Member must have value greater than or equal to 1",
        )
    return value


def tag_map(body: Mapping[str, Any]) -> dict[str, str]:
    tags_obj = require(opt_obj(body, "Tags"), "tags")
    out = tags(tags_obj)
    for k, v in out.items():
        if not k:
            raise invalid(k, "tags.key", "Member must have length greater than or equal to 1")
        max_len(v, "tags.value", 256)
    return out


def tag_keys(values: list[str]) -> list[str]:
    if not values:
        raise invalid(None, "tagKeys", "Member must not be null")
    for k in values:
        if not k:
            raise invalid(k, "tagKeys.member", "Member must have length greater than or equal to 1")
        max_len(k, "tagKeys.member", 128)
    return values
