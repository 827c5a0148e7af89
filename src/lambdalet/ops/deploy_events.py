"""Applies a template's trigger plans (:mod:`lambdalet.ops.template_events`) after its
functions are deployed: function URLs (with the public-access permission SAM adds for
``AuthType: NONE``), SQS event source mappings, and the stack's schedules and HTTP routes
through lambdalet's own endpoints (``/lambdalet/triggers/...``), which replace the stack's
previous ones (so schedules and routes a template drops are removed).
"""

from __future__ import annotations

import contextlib
import json
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

from lambdalet.ops.template_events import EventPlans, QueuePlan, UrlPlan

Say = Callable[[str], None]
PUBLIC_SID = "FunctionURLAllowPublicAccess"


class TriggerError(Exception):
    """A trigger could not be applied; names the resource and the step."""


def _put(endpoint: str, path: str, body: Any) -> Any:
    req = urllib.request.Request(
        endpoint.rstrip("/") + path,
        data=json.dumps(body).encode(),
        method="PUT",
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return json.loads(r.read())
    except urllib.error.HTTPError as e:
        detail = e.read().decode(errors="replace")
        try:
            parsed = json.loads(detail)
            detail = parsed.get("message") or parsed.get("Message") or detail
        except ValueError:
            pass
        raise TriggerError(f"{path}: {detail}") from None


def apply_url(lam: Any, plan: UrlPlan, say: Say) -> dict[str, Any]:
    target: dict[str, Any] = {"FunctionName": plan.function}
    if plan.qualifier:
        target["Qualifier"] = plan.qualifier
    wanted: dict[str, Any] = {"AuthType": plan.auth_type, "InvokeMode": plan.invoke_mode}
    if plan.cors is not None:
        wanted["Cors"] = dict(plan.cors)
    try:
        current = lam.get_function_url_config(**target)
    except lam.exceptions.ResourceNotFoundException:
        current = lam.create_function_url_config(**target, **wanted)
        say(f"function URL of {plan.logical_id}: {current['FunctionUrl']}")
    else:
        if any(current.get(k) != v for k, v in wanted.items()):
            current = lam.update_function_url_config(**target, **wanted)
    if plan.auth_type == "NONE":
        with contextlib.suppress(lam.exceptions.ResourceConflictException):  # already there
            lam.add_permission(
                **target,
                StatementId=PUBLIC_SID,
                Action="lambda:InvokeFunctionUrl",
                Principal="*",
                FunctionUrlAuthType="NONE",
            )
    return {
        "logicalId": plan.logical_id,
        "function": plan.function,
        "qualifier": plan.qualifier,
        "authType": plan.auth_type,
        "url": current["FunctionUrl"],
    }


def apply_queue(lam: Any, plan: QueuePlan, say: Say) -> dict[str, Any]:
    existing = lam.list_event_source_mappings(
        FunctionName=plan.function, EventSourceArn=plan.queue_arn
    )["EventSourceMappings"]
    settings = dict(plan.settings)
    if existing:
        uuid = existing[0]["UUID"]
        got = lam.update_event_source_mapping(
            UUID=uuid,
            FunctionName=plan.function_ref,
            Enabled=settings.pop("Enabled", True),
            **settings,
        )
    else:
        got = lam.create_event_source_mapping(
            EventSourceArn=plan.queue_arn, FunctionName=plan.function_ref, **settings
        )
        say(f"polling {plan.queue_arn} for {plan.function} ({plan.logical_id}.{plan.event})")
    return {
        "logicalId": plan.logical_id,
        "event": plan.event,
        "queue": plan.queue_arn,
        "uuid": got["UUID"],
        "state": got["State"],
    }


def apply_events(
    lam: Any, plans: EventPlans, apis: list[dict[str, Any]], stack: str, say: Say
) -> dict[str, list[Any]]:
    """Apply every plan; returns ``urls``, ``mappings``, ``schedules``, ``endpoints``."""
    endpoint = str(lam.meta.endpoint_url)
    urls = [apply_url(lam, p, say) for p in plans.urls]
    mappings = [apply_queue(lam, p, say) for p in plans.queues]
    got = _put(
        endpoint, f"/lambdalet/triggers/stacks/{stack}/schedules", {"Schedules": plans.schedules}
    )
    schedules = list(got.get("Schedules", []))
    served = _put(endpoint, f"/lambdalet/triggers/stacks/{stack}/apis", {"Apis": apis})
    endpoints = list(served.get("Endpoints", []))
    return {"urls": urls, "mappings": mappings, "schedules": schedules, "endpoints": endpoints}
