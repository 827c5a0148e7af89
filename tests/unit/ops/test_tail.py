from __future__ import annotations

import io
from typing import Any

import pytest

from lambdalet.ops.client import Style
from lambdalet.ops.tail import Event, follow, format_json, format_text, parse_since


def test_since_relative_and_iso() -> None:
    assert parse_since("10m", 1000.0) == 400_000
    assert parse_since("2h", 10_000.0) == 10_000_000 - 7_200_000
    assert parse_since("2026-01-01T00:00:00+00:00", 0) == 1767225600000
    with pytest.raises(ValueError, match="--since"):
        parse_since("yesterday", 0)


def test_a_multi_line_event_prints_as_lines_under_one_time() -> None:
    e = Event(1767225600123, "s", "[ERROR] boom\nTraceback:\n  x\n", "1")
    lines = format_text(e, Style(io.StringIO())).split("\n")
    assert len(lines) == 3 and lines[0].endswith(" [ERROR] boom")
    assert lines[1].strip() == "Traceback:" and lines[1].startswith(" " * 12)


def test_json_keeps_the_parsed_fields_with_time_and_stream() -> None:
    e = Event(5, "st", "END RequestId: abc\n", "1")
    assert format_json(e) == (
        '{"message": "END RequestId: abc", "type": "platform.end", "requestId": "abc", '
        '"time": 5, "logStream": "st"}'
    )


def test_follow_restarts_at_the_newest_time_and_skips_events_already_seen() -> None:
    pages = [
        {"events": [{"timestamp": 1, "message": "a\n", "eventId": "1a"}], "nextToken": "t"},
        {"events": [{"timestamp": 2, "message": "b\n", "eventId": "2a"}]},
        # the next poll starts at 2 again: 2a is skipped, 2b is new
        {
            "events": [
                {"timestamp": 2, "message": "b\n", "eventId": "2a"},
                {"timestamp": 2, "message": "c\n", "eventId": "2b"},
            ]
        },
    ]
    calls: list[dict[str, Any]] = []

    def filter_events(**kwargs: Any) -> dict[str, Any]:
        calls.append(kwargs)
        return pages[len(calls) - 1]

    got = follow(filter_events, "/g", 0, "ERROR", sleep=lambda s: None)
    assert [next(got).message for _ in range(3)] == ["a\n", "b\n", "c\n"]
    assert calls[1]["nextToken"] == "t" and calls[2]["startTime"] == 2
    assert all(c["filterPattern"] == "ERROR" for c in calls)
