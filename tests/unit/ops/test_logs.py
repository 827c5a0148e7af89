"""``lambdalet logs --json``: log lines as JSON objects, fed as they are read.

The platform lines are made by the server's own formatters (``env/log_lines.py``), so a
change of format there breaks these tests.
"""

from __future__ import annotations

import json

import pytest

from lambdalet.env import log_lines
from lambdalet.ops.logs import JsonLines, parse_line

RID = "8f5c3a1e-2b7d-4c59-9e0a-0123456789ab"


def test_start_end_and_init_start() -> None:
    assert parse_line(log_lines.start(RID, "$LATEST")) == {
        "message": f"START RequestId: {RID} Version: $LATEST",
        "type": "platform.start",
        "requestId": RID,
        "version": "$LATEST",
    }
    assert parse_line(log_lines.end(RID)) == {
        "message": f"END RequestId: {RID}",
        "type": "platform.end",
        "requestId": RID,
    }
    line = log_lines.init_start("python:3.11.v1", "arn:aws:lambda:us-east-1::runtime:abc")
    assert parse_line(line) == {
        "message": line,
        "type": "platform.initStart",
        "runtimeVersion": "python:3.11.v1",
        "runtimeVersionArn": "arn:aws:lambda:us-east-1::runtime:abc",
    }


def test_report_of_a_cold_invoke() -> None:
    report = log_lines.Report(RID, 12.345, 13, 256, 41, init_duration_ms=88.5)
    assert parse_line(report.line()) == {
        "message": report.line(),
        "type": "platform.report",
        "requestId": RID,
        "durationMs": 12.35,
        "billedDurationMs": 13,
        "memorySizeMB": 256,
        "maxMemoryUsedMB": 41,
        "initDurationMs": 88.5,
    }


@pytest.mark.parametrize(
    ("status", "error_type", "expected"),
    [
        ("timeout", None, {"status": "timeout"}),
        ("error", "Runtime.ExitError", {"status": "error", "errorType": "Runtime.ExitError"}),
    ],
)
def test_report_of_a_failed_invoke(
    status: str, error_type: str | None, expected: dict[str, str]
) -> None:
    report = log_lines.Report(RID, 3000.0, 3000, 128, 30, status=status, error_type=error_type)
    parsed = parse_line(report.line())
    assert parsed["type"] == "platform.report" and parsed["durationMs"] == 3000.0
    assert "initDurationMs" not in parsed
    assert {k: parsed[k] for k in expected} == expected


def test_init_report_extension_and_telemetry_lines() -> None:
    init = parse_line(log_lines.init_report(10000.0, "init", "timeout", None))
    assert (init["type"], init["initDurationMs"], init["phase"], init["status"]) == (
        "platform.initReport",
        10000.0,
        "init",
        "timeout",
    )
    ext = parse_line(log_lines.extension("ext1", "Ready", ["INVOKE", "SHUTDOWN"]))
    assert ext["type"] == "platform.extension"
    assert (ext["name"], ext["state"], ext["events"]) == ("ext1", "Ready", ["INVOKE", "SHUTDOWN"])
    tel = parse_line(log_lines.telemetry("ext1", "Subscribed", ["platform", "function"]))
    assert tel["type"] == "platform.telemetrySubscription"
    assert tel["types"] == ["platform", "function"]


def test_function_output() -> None:
    assert parse_line("hello from the handler") == {
        "message": "hello from the handler",
        "type": "function",
    }
    # the Python runtime's logger: level, time and request ID
    line = f"[WARNING]\t2026-11-26T17:00:00.123Z\t{RID}\tdisk almost full"
    assert parse_line(line) == {
        "message": line,
        "type": "function",
        "level": "WARNING",
        "timestamp": "2026-11-26T17:00:00.123Z",
        "requestId": RID,
    }
    # lines that only look like platform lines stay function output
    for text in ("START the engine", "REPORT: all good", "END", "EXTENSION\tbogus"):
        assert parse_line(text) == {"message": text, "type": "function"}


def test_json_lines_wait_for_the_end_of_a_line() -> None:
    lines = JsonLines()
    assert lines.feed(b"first\nsec") == json.dumps({"message": "first", "type": "function"}) + "\n"
    assert lines.feed(b"ond line") == ""
    out = lines.feed(("\n" + log_lines.end(RID) + "\n").encode())
    assert [json.loads(x)["message"] for x in out.splitlines()] == [
        "second line",
        f"END RequestId: {RID}",
    ]
    assert lines.flush() == ""
    lines.feed("no newline at the end: \u00e9".encode()[:-1])  # cut inside a character
    assert json.loads(lines.flush())["message"] == "no newline at the end: \ufffd"
