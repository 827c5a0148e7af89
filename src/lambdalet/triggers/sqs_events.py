"""The SQS event a poller invokes a function with, and what the function's answer means
for the batch (``ReportBatchItemFailures``).  No I/O.

Shapes: Lambda Developer Guide, "Using Lambda with Amazon SQS" (the record, with
``eventSourceARN`` spelt so, lower-camel ``messageAttributes`` values, every attribute a
string) and "Reporting batch item failures".
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from lambdalet.errors import InvalidParameterValueException

_SQS_ARN_RE = re.compile(
    r"arn:aws[a-zA-Z-]*:sqs:(?P<region>[a-z0-9-]+):(?P<account>\d{12}):(?P<name>[A-Za-z0-9_-]{1,80}(\.fifo)?)"
)


@dataclass(frozen=True)
class QueueRef:
    arn: str
    region: str
    account: str
    name: str

    @property
    def fifo(self) -> bool:
        return self.name.endswith(".fifo")


def parse_queue_arn(arn: object) -> QueueRef:
    if not isinstance(arn, str):
        raise InvalidParameterValueException("EventSourceArn must be an SQS queue ARN.")
    m = _SQS_ARN_RE.fullmatch(arn)
    if m is None:
        raise InvalidParameterValueException(
            f"Unsupported event source: {arn}. lambdalet polls Amazon SQS queues "
            "(arn:aws:sqs:<region>:<account>:<queue>); Kinesis, DynamoDB Streams, Kafka, MQ "
            "and DocumentDB sources are not supported."
        )
    return QueueRef(arn, m["region"], m["account"], m["name"])


def _attribute_value(value: Mapping[str, Any]) -> dict[str, Any]:
    def b64(x: object) -> str:
        return base64.b64encode(x if isinstance(x, bytes) else str(x).encode()).decode()

    out: dict[str, Any] = {}
    if "StringValue" in value:
        out["stringValue"] = value["StringValue"]
    if "BinaryValue" in value:
        out["binaryValue"] = b64(value["BinaryValue"])
    out["stringListValues"] = list(value.get("StringListValues", []))
    out["binaryListValues"] = [b64(x) for x in value.get("BinaryListValues", [])]
    out["dataType"] = value.get("DataType", "String")
    return out


def record(message: Mapping[str, Any], queue: QueueRef) -> dict[str, Any]:
    """One ``Records`` entry from a ReceiveMessage message (boto3's shape)."""
    out: dict[str, Any] = {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message.get("Body", ""),
        "attributes": {k: str(v) for k, v in (message.get("Attributes") or {}).items()},
        "messageAttributes": {
            k: _attribute_value(v) for k, v in (message.get("MessageAttributes") or {}).items()
        },
        "md5OfBody": message.get("MD5OfBody", ""),
    }
    if message.get("MD5OfMessageAttributes"):
        out["md5OfMessageAttributes"] = message["MD5OfMessageAttributes"]
    out["eventSource"] = "aws:sqs"
    out["eventSourceARN"] = queue.arn
    out["awsRegion"] = queue.region
    return out


def event(records: Sequence[Mapping[str, Any]]) -> bytes:
    return json.dumps({"Records": list(records)}, separators=(",", ":")).encode()


def failed_items(payload: bytes, message_ids: Sequence[str]) -> set[str] | None:
    """The message ids a ``ReportBatchItemFailures`` answer keeps on the queue.

    An empty set: every message succeeded (``null``, ``{}``, an empty or null
    ``batchItemFailures``).  None: the answer is invalid, so the whole batch failed (not
    JSON; an ``itemIdentifier`` empty, null, missing or not of this batch)."""
    try:
        value = json.loads(payload) if payload.strip() else None
    except (ValueError, UnicodeDecodeError):
        return None
    if value is None:
        return set()
    if not isinstance(value, dict):
        return None
    failures = value.get("batchItemFailures")
    if failures is None:
        return set()
    if not isinstance(failures, list):
        return None
    ids = set(message_ids)
    out: set[str] = set()
    for item in failures:
        if not isinstance(item, dict):
            return None
        ident = item.get("itemIdentifier")
        if not isinstance(ident, str) or ident not in ids:
            return None
        out.add(ident)
    return out


def fifo_failures(failed: set[str], message_ids: Sequence[str]) -> set[str]:
    """On a FIFO queue, a failure keeps the failed message and every later one."""
    for i, mid in enumerate(message_ids):
        if mid in failed:
            return set(message_ids[i:])
    return set()
