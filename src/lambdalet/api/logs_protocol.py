"""The CloudWatch Logs read API (2014-03-28, AWS JSON 1.1), as pure functions.  No I/O.

Requests are validated here, events filtered, sorted and paged here, and responses
shaped here; ``api/logs_handlers.py`` reads the events and calls these.  Lambda's names:
log group ``/aws/lambda/<function>`` (or the function's ``LoggingConfig.LogGroup``), one
log stream per execution environment (``YYYY/MM/DD/[<version>]<32 hex>``).
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from lambdalet.env.log_records import LogEvent
from lambdalet.errors import LogsInvalidParameterException, LogsResourceNotFoundException

TARGET_PREFIX = "Logs_20140328."
GROUP_PREFIX = "/aws/lambda/"
_GROUP_NAME = re.compile(r"[.\-_/#A-Za-z0-9]{1,512}")
#: a response holds at most this many bytes of messages (as CloudWatch, 1 MB)
PAGE_BYTES = 1024 * 1024
MAX_EVENTS = 10_000


def default_group(function_name: str) -> str:
    return GROUP_PREFIX + function_name


# ---------------------------------------------------------------------- validation


def _int(body: Mapping[str, Any], key: str, lo: int, hi: int, default: int) -> int:
    value = body.get(key, default)
    if value is None:
        return default
    if not isinstance(value, int) or isinstance(value, bool) or not lo <= value <= hi:
        raise LogsInvalidParameterException(
            f"1 validation error detected: Value '{value}' at '{key}' failed to satisfy "
            f"constraint: Member must have value between {lo} and {hi}"
        )
    return value


def _opt_int(body: Mapping[str, Any], key: str) -> int | None:
    value = body.get(key)
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise LogsInvalidParameterException(f"{key} must be a non-negative integer")
    return value


def _opt_str(body: Mapping[str, Any], key: str, max_len: int = 1024) -> str | None:
    value = body.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > max_len:
        raise LogsInvalidParameterException(f"{key} must be a string of at most {max_len}")
    return value


def group_name(body: Mapping[str, Any]) -> str:
    """Exactly one of ``logGroupName`` / ``logGroupIdentifier`` (a name or an ARN)."""
    name = _opt_str(body, "logGroupName", 512)
    ident = _opt_str(body, "logGroupIdentifier", 2048)
    if (name is None) == (ident is None):
        raise LogsInvalidParameterException(
            "LogGroup name and LogGroup ARN are mutually exclusive parameters."
            if name is not None
            else "Either logGroupName or logGroupIdentifier must be specified."
        )
    if ident is not None:
        # arn:aws:logs:<region>:<account>:log-group:<name>[:*]
        if ident.startswith("arn:"):
            parts = ident.split(":log-group:", 1)
            if len(parts) != 2:
                raise LogsInvalidParameterException(f"Invalid log group ARN: {ident}")
            name = parts[1].removesuffix(":*")
        else:
            name = ident
    assert name is not None
    if not _GROUP_NAME.fullmatch(name):
        raise LogsInvalidParameterException(
            "1 validation error detected: Value at 'logGroupName' failed to satisfy "
            "constraint: Member must satisfy regular expression pattern: [\\.\\-_/#A-Za-z0-9]+"
        )
    return name


def not_found_group() -> LogsResourceNotFoundException:
    return LogsResourceNotFoundException("The specified log group does not exist.")


def not_found_stream() -> LogsResourceNotFoundException:
    return LogsResourceNotFoundException("The specified log stream does not exist.")


# ---------------------------------------------------------------------- tokens


def encode_token(data: Mapping[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data, separators=(",", ":")).encode()).decode()


def decode_token(token: object) -> dict[str, Any]:
    if not isinstance(token, str):
        raise LogsInvalidParameterException("The specified nextToken is invalid.")
    try:
        data = json.loads(base64.urlsafe_b64decode(token.encode()))
    except ValueError:
        raise LogsInvalidParameterException("The specified nextToken is invalid.") from None
    if not isinstance(data, dict):
        raise LogsInvalidParameterException("The specified nextToken is invalid.")
    return data


# ---------------------------------------------------------------------- filter patterns

_TERM = re.compile(r'\s*(?:(?P<quoted>[?-]?"(?:[^"\\]|\\.)*")|(?P<word>\S+))')
_JSON_CMP = re.compile(
    r"\s*\$\.(?P<path>[A-Za-z0-9_.\[\]]+)\s*(?P<op>=|!=|<=|>=|<|>)\s*"
    r'(?P<value>"(?:[^"\\]|\\.)*"|[^\s&|)]+)\s*'
)

Matcher = Callable[[str], bool]


def compile_pattern(pattern: str | None) -> Matcher:
    """A filter pattern (CloudWatch Logs' syntax, the common subset) as a predicate.

    ``""``: everything; ``ERROR Exception``: every term (case-sensitive); ``?ERROR ?WARN``:
    any term; ``-DEBUG``: not that term; ``"a phrase"``; JSON patterns ``{ $.level = "ERROR" }``,
    ``{ $.n > 10 }``, joined by ``&&`` or ``||`` (``*`` as a value means "present").
    """
    text = (pattern or "").strip()
    if not text:
        return lambda _m: True
    if text.startswith("{"):
        if not text.endswith("}"):
            raise LogsInvalidParameterException("Invalid filter pattern")
        return _json_matcher(text[1:-1])
    required: list[str] = []
    optional: list[str] = []
    excluded: list[str] = []
    for m in _TERM.finditer(text):
        token = m.group("quoted") or m.group("word") or ""
        kind = ""
        if token[:1] in "?-" and len(token) > 1:
            kind, token = token[0], token[1:]
        if token.startswith('"') and token.endswith('"') and len(token) >= 2:
            token = json.loads(token)
        {"": required, "?": optional, "-": excluded}[kind].append(token)

    def match(message: str) -> bool:
        if any(t in message for t in excluded):
            return False
        if optional and not any(t in message for t in optional):
            return False
        return all(t in message for t in required)

    return match


def _json_matcher(expr: str) -> Matcher:
    ors: list[list[tuple[str, str, str]]] = []
    for alternative in expr.split("||"):
        ands: list[tuple[str, str, str]] = []
        for part in alternative.split("&&"):
            m = _JSON_CMP.fullmatch(part.strip().strip("()"))
            if m is None:
                raise LogsInvalidParameterException("Invalid filter pattern")
            ands.append((m.group("path"), m.group("op"), m.group("value")))
        ors.append(ands)

    def match(message: str) -> bool:
        try:
            doc = json.loads(message)
        except ValueError:
            return False
        return any(all(_compare(doc, *c) for c in ands) for ands in ors)

    return match


def _lookup(doc: Any, path: str) -> tuple[bool, Any]:
    for part in re.findall(r"[^.\[\]]+", path):
        if isinstance(doc, dict) and part in doc:
            doc = doc[part]
        elif isinstance(doc, list) and part.isdigit() and int(part) < len(doc):
            doc = doc[int(part)]
        else:
            return False, None
    return True, doc


def _compare(doc: Any, path: str, op: str, raw: str) -> bool:
    found, value = _lookup(doc, path)
    if not found:
        return False
    if raw == "*":
        return op == "="
    if raw.startswith('"'):
        want = str(json.loads(raw))
        if "*" in want:
            ok = isinstance(value, str) and re.fullmatch(
                ".*".join(re.escape(p) for p in want.split("*")), value
            )
            return bool(ok) if op == "=" else not ok
        return (str(value) == want) if op == "=" else (str(value) != want)
    try:
        number = float(raw)
    except ValueError:
        return (str(value).lower() == raw.lower()) == (op == "=")
    if isinstance(value, bool) or not isinstance(value, int | float):
        return op == "!="
    n = float(value)
    results: dict[str, bool] = {
        "=": n == number,
        "!=": n != number,
        "<": n < number,
        "<=": n <= number,
        ">": n > number,
        ">=": n >= number,
    }
    return results[op]


# ---------------------------------------------------------------------- operations


@dataclass(frozen=True)
class StreamInfo:
    name: str
    first: int
    last: int
    stored_bytes: int


def streams_of(events: Iterable[LogEvent]) -> dict[str, StreamInfo]:
    out: dict[str, StreamInfo] = {}
    for e in events:
        if not e.stream:
            continue
        s = out.get(e.stream)
        size = len(e.message.encode())
        if s is None:
            out[e.stream] = StreamInfo(e.stream, e.timestamp, e.timestamp, size)
        else:
            out[e.stream] = StreamInfo(
                s.name, min(s.first, e.timestamp), max(s.last, e.timestamp), s.stored_bytes + size
            )
    return out


def _sort_key(e: LogEvent) -> tuple[int, str]:
    return e.timestamp, e.event_id


def filter_log_events(
    body: Mapping[str, Any], events: Sequence[LogEvent], now_ms: int
) -> dict[str, Any]:
    names = body.get("logStreamNames")
    prefix = _opt_str(body, "logStreamNamePrefix", 512)
    if names is not None and prefix is not None:
        raise LogsInvalidParameterException(
            "logStreamNames and logStreamNamePrefix are mutually exclusive"
        )
    if names is not None and (
        not isinstance(names, list)
        or not 1 <= len(names) <= 100
        or not all(isinstance(n, str) for n in names)
    ):
        raise LogsInvalidParameterException("logStreamNames must hold 1 to 100 names")
    start, end = _opt_int(body, "startTime"), _opt_int(body, "endTime")
    limit = _int(body, "limit", 1, MAX_EVENTS, MAX_EVENTS)
    matcher = compile_pattern(_opt_str(body, "filterPattern"))
    after: tuple[int, str] | None = None
    if body.get("nextToken") is not None:
        t = decode_token(body["nextToken"])
        after = (int(t.get("ts", 0)), str(t.get("id", "")))
    wanted = set(names) if names is not None else None

    def keep(e: LogEvent) -> bool:
        if wanted is not None and e.stream not in wanted:
            return False
        if prefix is not None and not e.stream.startswith(prefix):
            return False
        if start is not None and e.timestamp < start:
            return False
        if end is not None and e.timestamp > end:
            return False
        if after is not None and _sort_key(e) <= after:
            return False
        return matcher(e.message)

    selected = sorted((e for e in events if keep(e)), key=_sort_key)
    page: list[LogEvent] = []
    size = 0
    for e in selected:
        size += len(e.message.encode()) + 26
        if len(page) >= limit or (page and size > PAGE_BYTES):
            break
        page.append(e)
    searched = sorted({e.stream for e in events if e.stream})
    if wanted is not None:
        searched = [s for s in searched if s in wanted]
    if prefix is not None:
        searched = [s for s in searched if s.startswith(prefix)]
    out: dict[str, Any] = {
        "events": [
            {
                "logStreamName": e.stream,
                "timestamp": e.timestamp,
                "message": e.message,
                "ingestionTime": max(e.timestamp, min(now_ms, e.timestamp + 1)),
                "eventId": e.event_id,
            }
            for e in page
        ],
        "searchedLogStreams": [{"logStreamName": s, "searchedCompletely": True} for s in searched],
    }
    if len(page) < len(selected):
        last = page[-1]
        out["nextToken"] = encode_token({"ts": last.timestamp, "id": last.event_id})
    return out


def get_log_events(body: Mapping[str, Any], stream_events: Sequence[LogEvent]) -> dict[str, Any]:
    """One stream's events; forward tokens ``f/<index>``, backward ``b/<index>``."""
    start, end = _opt_int(body, "startTime"), _opt_int(body, "endTime")
    limit = _int(body, "limit", 1, MAX_EVENTS, MAX_EVENTS)
    events = [
        e
        for e in sorted(stream_events, key=_sort_key)
        if (start is None or e.timestamp >= start) and (end is None or e.timestamp < end)
    ]
    token = body.get("nextToken")
    from_head = body.get("startFromHead") is True
    n = len(events)
    if token is not None:
        if not isinstance(token, str) or token[:2] not in ("f/", "b/") or not token[2:].isdigit():
            raise LogsInvalidParameterException("The specified nextToken is invalid.")
        pos = min(int(token[2:]), n)
        if token.startswith("f/"):
            lo, hi = pos, min(n, pos + limit)
        else:
            lo, hi = max(0, pos - limit), pos
    elif from_head:
        lo, hi = 0, min(n, limit)
    else:
        lo, hi = max(0, n - limit), n
    page = events[lo:hi]
    return {
        "events": [
            {"timestamp": e.timestamp, "message": e.message, "ingestionTime": e.timestamp}
            for e in page
        ],
        # at the end, the forward token is the one sent (or stays put), as CloudWatch's
        "nextForwardToken": f"f/{hi:020d}",
        "nextBackwardToken": f"b/{lo:020d}",
    }


def _page(
    items: list[dict[str, Any]], body: Mapping[str, Any], key: str, max_limit: int = 50
) -> dict[str, Any]:
    limit = _int(body, "limit", 1, max_limit, max_limit)
    offset = 0
    if body.get("nextToken") is not None:
        offset = int(decode_token(body["nextToken"]).get("offset", 0))
    out: dict[str, Any] = {key: items[offset : offset + limit]}
    if offset + limit < len(items):
        out["nextToken"] = encode_token({"offset": offset + limit})
    return out


def describe_log_streams(
    body: Mapping[str, Any], group: str, streams: Mapping[str, StreamInfo], arn_prefix: str
) -> dict[str, Any]:
    prefix = _opt_str(body, "logStreamNamePrefix", 512)
    order = body.get("orderBy", "LogStreamName")
    if order not in ("LogStreamName", "LastEventTime"):
        raise LogsInvalidParameterException("orderBy must be one of LogStreamName, LastEventTime")
    if order == "LastEventTime" and prefix is not None:
        raise LogsInvalidParameterException(
            "Cannot order by LastEventTime with a logStreamNamePrefix."
        )
    chosen = [s for s in streams.values() if prefix is None or s.name.startswith(prefix)]
    if order == "LastEventTime":
        chosen.sort(key=lambda s: (s.last, s.name))
    else:
        chosen.sort(key=lambda s: s.name)
    if body.get("descending") is True:
        chosen.reverse()
    items = [
        {
            "logStreamName": s.name,
            "creationTime": s.first,
            "firstEventTimestamp": s.first,
            "lastEventTimestamp": s.last,
            "lastIngestionTime": s.last,
            "uploadSequenceToken": "1",
            "arn": f"{arn_prefix}:log-group:{group}:log-stream:{s.name}",
            "storedBytes": 0,
        }
        for s in chosen
    ]
    return _page(items, body, "logStreams")


@dataclass(frozen=True)
class GroupInfo:
    name: str
    created: int
    stored_bytes: int


def describe_log_groups(
    body: Mapping[str, Any], groups: Iterable[GroupInfo], arn_prefix: str
) -> dict[str, Any]:
    prefix = _opt_str(body, "logGroupNamePrefix", 512)
    pattern = _opt_str(body, "logGroupNamePattern", 512)
    if prefix is not None and pattern is not None:
        raise LogsInvalidParameterException(
            "LogGroup name prefix and LogGroup name pattern are mutually exclusive parameters."
        )
    chosen = sorted(
        (
            g
            for g in groups
            if (prefix is None or g.name.startswith(prefix))
            and (pattern is None or pattern.lower() in g.name.lower())
        ),
        key=lambda g: g.name,
    )
    items = [
        {
            "logGroupName": g.name,
            "creationTime": g.created,
            "metricFilterCount": 0,
            "arn": f"{arn_prefix}:log-group:{g.name}:*",
            "logGroupArn": f"{arn_prefix}:log-group:{g.name}",
            "storedBytes": g.stored_bytes,
            "logGroupClass": "STANDARD",
        }
        for g in chosen
    ]
    return _page(items, body, "logGroups")
