"""What a template's functions are triggered by: ``Events`` (SQS, Schedule, ScheduleV2, Api,
HttpApi) and ``FunctionUrlConfig`` as plans, and a note for everything lambdalet does not act
on (other event types, properties of events and functions it ignores), each naming what to do
instead.  No I/O: :mod:`lambdalet.ops.deploy` applies the plans.

Events of a function with ``AutoPublishAlias`` target the alias, as SAM wires them.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from lambdalet.ops.template import SERVERLESS_FUNCTION, PlanError, Template
from lambdalet.ops.template.fields import resource_props
from lambdalet.ops.template.intrinsics import Resolver

#: function properties the deploy acts on (plans in ops/template.py, events here); any
#: other property of a function gets a note
ACTED_ON = frozenset(
    {
        "FunctionName",
        "Runtime",
        "Handler",
        "CodeUri",
        "InlineCode",
        "Code",
        "MemorySize",
        "Timeout",
        "Environment",
        "Layers",
        "Description",
        "Role",
        "ReservedConcurrentExecutions",
        "AutoPublishAlias",
        "ProvisionedConcurrencyConfig",
        "Events",
        "FunctionUrlConfig",
        "PackageType",
        "ImageUri",
        "ImageConfig",
    }
)
#: properties that only matter on AWS, ignored without a note
SILENT = frozenset({"Policies", "PermissionsBoundary", "Tags", "CodeSigningConfigArn"})

SQS_PROPS = {
    "BatchSize",
    "MaximumBatchingWindowInSeconds",
    "Enabled",
    "FilterCriteria",
    "FunctionResponseTypes",
    "ScalingConfig",
}
SCHEDULE_PROPS = {"Schedule", "Input", "Enabled", "State", "Name", "RuleName", "Description"}
SCHEDULE_V2_PROPS = {
    "ScheduleExpression",
    "ScheduleExpressionTimezone",
    "Input",
    "State",
    "Name",
    "Description",
}
API_PROPS = {"Path", "Method", "RestApiId"}
HTTP_API_PROPS = {"Path", "Method", "ApiId", "PayloadFormatVersion", "TimeoutInMillis"}
BY_HAND = "invoke it by hand instead: lambdalet invoke {fn} --payload @event.json"


@dataclass(frozen=True)
class UrlPlan:
    logical_id: str
    function: str
    qualifier: str | None
    auth_type: str
    cors: Mapping[str, Any] | None
    invoke_mode: str


@dataclass(frozen=True)
class QueuePlan:
    logical_id: str
    event: str
    function: str
    qualifier: str | None
    queue_arn: str
    settings: Mapping[str, Any]  # CreateEventSourceMapping fields

    @property
    def function_ref(self) -> str:
        return f"{self.function}:{self.qualifier}" if self.qualifier else self.function


@dataclass(frozen=True)
class RoutePlan:
    logical_id: str
    event: str
    function: str
    qualifier: str | None
    kind: str  # "Api" (REST, payload 1.0) or "HttpApi"
    api: str  # the API's logical id, or ServerlessRestApi / ServerlessHttpApi
    path: str  # "$default" for an HttpApi catch-all
    method: str  # upper case, "ANY" for any
    payload_version: str  # "1.0" or "2.0"


@dataclass
class EventPlans:
    urls: list[UrlPlan] = field(default_factory=list)
    queues: list[QueuePlan] = field(default_factory=list)
    schedules: list[dict[str, Any]] = field(default_factory=list)
    routes: list[RoutePlan] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _extra(props: Mapping[str, Any], known: set[str]) -> list[str]:
    return sorted(k for k in props if k not in known)


def plan_events(template: Template) -> EventPlans:
    out = EventPlans()
    r = Resolver(template, {})
    for section in template.other_globals:
        out.notes.append(
            f"Globals.{section}: not acted on by lambdalet (only Globals.Function is merged); "
            "set these properties on each resource instead"
        )
    for lid in template.function_ids():
        res = template.resources[lid]
        props = resource_props(lid, res)
        fn = template.function_name(lid)
        alias = r.prop(props, "AutoPublishAlias", lid)
        qualifier = alias if isinstance(alias, str) else None
        for key in sorted(props):
            if key not in ACTED_ON and key not in SILENT:
                out.notes.append(
                    f"{lid}: property {key} is not acted on by lambdalet (the function runs "
                    "without it)"
                )
        url = r.prop(props, "FunctionUrlConfig", lid)
        if url is not None:
            out.urls.append(_url(lid, fn, qualifier, url))
        if res["Type"] != SERVERLESS_FUNCTION:
            continue
        events = props.get("Events") or {}
        if not isinstance(events, Mapping):
            raise PlanError(lid, "Events", "must be a mapping of event name to event")
        for name, ev in events.items():
            if not isinstance(ev, Mapping) or not isinstance(ev.get("Type"), str):
                raise PlanError(lid, f"Events.{name}", "needs a Type")
            raw = ev.get("Properties") or {}
            if not isinstance(raw, Mapping):
                raise PlanError(lid, f"Events.{name}.Properties", "must be a mapping")
            # an API id names a resource lambdalet does not create: kept as written
            ev_props = {
                k: v if k in ("RestApiId", "ApiId") else r.resolve(v, lid, f"Events.{name}.{k}")
                for k, v in raw.items()
            }
            _event(out, lid, fn, qualifier, str(name), ev["Type"], ev_props)
    return out


def _url(lid: str, fn: str, qualifier: str | None, url: Any) -> UrlPlan:
    if not isinstance(url, Mapping):
        raise PlanError(lid, "FunctionUrlConfig", "must be a mapping with AuthType")
    auth = url.get("AuthType")
    if auth not in ("NONE", "AWS_IAM"):
        raise PlanError(lid, "FunctionUrlConfig.AuthType", "must be NONE or AWS_IAM")
    cors = url.get("Cors")
    if cors is not None and not isinstance(cors, Mapping):
        raise PlanError(lid, "FunctionUrlConfig.Cors", "must be a mapping")
    mode = url.get("InvokeMode", "BUFFERED")
    return UrlPlan(lid, fn, qualifier, str(auth), cors, str(mode))


def _event(
    out: EventPlans,
    lid: str,
    fn: str,
    qualifier: str | None,
    name: str,
    kind: str,
    props: Mapping[str, Any],
) -> None:
    where = f"{lid}.Events.{name} ({kind})"

    def ignored(known: set[str], instead: str) -> None:
        for key in _extra(props, known):
            out.notes.append(f"{where}: property {key} is not acted on; {instead}")

    if kind == "SQS":
        queue = props.get("Queue")
        if not isinstance(queue, str):
            raise PlanError(lid, f"Events.{name}.Queue", "must be a queue ARN")
        settings = {k: props[k] for k in SQS_PROPS if k in props}
        out.queues.append(QueuePlan(lid, name, fn, qualifier, queue, settings))
        out.notes.append(
            f"{where}: the server polls queue {queue.rsplit(':', 1)[-1]!r} ({queue}) on the SQS "
            "endpoint its AWS SDK settings name (AWS_ENDPOINT_URL_SQS, AWS_ENDPOINT_URL); "
            "create the queue there"
        )
        ignored(SQS_PROPS | {"Queue"}, "configure it on the queue or the mapping by hand")
    elif kind == "Schedule":
        expr = props.get("Schedule")
        if not isinstance(expr, str):
            raise PlanError(lid, f"Events.{name}.Schedule", "must be rate(...) or cron(...)")
        enabled = props.get("Enabled", props.get("State", "ENABLED"))
        out.schedules.append(
            {
                "Name": str(props.get("Name") or props.get("RuleName") or f"{lid}{name}"),
                "FunctionName": fn,
                "Qualifier": qualifier,
                "Type": "Schedule",
                "Expression": expr,
                "Timezone": "UTC",
                "Input": _input(lid, name, props.get("Input")),
                "Enabled": enabled is True or enabled == "ENABLED",
            }
        )
        ignored(SCHEDULE_PROPS, "failed fires follow the function's async retry settings")
    elif kind == "ScheduleV2":
        expr = props.get("ScheduleExpression")
        if not isinstance(expr, str):
            raise PlanError(
                lid, f"Events.{name}.ScheduleExpression", "must be rate(...) or cron(...)"
            )
        if expr.startswith("at("):
            out.notes.append(f"{where}: one-time at(...) schedules are not run by lambdalet")
            return
        out.schedules.append(
            {
                "Name": str(props.get("Name") or f"{lid}{name}"),
                "FunctionName": fn,
                "Qualifier": qualifier,
                "Type": "ScheduleV2",
                "Expression": expr,
                "Timezone": str(props.get("ScheduleExpressionTimezone") or "UTC"),
                "Input": _input(lid, name, props.get("Input")),
                "Enabled": props.get("State", "ENABLED") == "ENABLED",
            }
        )
        ignored(SCHEDULE_V2_PROPS, "lambdalet fires at the exact minute (no flexible window)")
    elif kind in ("Api", "HttpApi"):
        _route(out, lid, fn, qualifier, name, kind, props)
        known = API_PROPS if kind == "Api" else HTTP_API_PROPS
        ignored(known, "the route is served without it (no authorizers, no request checks)")
    else:
        out.notes.append(
            f"{where}: event type {kind} is not run by lambdalet; " + BY_HAND.format(fn=fn)
        )


def _input(lid: str, name: str, value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        try:
            json.loads(value)
        except ValueError:
            raise PlanError(lid, f"Events.{name}.Input", "must be JSON text") from None
        return value
    return json.dumps(value)


def _route(
    out: EventPlans,
    lid: str,
    fn: str,
    qualifier: str | None,
    name: str,
    kind: str,
    props: Mapping[str, Any],
) -> None:
    path, method = props.get("Path"), props.get("Method")
    version = "1.0"
    if kind == "HttpApi":
        version = str(props.get("PayloadFormatVersion", "2.0"))
        if version not in ("1.0", "2.0"):
            raise PlanError(lid, f"Events.{name}.PayloadFormatVersion", "must be 1.0 or 2.0")
        if path is None and method is None:
            path, method = "$default", "ANY"
    if not isinstance(path, str) or not isinstance(method, str):
        raise PlanError(lid, f"Events.{name}", "needs Path and Method")
    if not path.startswith("/") and path != "$default":
        raise PlanError(lid, f"Events.{name}.Path", "must start with /")
    api_key = "RestApiId" if kind == "Api" else "ApiId"
    api_ref = props.get(api_key)
    api = "ServerlessRestApi" if kind == "Api" else "ServerlessHttpApi"
    if isinstance(api_ref, Mapping) and isinstance(api_ref.get("Ref"), str):
        api = api_ref["Ref"]
    elif isinstance(api_ref, str):
        api = api_ref
    m = method.upper()
    out.routes.append(
        RoutePlan(lid, name, fn, qualifier, kind, api, path, "ANY" if m == "ANY" else m, version)
    )


SERVERLESS_API = "AWS::Serverless::Api"
SERVERLESS_HTTP_API = "AWS::Serverless::HttpApi"
#: properties of API resources that lambdalet acts on
API_RESOURCE_PROPS = {SERVERLESS_API: {"StageName", "Variables", "BinaryMediaTypes"}}
HTTP_API_RESOURCE_PROPS = {"StageName", "StageVariables"}


def api_specs(template: Template, plans: EventPlans) -> list[dict[str, Any]]:
    """The ``Apis`` body of ``PUT /lambdalet/triggers/stacks/<stack>/apis``: the routes
    grouped by API, with the stage, stage variables and binary media types of the API's
    resource when the template declares one.  Notes what else an API resource sets."""
    r = Resolver(template, {})
    out: dict[tuple[str, str], dict[str, Any]] = {}
    for route in plans.routes:
        key = (route.kind, route.api)
        spec = out.get(key)
        if spec is None:
            spec = {"Id": route.api, "Kind": route.kind, "Routes": []}
            res = template.resources.get(route.api)
            if res is not None:
                wanted = SERVERLESS_API if route.kind == "Api" else SERVERLESS_HTTP_API
                if res.get("Type") != wanted:
                    raise PlanError(
                        route.logical_id,
                        f"Events.{route.event}",
                        f"{route.api} is not an {wanted}",
                    )
                props = resource_props(route.api, res)
                known = (
                    API_RESOURCE_PROPS[SERVERLESS_API]
                    if route.kind == "Api"
                    else HTTP_API_RESOURCE_PROPS
                )
                for k in sorted(props):
                    if k not in known:
                        plans.notes.append(
                            f"{route.api} ({wanted}): property {k} is not acted on; its routes "
                            "are served without it"
                        )
                if route.kind == "Api":
                    spec["Stage"] = r.prop(props, "StageName", route.api)
                    spec["StageVariables"] = r.prop(props, "Variables", route.api) or {}
                    spec["BinaryMediaTypes"] = r.prop(props, "BinaryMediaTypes", route.api) or []
                else:
                    spec["StageVariables"] = r.prop(props, "StageVariables", route.api) or {}
            out[key] = spec
        spec["Routes"].append(
            {
                "Path": route.path,
                "Method": route.method,
                "FunctionName": route.function,
                "Qualifier": route.qualifier,
                "PayloadFormatVersion": route.payload_version,
            }
        )
    used = {api for _, api in out}
    for lid in template.resources:
        rtype = template.resources[lid].get("Type")
        served = rtype in (SERVERLESS_API, SERVERLESS_HTTP_API) and template.created(lid)
        if served and lid not in used:
            plans.notes.append(
                f"{lid} ({rtype}): no function event routes to it, so nothing is served; "
                "routes come from functions' Api / HttpApi events (DefinitionBody is not read)"
            )
    return list(out.values())


_SKIPPED_HINTS = {
    "AWS::Serverless::Api": "its routes come from its functions' Api events and are served "
    "under /lambdalet/stacks/<stack>/<api>/<stage>/ (deploy lists the endpoints)",
    "AWS::Serverless::HttpApi": "its routes come from its functions' HttpApi events and are "
    "served under /lambdalet/stacks/<stack>/<api>/ (deploy lists the endpoints)",
    "AWS::SQS::Queue": "create the queue on the SQS endpoint the server's AWS SDK settings name "
    "(AWS_ENDPOINT_URL_SQS, e.g. LocalStack, ElasticMQ or moto); SQS events poll it there",
    "AWS::SNS::Topic": "publish to a local SNS stand-in yourself, or invoke subscribers by hand",
    "AWS::S3::Bucket": "point the code at a local S3 stand-in (AWS_ENDPOINT_URL_S3)",
    "AWS::DynamoDB::Table": "point the code at DynamoDB Local (AWS_ENDPOINT_URL_DYNAMODB)",
    "AWS::IAM::Role": "roles are not enforced: functions run with whatever credentials you give",
    "AWS::Events::Rule": "use a Schedule / ScheduleV2 event on the function instead",
    "AWS::Lambda::Permission": "use aws lambda add-permission against the server if needed",
    "AWS::Lambda::EventSourceMapping": "use an SQS event on the function, or "
    "aws lambda create-event-source-mapping against the server",
    "AWS::Lambda::Url": "use FunctionUrlConfig on the function, or "
    "aws lambda create-function-url-config against the server",
}


def skipped_hint(rtype: str) -> str:
    """What to do instead of a resource type lambdalet does not deploy."""
    return _SKIPPED_HINTS.get(rtype, "create what it stands for yourself if the code needs it")
