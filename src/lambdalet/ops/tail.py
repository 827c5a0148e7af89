"""``lambdalet logs``: a client of the server's CloudWatch Logs API, like ``aws logs tail``.

It calls ``FilterLogEvents`` on ``/aws/lambda/<function>`` with boto3 and follows the
AWS CLI v2's ``logs tail`` algorithm: page through ``nextToken``; when following, start
again from the newest timestamp seen and skip the event ids already printed for it.
The parsing and formatting here do no I/O.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from lambdalet.ops.client import Style
from lambdalet.ops.logs import parse_line

_RELATIVE = re.compile(r"(\d+)\s*([smhdw])")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_PLATFORM = ("START ", "END ", "REPORT ", "INIT_START ", "INIT_REPORT ", "EXTENSION\t", "TELEMETRY")


def parse_since(text: str, now_s: float) -> int:
    """``--since``: ``30s``, ``10m``, ``2h``, ``1d``, ``1w`` ago, or an ISO-8601 time; as ms."""
    m = _RELATIVE.fullmatch(text.strip())
    if m:
        return int((now_s - int(m.group(1)) * _UNIT_S[m.group(2)]) * 1000)
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(
            f"--since {text!r}: expected <number><s|m|h|d|w> or an ISO-8601 time"
        ) from None
    if when.tzinfo is None:
        when = when.astimezone()  # a local time, as the AWS CLI reads one
    return int(when.timestamp() * 1000)


@dataclass(frozen=True)
class Event:
    timestamp: int
    stream: str
    message: str
    event_id: str

    @classmethod
    def of(cls, raw: dict[str, Any]) -> Event:
        return cls(
            int(raw["timestamp"]),
            str(raw.get("logStreamName", "")),
            str(raw["message"]),
            str(raw.get("eventId", "")),
        )


def _plain(text: str) -> str:
    return text


def format_text(e: Event, style: Style) -> str:
    """``<local time> <message>``; each line of a multi-line event on a line of its own
    under the same time; platform lines dimmed or, when they report a failure, red."""
    stamp = datetime.fromtimestamp(e.timestamp / 1000).strftime("%H:%M:%S.%f")[:-3]
    lines = e.message.rstrip("\n").split("\n")
    first = lines[0]
    if first.startswith(_PLATFORM):
        failed = "Status: error" in first or "Status: timeout" in first
        colour = style.red if failed else style.dim
    elif first.startswith(("[ERROR]", "[CRITICAL]")) or "Traceback" in first:
        colour = style.red
    elif first.startswith("[WARNING]"):
        colour = style.yellow
    else:
        colour = _plain
    pad = " " * len(stamp)
    out = [f"{style.cyan(stamp)} {colour(first)}"]
    out += [f"{pad} {colour(line)}" for line in lines[1:]]
    return "\n".join(out)


def format_json(e: Event) -> str:
    """One JSON object per event: ``lambdalet logs --json``'s fields plus ``time`` (epoch
    ms) and ``logStream``."""
    record = parse_line(e.message.rstrip("\n"))
    record.update(time=e.timestamp, logStream=e.stream)
    return json.dumps(record)


Filter = Callable[..., dict[str, Any]]


def fetch(filter_events: Filter, group: str, start: int | None, pattern: str | None) -> list[Event]:
    """Every event from ``start`` (inclusive), through every page."""
    kwargs: dict[str, Any] = {"logGroupName": group, "interleaved": True}
    if start is not None:
        kwargs["startTime"] = start
    if pattern:
        kwargs["filterPattern"] = pattern
    events: list[Event] = []
    while True:
        page = filter_events(**kwargs)
        events += [Event.of(raw) for raw in page.get("events", [])]
        token = page.get("nextToken")
        if not token:
            return events
        kwargs["nextToken"] = token


def follow(
    filter_events: Filter,
    group: str,
    start: int,
    pattern: str | None,
    *,
    poll_s: float = 1.0,
    sleep: Callable[[float], None] = time.sleep,
    missing: type[Exception] | None = None,
) -> Iterator[Event]:
    """New events as they come, forever (``aws logs tail --follow``'s loop).  A log group
    that does not exist yet (``missing``) is waited for."""
    seen_at: tuple[int, set[str]] = (start, set())
    while True:
        try:
            events = fetch(filter_events, group, seen_at[0], pattern)
        except Exception as err:
            if missing is None or not isinstance(err, missing):
                raise
            events = []
        for event in events:
            newest, ids = seen_at
            if event.timestamp == newest and event.event_id in ids:
                continue
            if event.timestamp > newest:
                seen_at = (event.timestamp, set())
            seen_at[1].add(event.event_id)
            yield event
        sleep(poll_s)
