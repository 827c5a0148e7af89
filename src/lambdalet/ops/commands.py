"""The ``deploy``, ``invoke`` and ``ps`` commands (``cli.py`` only wires their arguments)."""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import sys
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from lambdalet.ops.client import (
    ServerUnreachable,
    Style,
    admin_environments,
    admin_request,
    human_age,
    lambda_client,
    logs_client,
    progress,
    state_colour,
    table,
    with_progress,
)
from lambdalet.ops.deploy import deploy
from lambdalet.ops.deploy_common import DeployError, DeployResult
from lambdalet.ops.template import PlanError, Template
from lambdalet.ops.template_events import api_specs, plan_events, skipped_hint
from lambdalet.ops.workers import worker_column


def _fail(message: str, as_json: bool = False, error: Exception | None = None) -> int:
    """Print an error on stderr; with ``--json`` also an error object on stdout."""
    style = Style(sys.stderr)
    print(f"{style.red('error:')} {message}", file=sys.stderr)
    if as_json:
        out: dict[str, Any] = {"error": message}
        if isinstance(error, PlanError):
            out.update(resource=error.resource, field=error.field)
        elif isinstance(error, DeployError):
            out.update(resource=error.resource, step=error.step)
        print(json.dumps(out), flush=True)
    return 1


def _connection_error(e: Exception) -> bool:
    from botocore.exceptions import EndpointConnectionError

    return isinstance(e, EndpointConnectionError | ServerUnreachable)


# --------------------------------------------------------------------------- deploy


def parameters(pairs: list[str]) -> dict[str, str]:
    """Parameter values as SAM takes them: ``Key=Value`` or
    ``ParameterKey=Key,ParameterValue=Value`` (the value may hold commas and ``=``)."""
    out: dict[str, str] = {}
    for pair in pairs:
        if pair.startswith("ParameterKey="):
            key, sep, value = pair.removeprefix("ParameterKey=").partition(",ParameterValue=")
        else:
            key, sep, value = pair.partition("=")
        if not sep or not key:
            raise PlanError(
                "--parameter-overrides",
                pair,
                "expected Key=Value or ParameterKey=Key,ParameterValue=Value",
            )
        out[key] = value
    return out


def _watched(source: Path, template: Template) -> list[Path]:
    paths = [source]
    for plan in template.layers():
        paths.append(Path(plan.content_dir))
    for lid in template.function_ids():  # only those whose Condition holds
        res = template.resources[lid]
        props = res.get("Properties", {}) or {}
        for key in ("CodeUri", "Code"):
            value = props.get(key)
            if isinstance(value, str):
                paths.append(Path(template.base_dir) / value)
        context = (res.get("Metadata") or {}).get("DockerContext")
        if props.get("PackageType") == "Image" and isinstance(context, str):
            paths.append(Path(template.base_dir) / context)  # rebuilt on change
    return paths


def _print_result(result: DeployResult, as_json: bool) -> None:
    if as_json:
        print(json.dumps(result.as_json()), flush=True)
        return
    style = Style(sys.stdout)
    rows = [["layer", r.name, r.action, r.arn] for r in result.layers]
    for f in result.functions:
        detail = f.arn
        if f.alias:
            detail += f":{f.alias} (version {f.version}"
            if f.provisionedConcurrency:
                detail += f", {f.provisionedConcurrency} provisioned"
            detail += ")"
        action = f.action
        if f.changes:
            action += f" ({', '.join(f.changes)})"
        rows.append(["function", f.name, action, detail])
    rows.extend(
        ["function", name, "deleted", "(no longer in the template)"] for name in result.deleted
    )
    rows.extend(["url", u["function"], u["authType"], u["url"]] for u in result.urls)
    rows.extend(
        ["sqs", m["queue"].rsplit(":", 1)[-1], m["state"], m["uuid"]] for m in result.mappings
    )
    rows.extend(
        ["schedule", s["Name"], s["Expression"], f"next {s.get('NextFireTime') or 'never'}"]
        for s in result.schedules
    )
    rows.extend(["route", e["route"], e["function"], e["url"]] for e in result.endpoints)
    print(table(["KIND", "NAME", "ACTION", "ARN"], rows, style))
    print(
        style.green(f"deployed {result.source} (stack {result.stack}) in {result.seconds:.1f}s"),
        flush=True,
    )


