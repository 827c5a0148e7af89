"""Schedule expressions (AWS's syntax and examples) and the runner, on a clock the test
moves: fires, payloads, missed fires after downtime, redeploys."""

from __future__ import annotations

import json
import math
import time
from calendar import timegm
from pathlib import Path

import pytest

from lambdalet.errors import InvalidParameterValueException
from lambdalet.store.records import NewEvent
from lambdalet.triggers import schedule_expr
from lambdalet.triggers.schedules import Region, ScheduleRunner
from tests.unit.store.helpers import ManualClock, open_store


def at(text: str) -> float:
    """'2026-11-27 14:00' UTC → epoch seconds."""
    return float(timegm(time.strptime(text, "%Y-%m-%d %H:%M")))


def fires(expression: str, start: str, n: int = 3, tz: str = "UTC") -> list[str]:
    e = schedule_expr.parse(expression, tz)
    t, out = at(start), []
    for _ in range(n):
        t = e.next_after(t, at(start))
        out.append(time.strftime("%Y-%m-%d %H:%M %a", time.gmtime(t)))
    return out


# 2026-11-27 is a Friday
@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        (
            "cron(15 10 * * ? *)",
            ["2026-11-28 10:15 Sat", "2026-11-29 10:15 Sun", "2026-11-30 10:15 Mon"],
        ),
        (
            "cron(0 18 ? * MON-FRI *)",
            ["2026-11-27 18:00 Fri", "2026-11-30 18:00 Mon", "2026-12-01 18:00 Tue"],
        ),
        (
            "cron(0 18 ? * 2-6 *)",
            ["2026-11-27 18:00 Fri", "2026-11-30 18:00 Mon", "2026-12-01 18:00 Tue"],
        ),
        (
            "cron(0/10 * ? * MON-FRI *)",
            ["2026-11-27 14:10 Fri", "2026-11-27 14:20 Fri", "2026-11-27 14:30 Fri"],
        ),
        (
            "cron(0 9 ? * 2#1 *)",
            ["2026-12-07 09:00 Mon", "2027-01-04 09:00 Mon", "2027-02-01 09:00 Mon"],
        ),
        (
            "cron(0 0 L * ? *)",
            ["2026-11-30 00:00 Mon", "2026-12-31 00:00 Thu", "2027-01-31 00:00 Sun"],
        ),
        (
            "cron(0 0 ? * 6L *)",
            ["2026-12-25 00:00 Fri", "2027-01-29 00:00 Fri", "2027-02-26 00:00 Fri"],
        ),
        (
            "cron(0 0 ? * 1 *)",
            ["2026-11-29 00:00 Sun", "2026-12-06 00:00 Sun", "2026-12-13 00:00 Sun"],
        ),
        ("cron(0 12 1 1 ? 2028)", ["2028-01-01 12:00 Sat"]),
        (
            "rate(5 minutes)",
            ["2026-11-27 14:05 Fri", "2026-11-27 14:10 Fri", "2026-11-27 14:15 Fri"],
        ),
        ("rate(1 day)", ["2026-11-28 14:00 Sat", "2026-11-29 14:00 Sun", "2026-11-30 14:00 Mon"]),
    ],
)
def test_expressions(expression: str, expected: list[str]) -> None:
    assert fires(expression, "2026-11-27 14:00", len(expected)) == expected


def test_time_zones() -> None:
    # 09:00 in New York is 14:00 UTC in winter, 13:00 UTC in summer
    assert fires("cron(0 9 * * ? *)", "2026-11-27 14:00", 1, "America/New_York") == [
        "2026-11-28 14:00 Sat"
    ]
    assert fires("cron(0 9 * * ? *)", "2026-06-01 00:00", 1, "America/New_York") == [
        "2026-06-01 13:00 Mon"
    ]


def test_a_past_year_never_fires() -> None:
    assert (
        schedule_expr.parse("cron(0 0 1 1 ? 2020)").next_after(at("2026-01-01 00:00")) == math.inf
    )


@pytest.mark.parametrize(
    "expression",
    [
        "rate(1 minutes)",
        "rate(5 minute)",
        "rate(0 minutes)",
        "rate(5 seconds)",
        "cron(0 9 * * *)",
        "cron(0 9 * * MON *)",
        "cron(0 9 ? * ? *)",
        "cron(0 9 ? * 8 *)",
        "cron(0 9 ? * 3#1,6#3 *)",
        "cron(61 9 * * ? *)",
        "every day",
    ],
)
def test_invalid_expressions(expression: str) -> None:
    with pytest.raises(InvalidParameterValueException):
        schedule_expr.parse(expression)


