"""``lambdalet deploy``: create or update layers and functions through the server's Lambda API.

Idempotent: a layer is published only when its zip differs from its latest version's, a
function's configuration and code are updated only when they differ from what the server has.
Functions are tagged with the deploy's stack; at the end, the stack's functions the template no
longer declares are deleted (:mod:`lambdalet.ops.stack`).

The zips are made in :mod:`lambdalet.ops.packaging`, each layer and function is brought to
its plan in :mod:`lambdalet.ops.deploy_steps`, a failed deploy is put back by
:mod:`lambdalet.ops.rollback`.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from lambdalet.ops import build
from lambdalet.ops.deploy_common import DeployResult, Say, deploy_error
from lambdalet.ops.deploy_events import apply_events
from lambdalet.ops.deploy_steps import check_owner, deploy_function, deploy_layer
from lambdalet.ops.packaging import host_python_note
from lambdalet.ops.rollback import Rollback
from lambdalet.ops.stack import prune, stack_tags
from lambdalet.ops.template import PlanError, Template
from lambdalet.ops.template_events import api_specs, plan_events


def deploy(
    lam: Any, template: Template, source: str, say: Say, *, prune_dropped: bool = True
) -> DeployResult:
    """Publish changed layers, create or update every function, then delete dropped ones.

    Either every function deploys, or the functions are rolled back to what they were
    (:class:`Rollback`) and the error is raised.  ``source`` is the template's file name,
    next to ``template.base_dir``.
    """
    started = time.monotonic()
    stack = template.stack_name
    for lid in template.function_ids():  # refuse before changing anything
        check_owner(lam, stack, lid, template.function_name(lid))
    layer_plans = template.layers()
    cache_root = Path(template.base_dir) / build.CACHE_DIR_NAME
    layer_results = [deploy_layer(lam, p, say, cache_root) for p in layer_plans]
    arns = {r.logicalId: r.arn for r in layer_results}
    fn_plans = template.functions(arns)
    for note in sorted({n for p in fn_plans if (n := host_python_note(p.runtime))}):
        say(f"warning: {note}")
    layer_dirs = [Path(p.content_dir) for p in layer_plans]
    path = str(Path(template.base_dir) / source)
    undo = Rollback(lam, say)
    try:
        fn_results = [
            deploy_function(
                lam,
                p,
                say,
                layer_dirs,
                stack_tags(stack, p.logical_id, path),
                cache_root,
                undo=undo,
            )
            for p in fn_plans
        ]
        events = plan_events(template)
        apis = api_specs(template, events)
        try:
            triggers = apply_events(lam, events, apis, stack, say)
        except PlanError:
            raise
        except Exception as e:
            raise deploy_error(
                stack, "setting up triggers (URLs, queues, schedules, routes)", e
            ) from None
    except Exception:
        undo.run()
        raise
    deleted: list[str] = []
    if prune_dropped:
        try:
            deleted = prune(lam, stack, path, {p.name for p in fn_plans}, say)
        except Exception as e:
            raise deploy_error(
                stack, "deleting functions the template no longer declares", e
            ) from None
    return DeployResult(
        source,
        layer_results,
        fn_results,
        round(time.monotonic() - started, 3),
        stack=stack,
        deleted=deleted,
        skipped=[{"logicalId": lid, "type": t} for lid, t in template.skipped()],
        references=[r.as_json() for r in template.skipped_references()],
        urls=triggers["urls"],
        mappings=triggers["mappings"],
        schedules=triggers["schedules"],
        endpoints=triggers["endpoints"],
        notes=events.notes,
    )