def _say_skipped(template: Template, said: set[str], say: Callable[[str], None]) -> None:
    """Resource types lambdalet does not deploy, and the values references to them get;
    each said once (also across --watch)."""
    for lid, rtype in template.skipped():
        if f"{lid} {rtype}" not in said:
            said.add(f"{lid} {rtype}")
            say(f"skipped: {lid} ({rtype}) is not deployed by lambdalet; {skipped_hint(rtype)}")
    for ref in template.skipped_references():
        if ref.warning() not in said:
            said.add(ref.warning())
            say(f"warning: {ref.warning()}")
    events = plan_events(template)
    api_specs(template, events)  # adds the notes of API resources
    for note in events.notes:
        if note not in said:
            said.add(note)
            say(f"note: {note}")


def deploy_command(args: argparse.Namespace) -> int:
    from lambdalet.ops.loader import load
    from lambdalet.ops.watch import snapshot, watch

    path = Path(args.path)
    say = progress
    said: set[str] = set()
    try:
        params = parameters(args.parameter or [])
        source, template = load(path, params, args.stack_name)
        lam = lambda_client(args.endpoint)
        initial = snapshot(_watched(source, template)) if args.watch else None
        _say_skipped(template, said, say)
        result = deploy(lam, template, source.name, say, prune_dropped=args.prune)
    except (PlanError, DeployError) as e:
        return _fail(str(e), args.json, e)
    except Exception as e:
        if _connection_error(e):
            return _fail(f"cannot reach the lambdalet server at {args.endpoint}: {e}", args.json)
        raise
    _print_result(result, args.json)
    if not args.watch:
        return 0

    state = {"template": template}

    def paths() -> list[Path]:
        return _watched(source, state["template"])

    def redeploy(files: list[str]) -> None:
        shown = ", ".join(Path(f).name for f in files[:3]) + (" ..." if len(files) > 3 else "")
        say(f"changed: {shown}; redeploying")
        try:
            _, state["template"] = load(path, params, args.stack_name)
            _say_skipped(state["template"], said, say)
            result = deploy(lam, state["template"], source.name, say, prune_dropped=args.prune)
            _print_result(result, args.json)
        except (PlanError, DeployError) as e:
            _fail(str(e), args.json, e)
        except Exception as e:
            if not _connection_error(e):
                raise
            _fail(f"cannot reach the lambdalet server at {args.endpoint}: {e}", args.json)

    say(f"watching {len(paths())} paths for changes (Ctrl-C to stop)")
    with contextlib.suppress(KeyboardInterrupt):
        watch(paths, redeploy, interval=args.interval, initial=initial)
    return 0


# --------------------------------------------------------------------------- invoke


def invoke_command(args: argparse.Namespace) -> int:
    payload = args.payload if args.payload is not None else "{}"
    if payload.startswith("@"):
        payload = Path(payload[1:]).read_text()
    try:
        json.loads(payload)
    except json.JSONDecodeError as e:
        return _fail(f"--payload is not JSON: {e}", args.json)
    lam = lambda_client(args.endpoint)
    try:
        function = resolve_function(lam, args.function, args.stack_name)
    except Exception as e:
        if _connection_error(e):
            return _fail(f"cannot reach the lambdalet server at {args.endpoint}: {e}", args.json)
        raise
    kwargs: dict[str, Any] = {
        "FunctionName": function,
        "Payload": payload.encode(),
        "LogType": "Tail" if args.tail else "None",
    }
    if args.qualifier:
        kwargs["Qualifier"] = args.qualifier
    try:
        if args.debug_port is not None:
            admin_request(
                args.endpoint, "PUT", f"/functions/{function}/debug", {"port": args.debug_port}
            )
            progress(
                f"{function}: a new environment waits for a debugger on "
                f"127.0.0.1:{args.debug_port}; attach one (VS Code: Python Debugger: Remote "
                "Attach, or Node.js: Attach; see docs/operations.md) and the invoke goes on"
            )
        resp = with_progress(args.endpoint, lambda: lam.invoke(**kwargs), progress)
    except ValueError as e:
        return _fail(f"{args.function}: {e}", args.json)
    except Exception as e:
        from botocore.exceptions import ClientError

        if isinstance(e, ClientError):
            err = e.response.get("Error", {})
            return _fail(f"{args.function}: {err.get('Code')}: {err.get('Message')}", args.json)
        if _connection_error(e):
            return _fail(f"cannot reach the lambdalet server at {args.endpoint}: {e}", args.json)
        raise
    body: bytes = resp["Payload"].read()
    log = base64.b64decode(resp.get("LogResult", "")).decode(errors="replace")
    error = resp.get("FunctionError")
    if args.json:
        try:
            shown: Any = json.loads(body)
        except ValueError:
            shown = body.decode(errors="replace")
        out: dict[str, Any] = {
            "StatusCode": resp["StatusCode"],
            "ExecutedVersion": resp.get("ExecutedVersion"),
            "FunctionError": error,
            "Payload": shown,
            "RequestId": resp["ResponseMetadata"]["RequestId"],
        }
        if args.tail:
            out["Log"] = log
        print(json.dumps(out))
        return 1 if error else 0
    if args.tail and log:
        style = Style(sys.stderr)
        for line in log.rstrip("\n").splitlines():
            print(style.dim(line), file=sys.stderr)
    text = body.decode(errors="replace")
    if error:
        print(Style(sys.stdout).red(text), flush=True)
        return 1
    print(text, flush=True)
    return 0


