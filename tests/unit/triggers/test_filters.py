"""Event filtering over SQS records, as the Lambda Developer Guide's examples read."""

from __future__ import annotations

import json
from typing import Any

import pytest

from lambdalet.errors import InvalidParameterValueException
from lambdalet.triggers import filters


def rec(body: Any, **attrs: str) -> dict[str, Any]:
    return {
        "messageId": "m",
        "body": body if isinstance(body, str) else json.dumps(body),
        "attributes": {"ApproximateReceiveCount": "1", **attrs},
        "messageAttributes": {},
        "eventSource": "aws:sqs",
    }


def passes(pattern: dict[str, Any], record: dict[str, Any]) -> bool:
    return filters.sqs_record_passes([filters.parse_pattern(json.dumps(pattern))], record)


@pytest.mark.parametrize(
    ("pattern", "body", "ok"),
    [
        ({"body": {"kind": ["order"]}}, {"kind": "order"}, True),
        ({"body": {"kind": ["order"]}}, {"kind": "refund"}, False),
        ({"body": {"kind": ["order", "refund"]}}, {"kind": "refund"}, True),
        ({"body": {"n": [{"numeric": [">", 10, "<=", 20]}]}}, {"n": 15}, True),
        ({"body": {"n": [{"numeric": [">", 10, "<=", 20]}]}}, {"n": 21}, False),
        ({"body": {"n": [{"numeric": ["=", 300]}]}}, {"n": 300.0}, True),
        ({"body": {"n": ["300"]}}, {"n": 300}, False),
        ({"body": {"city": [{"prefix": "San"}]}}, {"city": "San Jose"}, True),
        ({"body": {"file": [{"suffix": ".png"}]}}, {"file": "a.jpg"}, False),
        ({"body": {"s": [{"anything-but": ["a", "b"]}]}}, {"s": "c"}, True),
        ({"body": {"s": [{"anything-but": ["a", "b"]}]}}, {"s": "a"}, False),
        ({"body": {"s": [{"anything-but": {"prefix": "x"}}]}}, {"s": "xyz"}, False),
        ({"body": {"s": [{"equals-ignore-case": "ABC"}]}}, {"s": "abc"}, True),
        ({"body": {"opt": [{"exists": False}]}}, {"other": 1}, True),
        ({"body": {"opt": [{"exists": True}]}}, {"other": 1}, False),
        ({"body": {"v": [None]}}, {"v": None}, True),
        ({"body": {"v": [""]}}, {"v": ""}, True),
        ({"body": {"tags": ["red"]}}, {"tags": ["blue", "red"]}, True),
        ({"body": {"a": {"b": ["c"]}}}, {"a": {"b": "c"}}, True),
        ({"body": {"a": ["x"], "b": ["y"]}}, {"a": "x", "b": "z"}, False),
        # a JSON pattern on a plain-string body drops the message
        ({"body": {"kind": ["order"]}}, "plain text", False),
        # metadata only: the body is not looked at
        ({"attributes": {"ApproximateReceiveCount": ["1"]}}, "plain text", True),
    ],
)
def test_patterns(pattern: dict[str, Any], body: Any, ok: bool) -> None:
    assert passes(pattern, rec(body)) is ok


def test_any_filter_passes_and_none_means_all() -> None:
    a = filters.parse_pattern('{"body": {"k": ["a"]}}')
    b = filters.parse_pattern('{"body": {"k": ["b"]}}')
    assert filters.sqs_record_passes([a, b], rec({"k": "b"}))
    assert not filters.sqs_record_passes([a, b], rec({"k": "c"}))
    assert filters.sqs_record_passes([], rec("anything"))


@pytest.mark.parametrize(
    "text",
    [
        "not json",
        "[1]",
        '{"body": "x"}',
        '{"body": {"n": [{"numeric": [">>", 1]}]}}',
        '{"body": {"n": [{"bogus": 1}]}}',
        '{"body": {"n": [[1]]}}',
        "{" + '"k": ["v"],' * 500 + '"z": ["v"]}',
    ],
)
def test_invalid_patterns(text: str) -> None:
    with pytest.raises(InvalidParameterValueException):
        filters.parse_pattern(text)
