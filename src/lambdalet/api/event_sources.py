"""Event source mappings, the protocol half: Create/UpdateEventSourceMapping bodies checked
against AWS's rules for SQS sources, and the ``EventSourceMappingConfiguration`` shape.
No I/O.

The mapping's settings are kept under AWS's own field names (``BatchSize``,
``MaximumBatchingWindowInSeconds``, ``Enabled``, ``FilterCriteria``,
``FunctionResponseTypes``, ``ScalingConfig``), so the stored form and the answer agree.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from lambdalet.api.arns import validation_message
from lambdalet.errors import (
    InvalidParameterValueException,
    InvalidRequestContentException,
    ValidationException,
)
from lambdalet.triggers import filters
from lambdalet.triggers.sqs_events import parse_queue_arn

DEFAULT_BATCH_SIZE = 10
RESPONSE_TYPES = ("ReportBatchItemFailures",)
#: accepted by the API but meaningless for SQS (stream and Kafka sources)
STREAM_ONLY = (
    "StartingPosition",
    "StartingPositionTimestamp",
    "ParallelizationFactor",
    "BisectBatchOnFunctionError",
    "MaximumRetryAttempts",
    "MaximumRecordAgeInSeconds",
    "TumblingWindowInSeconds",
    "DestinationConfig",
    "Topics",
    "Queues",
    "SourceAccessConfigurations",
    "SelfManagedEventSource",
    "AmazonManagedKafkaEventSourceConfig",
    "SelfManagedKafkaEventSourceConfig",
    "DocumentDBEventSourceConfig",
)


def _int(body: Mapping[str, Any], key: str, field: str, low: int, high: int) -> int | None:
    v = body.get(key)
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, int):
        raise InvalidRequestContentException(
            f"Could not parse request body into json: {key} must be an integer"
        )
    if v < low:
        raise ValidationException(
            validation_message(v, field, f"Member must have value greater than or equal to {low}")
        )
    if v > high:
        raise ValidationException(
            validation_message(v, field, f"Member must have value less than or equal to {high}")
        )
    return v


def _filter_criteria(value: object) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise InvalidRequestContentException(
            "Could not parse request body into json: FilterCriteria must be an object"
        )
    raw = value.get("Filters", [])
    if not isinstance(raw, list):
        raise InvalidRequestContentException(
            "Could not parse request body into json: FilterCriteria.Filters must be a list"
        )
    if len(raw) > filters.MAX_FILTERS:
        raise InvalidParameterValueException(
            f"The number of filters ({len(raw)}) exceeds the limit of {filters.MAX_FILTERS}."
        )
    out = []
    for f in raw:
        pattern = f.get("Pattern") if isinstance(f, dict) else None
        filters.parse_pattern(pattern)
        out.append({"Pattern": pattern})
    return {"Filters": out}


def settings(body: Mapping[str, Any], *, create: bool) -> dict[str, Any]:
    """The mapping settings a body gives (only those given, for an update)."""
    out: dict[str, Any] = {}
    if create:
        parse_queue_arn(body.get("EventSourceArn"))
    size = _int(body, "BatchSize", "batchSize", 1, 10000)
    if size is not None:
        out["BatchSize"] = size
    window = _int(body, "MaximumBatchingWindowInSeconds", "maximumBatchingWindowInSeconds", 0, 300)
    if window is not None:
        out["MaximumBatchingWindowInSeconds"] = window
    enabled = body.get("Enabled")
    if enabled is not None:
        if not isinstance(enabled, bool):
            raise InvalidRequestContentException(
                "Could not parse request body into json: Enabled must be a boolean"
            )
        out["Enabled"] = enabled
    if body.get("FilterCriteria") is not None:
        out["FilterCriteria"] = _filter_criteria(body["FilterCriteria"])
    types = body.get("FunctionResponseTypes")
    if types is not None:
        if not isinstance(types, list) or any(t not in RESPONSE_TYPES for t in types):
            raise ValidationException(
                validation_message(
                    types,
                    "functionResponseTypes",
                    "Member must satisfy constraint: [Member must satisfy enum value set: "
                    "[ReportBatchItemFailures]]",
                )
            )
        out["FunctionResponseTypes"] = list(dict.fromkeys(types))
    scaling = body.get("ScalingConfig")
    if scaling is not None:
        if not isinstance(scaling, dict):
            raise InvalidRequestContentException(
                "Could not parse request body into json: ScalingConfig must be an object"
            )
        conc = _int(scaling, "MaximumConcurrency", "scalingConfig.maximumConcurrency", 2, 1000)
        out["ScalingConfig"] = {} if conc is None else {"MaximumConcurrency": conc}
    for key in STREAM_ONLY:
        if body.get(key) is not None:
            raise InvalidParameterValueException(
                f"Unsupported MSK/stream parameter for an SQS event source: {key}"
            )
    return out


def merged(current: Mapping[str, Any], patch: Mapping[str, Any], fifo: bool) -> dict[str, Any]:
    """Settings after an update (or a create, from ``{}``), with defaults, checked whole."""
    out = {
        "BatchSize": DEFAULT_BATCH_SIZE,
        "MaximumBatchingWindowInSeconds": 0,
        "Enabled": True,
        "FunctionResponseTypes": [],
        **current,
        **patch,
    }
    size = int(out["BatchSize"])
    if fifo and size > 10:
        raise InvalidParameterValueException(
            "Batch size for SQS FIFO queues must be less than or equal to 10."
        )
    if size > 10 and int(out["MaximumBatchingWindowInSeconds"]) < 1:
        raise InvalidParameterValueException(
            "Maximum batch window in seconds must be greater than 0 if maximum batch size is "
            "greater than 10"
        )
    return out


def configuration(
    *,
    uuid: str,
    mapping_arn: str,
    source_arn: str,
    function_arn: str,
    settings: Mapping[str, Any],
    state: str,
    last_modified: float,
    last_result: str,
) -> dict[str, Any]:
    """``EventSourceMappingConfiguration`` for an SQS mapping."""
    out: dict[str, Any] = {
        "UUID": uuid,
        "BatchSize": settings["BatchSize"],
        "MaximumBatchingWindowInSeconds": settings["MaximumBatchingWindowInSeconds"],
        "EventSourceArn": source_arn,
        "FunctionArn": function_arn,
        "LastModified": round(last_modified, 3),
        "LastProcessingResult": last_result,
        "State": state,
        "StateTransitionReason": "USER_INITIATED",
        "FunctionResponseTypes": list(settings.get("FunctionResponseTypes", [])),
        "EventSourceMappingArn": mapping_arn,
    }
    if settings.get("FilterCriteria"):
        out["FilterCriteria"] = settings["FilterCriteria"]
    if settings.get("ScalingConfig"):
        out["ScalingConfig"] = settings["ScalingConfig"]
    return out