def test_bad_time_zone() -> None:
    with pytest.raises(InvalidParameterValueException, match="Timezone"):
        schedule_expr.parse("rate(1 hour)", "Mars/Olympus")


class Recorder:
    def __init__(self) -> None:
        self.events: list[NewEvent] = []

    def __call__(self, event: NewEvent) -> None:
        self.events.append(event)


def runner(tmp_path: Path, clock: ManualClock) -> tuple[ScheduleRunner, Recorder]:
    rec = Recorder()
    store = open_store(tmp_path, clock)
    return ScheduleRunner(store, rec, clock, Region("us-east-1", "123456789012")), rec


def test_runner_fires_on_time_with_the_scheduled_event_shape(tmp_path: Path) -> None:
    clock = ManualClock(at("2026-11-27 14:00"))
    r, rec = runner(tmp_path, clock)
    r.replace_stack(
        "app",
        [
            {
                "Name": "every5",
                "FunctionName": "fn",
                "Type": "Schedule",
                "Expression": "rate(5 minutes)",
            },
            {
                "Name": "nine",
                "FunctionName": "fn",
                "Qualifier": "live",
                "Type": "ScheduleV2",
                "Expression": "cron(0 9 * * ? *)",
                "Timezone": "Europe/Paris",
                "Input": '{"job": "report"}',
            },
        ],
    )
    assert r.tick() == 0
    clock.advance(299)
    assert r.tick() == 0
    clock.advance(1)
    assert r.tick() == 1
    event = json.loads(rec.events[0].payload)
    assert event == {
        "version": "0",
        "id": event["id"],
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": "123456789012",
        "time": "2026-11-27T14:05:00Z",
        "region": "us-east-1",
        "resources": ["arn:aws:events:us-east-1:123456789012:rule/every5"],
        "detail": {},
    }
    assert (rec.events[0].function_name, rec.events[0].qualifier) == ("fn", None)
    assert r.tick() == 0  # not twice
    clock.now = at("2026-11-28 08:00")  # 09:00 in Paris; the rate fired late, once
    assert r.tick() == 2
    paris = [e for e in rec.events if e.qualifier == "live"]
    assert [json.loads(e.payload) for e in paris] == [{"job": "report"}]
    late = json.loads(rec.events[1].payload)
    assert late["time"] == "2026-11-27T14:10:00Z"


def test_missed_fires_are_not_replayed_after_downtime(tmp_path: Path) -> None:
    clock = ManualClock(at("2026-11-27 14:00"))
    r, _ = runner(tmp_path, clock)
    r.replace_stack("app", [{"Name": "m", "FunctionName": "fn", "Expression": "rate(1 minute)"}])
    clock.advance(3600)  # the server was down for an hour
    r2, rec2 = runner(tmp_path, clock)
    r2.restore()
    assert r2.tick() == 0 and rec2.events == []
    clock.advance(60)
    assert r2.tick() == 1


def test_redeploy_keeps_unchanged_schedules_and_drops_removed(tmp_path: Path) -> None:
    clock = ManualClock(at("2026-11-27 14:00"))
    r, _ = runner(tmp_path, clock)
    first = r.replace_stack(
        "app",
        [
            {"Name": "a", "FunctionName": "fn", "Expression": "rate(10 minutes)"},
            {"Name": "b", "FunctionName": "fn", "Expression": "rate(1 hour)"},
        ],
    )
    clock.advance(120)
    again = r.replace_stack(
        "app", [{"Name": "a", "FunctionName": "fn", "Expression": "rate(10 minutes)"}]
    )
    assert [x.name for x in again] == ["a"] and again[0].next_fire == first[0].next_fire
    disabled = r.replace_stack(
        "app",
        [{"Name": "a", "FunctionName": "fn", "Expression": "rate(10 minutes)", "Enabled": False}],
    )
    assert disabled[0].next_fire == math.inf
    with pytest.raises(InvalidParameterValueException):
        r.replace_stack("app", [{"Name": "x", "FunctionName": "fn", "Expression": "rate(1 hours)"}])
    with pytest.raises(InvalidParameterValueException):
        r.replace_stack(
            "app",
            [
                {
                    "Name": "x",
                    "FunctionName": "fn",
                    "Expression": "rate(1 hour)",
                    "Timezone": "Europe/Paris",
                }
            ],
        )
