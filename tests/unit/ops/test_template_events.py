"""Plans for a template's triggers, and a note for everything not acted on."""

from __future__ import annotations

from pathlib import PurePath
from typing import Any

import pytest

from lambdalet.ops.template import PlanError, load_template
from lambdalet.ops.template_events import plan_events


def template(events: dict[str, Any], **props: Any) -> Any:
    doc = {
        "Resources": {
            "Queue": {"Type": "AWS::SQS::Queue", "Properties": {"QueueName": "jobs"}},
            "Fn": {
                "Type": "AWS::Serverless::Function",
                "Properties": {
                    "Runtime": "python3.12",
                    "Handler": "app.handler",
                    "CodeUri": "src",
                    "Events": events,
                    **props,
                },
            },
        }
    }
    return load_template(doc, PurePath("/app"), stack_name="shop")


def test_sqs_schedule_url_and_routes() -> None:
    t = template(
        {
            "Jobs": {
                "Type": "SQS",
                "Properties": {
                    "Queue": {"Fn::GetAtt": ["Queue", "Arn"]},
                    "BatchSize": 5,
                    "FilterCriteria": {"Filters": [{"Pattern": '{"body": {"k": ["v"]}}'}]},
                    "FunctionResponseTypes": ["ReportBatchItemFailures"],
                },
            },
            "Nightly": {
                "Type": "Schedule",
                "Properties": {"Schedule": "cron(0 3 * * ? *)", "Input": '{"a": 1}'},
            },
            "Morning": {
                "Type": "ScheduleV2",
                "Properties": {
                    "ScheduleExpression": "cron(0 9 ? * MON-FRI *)",
                    "ScheduleExpressionTimezone": "Europe/Paris",
                    "State": "DISABLED",
                    "FlexibleTimeWindow": {"Mode": "FLEXIBLE"},
                },
            },
            "Get": {"Type": "Api", "Properties": {"Path": "/items/{id}", "Method": "get"}},
            "Any": {"Type": "HttpApi"},
            "Upload": {"Type": "S3", "Properties": {"Bucket": "b"}},
        },
        FunctionUrlConfig={"AuthType": "NONE", "Cors": {"AllowOrigins": ["*"]}},
        AutoPublishAlias="live",
        Tracing="Active",
    )
    p = plan_events(t)
    fn = t.function_name("Fn")  # the stack's physical name of Fn
    (q,) = p.queues
    assert q.queue_arn == "arn:aws:sqs:us-east-1:123456789012:jobs"
    assert q.function_ref == f"{fn}:live" and q.settings["BatchSize"] == 5
    assert "FilterCriteria" in q.settings
    nightly, morning = sorted(p.schedules, key=lambda s: str(s["Name"]))[::-1]
    assert nightly == {
        "Name": "FnNightly",
        "FunctionName": fn,
        "Qualifier": "live",
        "Type": "Schedule",
        "Expression": "cron(0 3 * * ? *)",
        "Timezone": "UTC",
        "Input": '{"a": 1}',
        "Enabled": True,
    }
    assert (morning["Timezone"], morning["Enabled"]) == ("Europe/Paris", False)
    (url,) = p.urls
    assert (url.function, url.qualifier, url.auth_type) == (fn, "live", "NONE")
    routes = {(r.kind, r.path, r.method, r.payload_version, r.api) for r in p.routes}
    assert routes == {
        ("Api", "/items/{id}", "GET", "1.0", "ServerlessRestApi"),
        ("HttpApi", "$default", "ANY", "2.0", "ServerlessHttpApi"),
    }
    notes = "\n".join(p.notes)
    assert "Fn: property Tracing is not acted on" in notes
    assert "Fn.Events.Upload (S3): event type S3 is not run by lambdalet" in notes
    assert f"lambdalet invoke {fn}" in notes
    assert "Fn.Events.Morning (ScheduleV2): property FlexibleTimeWindow is not acted on" in notes
    assert "CodeUri" not in notes and "Runtime" not in notes


@pytest.mark.parametrize(
    "events",
    [
        {"E": {"Type": "SQS", "Properties": {}}},
        {"E": {"Type": "Schedule", "Properties": {}}},
        {"E": {"Type": "Api", "Properties": {"Path": "/x"}}},
        {
            "E": {
                "Type": "HttpApi",
                "Properties": {"Path": "/x", "Method": "get", "PayloadFormatVersion": "3.0"},
            }
        },
        {"E": {"Properties": {}}},
    ],
)
def test_bad_events_name_resource_and_field(events: dict[str, Any]) -> None:
    with pytest.raises(PlanError) as e:
        plan_events(template(events))
    assert str(e.value).startswith("Fn")


def test_globals_other_than_function_get_a_note() -> None:
    doc = {
        "Globals": {
            "Function": {"Timeout": 5},
            "Api": {"Cors": "'*'"},
            "HttpApi": {"Auth": {}},
        },
        "Resources": {
            "Fn": {
                "Type": "AWS::Serverless::Function",
                "Properties": {"Runtime": "python3.12", "Handler": "app.handler", "CodeUri": "src"},
            }
        },
    }
    notes = plan_events(load_template(doc, PurePath("/app"), stack_name="shop")).notes
    assert [n for n in notes if n.startswith("Globals.")] == [
        "Globals.Api: not acted on by lambdalet (only Globals.Function is merged); set these "
        "properties on each resource instead",
        "Globals.HttpApi: not acted on by lambdalet (only Globals.Function is merged); set these "
        "properties on each resource instead",
    ]
