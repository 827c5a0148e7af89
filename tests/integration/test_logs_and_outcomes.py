"""Truthful outcomes in every view, and the CloudWatch Logs read API with real clients.

One server for the module: a handler that raises is an error (with its type) on the
admin API and in ``/metrics``; an Init failure is a cold start with its Init time; the
function's log reads back through boto3's ``logs`` client and the AWS CLI (v1: it has
``filter-log-events`` and ``get-log-events``, not ``logs tail``) with timestamps, streams
named as Lambda names them and a traceback as one multi-line event.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
import urllib.request
from typing import Any

import pytest

from tests.integration.harness import Server, aws_cli, create, invoke, lam, server

__all__ = ["lam", "server"]

STREAM = re.compile(r"\d{4}/\d\d/\d\d/\[\$LATEST\][0-9a-f]{32}")

RAISES = """
def handler(event, context):
    print("about to fail")
    raise ValueError("bad input " + str(event.get("n")))
"""


def admin_invocations(server: Server) -> list[dict[str, Any]]:
    with urllib.request.urlopen(server.url + "/lambdalet/admin/invocations") as r:
        items: list[dict[str, Any]] = json.loads(r.read())["Invocations"]
    return items


def metrics(server: Server) -> str:
    with urllib.request.urlopen(server.url + "/metrics") as r:
        return str(r.read().decode())


def aws(server: Server, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return aws_cli(server.url, "logs", *args, check=check, timeout=120)


@pytest.fixture(scope="module")
def raised(server: Server, lam: Any) -> tuple[str, str]:
    """A function whose handler raised ValueError: (name, request id)."""
    name = create(lam, {"app.py": RAISES})
    r = invoke(lam, name, {"n": 7})
    assert r.function_error == "Unhandled" and r.json()["errorType"] == "ValueError"
    return name, r.request_id


def wait_for(what: str, probe: Any, timeout: float = 30) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        got = probe()
        if got:
            return got
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def test_a_handler_error_is_an_error_in_admin_and_metrics(
    server: Server, raised: tuple[str, str]
) -> None:
    name, rid = raised
    item = wait_for(
        "the admin record",
        lambda: next((i for i in admin_invocations(server) if i["requestId"] == rid), None),
    )
    assert (item["status"], item["errorType"], item["cold"]) == ("error", "ValueError", True)
    text = metrics(server)
    assert f'lambdalet_invocations_total{{function="{name}",outcome="error"}} 1.0' in text
    assert f'lambdalet_errors_total{{error_type="ValueError",function="{name}"}} 1.0' in text
    assert f'function="{name}",outcome="success"' not in text


def test_an_init_failure_is_a_cold_start_with_its_init_time(server: Server, lam: Any) -> None:
    name = create(lam, {"app.py": "import no_such_module\n"})
    r = invoke(lam, name)
    assert r.json()["errorType"] == "Runtime.ImportModuleError"
    item = wait_for(
        "the admin record",
        lambda: next(
            (i for i in admin_invocations(server) if i["requestId"] == r.request_id), None
        ),
    )
    assert item["status"] == "init_failure" and item["errorType"] == "Runtime.ImportModuleError"
    assert item["cold"] is True and item["initDurationMs"] > 0
    assert f'function="{name}",outcome="init_failure"' in metrics(server)


def test_boto3_reads_the_function_log_as_from_cloudwatch(
    server: Server, raised: tuple[str, str]
) -> None:
    name, rid = raised
    logs = server.logs_client()
    group = f"/aws/lambda/{name}"
    groups = logs.describe_log_groups(logGroupNamePrefix=group)["logGroups"]
    assert [g["logGroupName"] for g in groups] == [group]
    streams = logs.describe_log_streams(logGroupName=group)["logStreams"]
    assert len(streams) == 1 and STREAM.fullmatch(streams[0]["logStreamName"]), streams
    stream = streams[0]["logStreamName"]

    events = wait_for(
        "the REPORT event",
        lambda: (
            [
                e
                for page in logs.get_paginator("filter_log_events").paginate(logGroupName=group)
                for e in page["events"]
            ]
            if any(
                e["message"].startswith(f"REPORT RequestId: {rid}")
                for e in logs.filter_log_events(logGroupName=group)["events"]
            )
            else None
        ),
    )
    messages = [e["message"] for e in events]
    assert messages[0].startswith("INIT_START Runtime Version: ")
    assert f"START RequestId: {rid} Version: $LATEST\n" in messages
    assert "about to fail\n" in messages
    assert all(e["logStreamName"] == stream and e["timestamp"] > 1e12 for e in events)
    assert [e["timestamp"] for e in events] == sorted(e["timestamp"] for e in events)
    # the traceback is one event of several lines, with no carriage return
    trace = next(m for m in messages if "Traceback" in m)
    assert trace.startswith("[ERROR] ValueError: bad input 7\n") and "\r" not in trace
    assert trace.count("\n") >= 3

    # a filter pattern, and pagination with nextToken
    found = logs.filter_log_events(logGroupName=group, filterPattern='"bad input" ?ERROR')
    assert [e["message"] for e in found["events"]] == [trace]
    first = logs.filter_log_events(logGroupName=group, limit=2)
    assert len(first["events"]) == 2 and "nextToken" in first
    rest = logs.filter_log_events(logGroupName=group, nextToken=first["nextToken"])
    assert [e["eventId"] for e in first["events"] + rest["events"]] == [
        e["eventId"] for e in events
    ]
    later = logs.filter_log_events(logGroupName=group, startTime=events[-1]["timestamp"] + 1)
    assert later["events"] == []

    # GetLogEvents: newest first by default, tokens that stop where the stream ends
    tail = logs.get_log_events(logGroupName=group, logStreamName=stream, limit=1)
    assert tail["events"][0]["message"].startswith(f"REPORT RequestId: {rid}")
    head = logs.get_log_events(logGroupName=group, logStreamName=stream, startFromHead=True)
    assert [e["message"] for e in head["events"]] == messages
    again = logs.get_log_events(
        logGroupName=group, logStreamName=stream, nextToken=head["nextForwardToken"]
    )
    assert again["events"] == [] and again["nextForwardToken"] == head["nextForwardToken"]

    missing = logs.exceptions.ResourceNotFoundException
    with pytest.raises(missing):
        logs.filter_log_events(logGroupName="/aws/lambda/no-such-function")
    with pytest.raises(logs.exceptions.InvalidParameterException):
        logs.filter_log_events(logGroupName=group, logStreamNames=[stream], logStreamNamePrefix="x")


def test_the_aws_cli_filters_and_gets_log_events(server: Server, raised: tuple[str, str]) -> None:
    name, rid = raised
    group = f"/aws/lambda/{name}"
    out = json.loads(aws(server, "filter-log-events", "--log-group-name", group).stdout)
    assert any(e["message"].startswith(f"END RequestId: {rid}") for e in out["events"])
    stream = out["events"][0]["logStreamName"]
    got = json.loads(
        aws(
            server,
            "get-log-events",
            "--log-group-name",
            group,
            "--log-stream-name",
            stream,
            "--start-from-head",
        ).stdout
    )
    assert [e["message"] for e in got["events"]] == [e["message"] for e in out["events"]]
    bad = aws(server, "filter-log-events", "--log-group-name", "/aws/lambda/nope", check=False)
    assert bad.returncode != 0 and "ResourceNotFoundException" in bad.stderr