# --------------------------------------------------------------------------- ps


def ps_command(args: argparse.Namespace) -> int:
    try:
        envs = admin_environments(args.endpoint)
    except ServerUnreachable as e:
        return _fail(str(e), args.json)
    if args.function:
        envs = [e for e in envs if e.get("function") == args.function]
    envs.sort(key=lambda e: (str(e.get("function")), str(e.get("version")), e.get("ageSeconds", 0)))
    if args.json:
        print(json.dumps({"Environments": envs}))
        return 0
    style = Style(sys.stdout)
    if not envs:
        print(style.dim("no environments"))
        return 0
    rows = []
    for env in envs:
        state = str(env.get("state", "?"))
        if env.get("frozen"):
            state += " (frozen)"
        rows.append(
            [
                str(env.get("function", "")),
                str(env.get("version", "")),
                state,
                f"{env.get('memoryMB', '?')} MB",
                human_age(float(env.get("ageSeconds", 0))),
                str(env.get("invocations", 0)),
                str(env.get("id", "")),
            ]
        )
    headers = ["FUNCTION", "VERSION", "STATE", "MEMORY", "AGE", "INVOKES", "ID"]
    if cells := worker_column(args.endpoint, envs):  # cluster mode: where each one lives
        headers.insert(6, "WORKER")
        for row, cell in zip(rows, cells, strict=True):
            row.insert(6, cell)

    def colour(column: int, cell: str, padded: str) -> str:
        if column == 2:
            return state_colour(style, cell)(padded)
        return style.dim(padded) if column == len(headers) - 1 else padded

    print(table(headers, rows, style, colour))
    return 0


# --------------------------------------------------------------------------- logs


def logs_command(args: argparse.Namespace) -> int:
    """Print a function's log through the server's CloudWatch Logs API."""
    from botocore.exceptions import ClientError

    from lambdalet.ops import tail

    function = args.function
    if not function.startswith("/"):
        try:
            function = resolve_function(lambda_client(args.endpoint), function, args.stack_name)
        except Exception as e:
            if _connection_error(e):
                return _fail(
                    f"cannot reach the lambdalet server at {args.endpoint}: {e}", args.json
                )
            raise
    group = function if function.startswith("/") else f"/aws/lambda/{function}"
    now = time.time()
    try:
        start = parse_since_arg(args.since, now)
    except ValueError as e:
        return _fail(str(e), args.json)
    logs = logs_client(args.endpoint)
    style = Style(sys.stdout)

    def show(event: tail.Event) -> None:
        text = tail.format_json(event) if args.json else tail.format_text(event, style)
        print(text, flush=True)

    try:
        if not args.follow or args.since is not None or args.tail is not None:
            events = tail.fetch(logs.filter_log_events, group, start, args.filter)
            if args.tail is not None:
                events = events[-args.tail :] if args.tail > 0 else []
            for event in events:
                show(event)
            if not args.follow:
                return 0
            begin = events[-1].timestamp if events else int(now * 1000)
            seen = {ev.event_id for ev in events if ev.timestamp == begin}
        else:
            # --follow alone starts at the end: only what is written from now on
            begin, seen = int(now * 1000), set()
        print(f"following {group} (Ctrl-C to stop)", file=sys.stderr, flush=True)
        for event in tail.follow(
            logs.filter_log_events,
            group,
            begin,
            args.filter,
            missing=logs.exceptions.ResourceNotFoundException,
        ):
            if event.timestamp == begin and event.event_id in seen:
                continue
            show(event)
    except KeyboardInterrupt:
        return 0
    except ClientError as e:
        err = e.response.get("Error", {})
        if err.get("Code") == "ResourceNotFoundException":
            return _fail(f"no logs for function {args.function!r} ({group})", args.json)
        return _fail(f"{group}: {err.get('Code')}: {err.get('Message')}", args.json)
    except Exception as e:
        if _connection_error(e):
            return _fail(f"cannot reach the lambdalet server at {args.endpoint}: {e}", args.json)
        raise
    return 0


