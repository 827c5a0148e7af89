from __future__ import annotations

import pytest

from lambdalet.api import logs_protocol as lp
from lambdalet.env.log_records import LogEvent
from lambdalet.errors import LogsInvalidParameterException


def ev(ts: int, msg: str, stream: str = "s1", rank: int = 0) -> LogEvent:
    return LogEvent(ts, stream, msg + "\n", f"{ts:016d}{rank:06d}")


@pytest.mark.parametrize(
    ("pattern", "message", "expected"),
    [
        ("", "anything", True),
        ("ERROR", "[ERROR] x", True),
        ("ERROR", "[error] x", False),
        ("ERROR Exception", "ERROR but no exc", False),
        ("ERROR Exception", "ERROR Exception", True),
        ("?ERROR ?WARN", "WARN here", True),
        ("?ERROR ?WARN", "INFO here", False),
        ("ERROR -retry", "ERROR retry", False),
        ('"bad input"', "a bad input b", True),
        ('"bad input"', "bad, input", False),
        ('{ $.level = "ERROR" }', '{"level": "ERROR"}', True),
        ('{ $.level = "ERR*" }', '{"level": "ERROR"}', True),
        ('{ $.level = "ERROR" }', "not json", False),
        ("{ $.n > 10 }", '{"n": 11}', True),
        ("{ $.n > 10 }", '{"n": 10}', False),
        ('{ $.n > 10 && $.a.b = "x" }', '{"n": 11, "a": {"b": "x"}}', True),
        ('{ $.n > 10 || $.a.b = "x" }', '{"n": 1, "a": {"b": "x"}}', True),
        ("{ $.missing = * }", '{"n": 1}', False),
    ],
)
def test_filter_patterns(pattern: str, message: str, expected: bool) -> None:
    assert lp.compile_pattern(pattern)(message) is expected


def test_group_name_from_name_or_arn_and_exactly_one() -> None:
    assert lp.group_name({"logGroupName": "/aws/lambda/f"}) == "/aws/lambda/f"
    arn = "arn:aws:logs:us-east-1:123456789012:log-group:/aws/lambda/f:*"
    assert lp.group_name({"logGroupIdentifier": arn}) == "/aws/lambda/f"
    for bad in ({}, {"logGroupName": "a", "logGroupIdentifier": "a"}, {"logGroupName": "a b"}):
        with pytest.raises(LogsInvalidParameterException):
            lp.group_name(bad)


def test_filter_pages_with_tokens_in_time_order_across_streams() -> None:
    events = [ev(3, "c", "s2"), ev(1, "a"), ev(2, "b", "s2"), ev(2, "b2", "s1", 1)]
    first = lp.filter_log_events({"limit": 2}, events, 10)
    assert [e["message"] for e in first["events"]] == ["a\n", "b\n"]
    rest = lp.filter_log_events({"nextToken": first["nextToken"]}, events, 10)
    assert [e["message"] for e in rest["events"]] == ["b2\n", "c\n"] and "nextToken" not in rest
    only = lp.filter_log_events({"logStreamNames": ["s2"], "startTime": 3}, events, 10)
    assert [e["message"] for e in only["events"]] == ["c\n"]
    assert only["searchedLogStreams"] == [{"logStreamName": "s2", "searchedCompletely": True}]
    with pytest.raises(LogsInvalidParameterException):
        lp.filter_log_events({"limit": 0}, events, 10)
    with pytest.raises(LogsInvalidParameterException):
        lp.filter_log_events({"nextToken": "%%%"}, events, 10)


def test_get_log_events_newest_first_and_tokens_stop_at_the_end() -> None:
    events = [ev(i, str(i)) for i in range(5)]
    newest = lp.get_log_events({"limit": 2}, events)
    assert [e["message"] for e in newest["events"]] == ["3\n", "4\n"]
    back = lp.get_log_events({"limit": 2, "nextToken": newest["nextBackwardToken"]}, events)
    assert [e["message"] for e in back["events"]] == ["1\n", "2\n"]
    fwd = lp.get_log_events({"nextToken": newest["nextForwardToken"]}, events)
    assert fwd["events"] == [] and fwd["nextForwardToken"] == newest["nextForwardToken"]
    window = lp.get_log_events({"startFromHead": True, "startTime": 1, "endTime": 3}, events)
    assert [e["message"] for e in window["events"]] == ["1\n", "2\n"]


def test_describe_streams_orders_and_pages() -> None:
    streams = lp.streams_of([ev(5, "x", "b"), ev(1, "y", "a"), ev(9, "z", "a")])
    by_name = lp.describe_log_streams({}, "/g", streams, "arn:aws:logs:r:1")
    assert [s["logStreamName"] for s in by_name["logStreams"]] == ["a", "b"]
    assert by_name["logStreams"][0]["lastEventTimestamp"] == 9
    newest = lp.describe_log_streams(
        {"orderBy": "LastEventTime", "descending": True, "limit": 1}, "/g", streams, "arn"
    )
    assert [s["logStreamName"] for s in newest["logStreams"]] == ["a"] and newest["nextToken"]
    with pytest.raises(LogsInvalidParameterException):
        lp.describe_log_streams(
            {"orderBy": "LastEventTime", "logStreamNamePrefix": "a"}, "/g", streams, "arn"
        )
