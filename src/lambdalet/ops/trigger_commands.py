"""``lambdalet schedules``: every schedule the server runs, with its next fire time."""

from __future__ import annotations

import argparse
import json
import sys
import urllib.error
import urllib.request
from typing import Any

from lambdalet.ops.client import Style, table


def list_schedules(endpoint: str, stack: str | None = None) -> list[dict[str, Any]]:
    url = endpoint.rstrip("/") + "/lambdalet/triggers/schedules"
    if stack:
        url += f"?Stack={stack}"
    with urllib.request.urlopen(url, timeout=10) as r:
        body = json.loads(r.read())
    return list(body.get("Schedules", []))


def schedules_command(args: argparse.Namespace) -> int:
    try:
        rows = list_schedules(args.endpoint, args.stack)
    except (urllib.error.URLError, OSError) as e:
        msg = f"cannot reach the lambdalet server at {args.endpoint}: {e}"
        if args.json:
            print(json.dumps({"error": msg}))
        else:
            print(Style(sys.stderr).red(f"error: {msg}"), file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps({"Schedules": rows}))
        return 0
    style = Style(sys.stdout)
    if not rows:
        print(style.dim("no schedules"))
        return 0
    out = []
    for s in rows:
        target = s["FunctionName"] + (f":{s['Qualifier']}" if s.get("Qualifier") else "")
        when = s.get("NextFireTime") or "never (disabled)"
        tz = "" if s.get("Timezone", "UTC") == "UTC" else f" {s['Timezone']}"
        out.append([s["Stack"], s["Name"], f"{s['Expression']}{tz}", target, when])
    print(table(["STACK", "NAME", "EXPRESSION", "FUNCTION", "NEXT FIRE (UTC)"], out, style))
    return 0