def parse_since_arg(since: str | None, now: float) -> int | None:
    from lambdalet.ops.tail import parse_since

    return None if since is None else parse_since(since, now)


# --------------------------------------------------------------------------- stacks


def _here_stack(stack_name: str | None) -> str | None:
    """``--stack-name``, or the stack of the template / lambdalet.toml in this folder."""
    if stack_name:
        return stack_name
    from lambdalet.ops.loader import default_stack_name, find_source

    try:
        return default_stack_name(find_source(Path.cwd()))
    except PlanError:
        return None


def resolve_function(lam: Any, name: str, stack_name: str | None) -> str:
    """A function name, or the logical ID of a function of this folder's stack (as SAM's
    ``sam local invoke HelloWorldFunction``); the name itself when it is neither."""
    if ":" in name or "/" in name:
        return name
    try:
        lam.get_function_configuration(FunctionName=name)
        return name
    except lam.exceptions.ResourceNotFoundException:
        pass
    stack = _here_stack(stack_name)
    if stack is None:
        return name
    from lambdalet.ops.stack import by_logical_id, deployed_functions

    return by_logical_id(deployed_functions(lam), stack, name) or name


def stacks_command(args: argparse.Namespace) -> int:
    from lambdalet.ops.stack import deployed_functions, stacks_of

    try:
        stacks = stacks_of(deployed_functions(lambda_client(args.endpoint)))
    except Exception as e:
        if _connection_error(e):
            return _fail(f"cannot reach the lambdalet server at {args.endpoint}: {e}", args.json)
        raise
    if args.json:
        print(json.dumps([asdict(s) for s in stacks.values()]))
        return 0
    style = Style(sys.stdout)
    rows = [
        [
            s.name,
            str(len(s.functions)),
            ", ".join(f"{lid or '?'}={fn}" for fn, lid in s.functions.items()),
            ", ".join(s.sources),
        ]
        for s in stacks.values()
    ]
    if not rows:
        print("no stacks", file=sys.stderr)
        return 0
    print(table(["STACK", "FUNCTIONS", "LOGICAL ID=NAME", "TEMPLATE"], rows, style))
    return 0


def delete_command(args: argparse.Namespace) -> int:
    """``lambdalet delete STACK``: every function of the stack; asks first on a terminal."""
    from lambdalet.ops.stack import delete_stack, deployed_functions, stacks_of

    try:
        lam = lambda_client(args.endpoint)
        info = stacks_of(deployed_functions(lam)).get(args.stack)
        if info is None:
            return _fail(f"no stack {args.stack!r} on {args.endpoint}", args.json)
        if not args.yes and sys.stdin.isatty():
            names = ", ".join(info.functions)
            answer = input(f"delete stack {args.stack} ({names})? [y/N] ")
            if answer.strip().lower() not in ("y", "yes"):
                print("not deleted", file=sys.stderr)
                return 1
        deleted = delete_stack(lam, args.stack, progress)
    except Exception as e:
        if _connection_error(e):
            return _fail(f"cannot reach the lambdalet server at {args.endpoint}: {e}", args.json)
        raise
    if args.json:
        print(json.dumps({"stack": args.stack, "deleted": deleted}))
    else:
        print(f"deleted stack {args.stack}: {len(deleted)} function(s)")
    return 0
