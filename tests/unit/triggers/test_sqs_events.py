"""The SQS record shape and the reading of partial batch responses."""

from __future__ import annotations

import pytest

from lambdalet.errors import InvalidParameterValueException
from lambdalet.triggers import sqs_events

QUEUE = sqs_events.parse_queue_arn("arn:aws:sqs:us-east-2:123456789012:my-queue")


def test_record_shape() -> None:
    r = sqs_events.record(
        {
            "MessageId": "059f36b4-87a3-44ab-83d2-661975830a7d",
            "ReceiptHandle": "AQEB",
            "Body": "Test message.",
            "MD5OfBody": "e4e68fb7bd0e697a0ae8f1bb342846b3",
            "Attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": "1545082649183"},
            "MessageAttributes": {
                "k": {"StringValue": "v", "DataType": "String"},
                "b": {"BinaryValue": b"\x01", "DataType": "Binary"},
            },
            "MD5OfMessageAttributes": "abc",
        },
        QUEUE,
    )
    assert r == {
        "messageId": "059f36b4-87a3-44ab-83d2-661975830a7d",
        "receiptHandle": "AQEB",
        "body": "Test message.",
        "attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": "1545082649183"},
        "messageAttributes": {
            "k": {
                "stringValue": "v",
                "stringListValues": [],
                "binaryListValues": [],
                "dataType": "String",
            },
            "b": {
                "binaryValue": "AQ==",
                "stringListValues": [],
                "binaryListValues": [],
                "dataType": "Binary",
            },
        },
        "md5OfBody": "e4e68fb7bd0e697a0ae8f1bb342846b3",
        "md5OfMessageAttributes": "abc",
        "eventSource": "aws:sqs",
        "eventSourceARN": "arn:aws:sqs:us-east-2:123456789012:my-queue",
        "awsRegion": "us-east-2",
    }


IDS = ["a", "b", "c"]


@pytest.mark.parametrize(
    ("payload", "failed"),
    [
        (b"", set()),
        (b"null", set()),
        (b"{}", set()),
        (b'{"batchItemFailures": []}', set()),
        (b'{"batchItemFailures": null}', set()),
        (b'{"batchItemFailures": [{"itemIdentifier": "b"}]}', {"b"}),
        (b'{"batchItemFailures": [{"itemIdentifier": ""}]}', None),
        (b'{"batchItemFailures": [{"itemIdentifier": null}]}', None),
        (b'{"batchItemFailures": [{"itemIdentifer": "b"}]}', None),
        (b'{"batchItemFailures": [{"itemIdentifier": "zz"}]}', None),
        (b"not json", None),
    ],
)
def test_failed_items(payload: bytes, failed: set[str] | None) -> None:
    assert sqs_events.failed_items(payload, IDS) == failed


def test_fifo_failures_keep_the_rest() -> None:
    assert sqs_events.fifo_failures({"b"}, IDS) == {"b", "c"}
    assert sqs_events.fifo_failures(set(), IDS) == set()


def test_queue_arns() -> None:
    assert sqs_events.parse_queue_arn("arn:aws:sqs:us-east-1:123456789012:q.fifo").fifo
    with pytest.raises(InvalidParameterValueException, match="Kinesis"):
        sqs_events.parse_queue_arn("arn:aws:kinesis:us-east-1:123456789012:stream/s")
