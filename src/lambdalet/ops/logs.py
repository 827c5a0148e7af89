"""``lambdalet logs --json``: a function's log lines as JSON objects.  No I/O.

Every line becomes an object with its text as ``message``.  The platform's lines (START,
END, REPORT, INIT_START, INIT_REPORT, EXTENSION, TELEMETRY) also get a ``type`` named as in
Lambda's JSON log format (``platform.start``, ``platform.report``, ...) and their fields,
durations in milliseconds as numbers.  A line the Python runtime's logger wrote
(``[LEVEL]\\tTIMESTAMP\\tREQUEST_ID\\ttext``) gets ``type: function`` with ``level``,
``timestamp`` and ``requestId``; any other line is ``type: function`` alone.
"""

from __future__ import annotations

import json
import re
from typing import Any

_ID = r"(?P<requestId>[0-9A-Za-z-]+)"

_START = re.compile(rf"START RequestId: {_ID} Version: (?P<version>\S+)")
_END = re.compile(rf"END RequestId: {_ID}")
_INIT_START = re.compile(
    r"INIT_START Runtime Version: (?P<runtimeVersion>[^\t]*)"
    r"\tRuntime Version ARN: (?P<runtimeVersionArn>[^\t]*)"
)
_RUNTIME_LOG = re.compile(
    r"\[(?P<level>[A-Z]+)\]\t(?P<timestamp>\d{4}-\d\d-\d\dT[^\t]+)\t(?P<requestId>[^\t]*)\t"
)

#: the ``Key: value`` fields of the tab-separated platform lines, by their JSON names
_FIELDS = {
    "RequestId": "requestId",
    "Duration": "durationMs",
    "Billed Duration": "billedDurationMs",
    "Memory Size": "memorySizeMB",
    "Max Memory Used": "maxMemoryUsedMB",
    "Init Duration": "initDurationMs",
    "Status": "status",
    "Error Type": "errorType",
    "Phase": "phase",
    "Name": "name",
    "State": "state",
    "Events": "events",
    "Types": "types",
}
_TABBED = {
    "REPORT": "platform.report",
    "INIT_REPORT": "platform.initReport",
    "EXTENSION": "platform.extension",
    "TELEMETRY": "platform.telemetrySubscription",
}


def parse_line(text: str) -> dict[str, Any]:
    """One log line (without its newline) as a JSON-ready object."""
    out: dict[str, Any] = {"message": text}
    for pattern, kind in (
        (_START, "platform.start"),
        (_END, "platform.end"),
        (_INIT_START, "platform.initStart"),
    ):
        m = pattern.fullmatch(text)
        if m:
            return {**out, "type": kind, **m.groupdict()}
    head, _, rest = text.partition(" " if text.startswith(("REPORT ", "INIT_REPORT ")) else "\t")
    if head in _TABBED and rest:
        fields = _tabbed_fields(rest)
        if fields is not None:
            return {**out, "type": _TABBED[head], **fields}
    m = _RUNTIME_LOG.match(text)
    if m:
        return {**out, "type": "function", **m.groupdict()}
    return {**out, "type": "function"}


def _tabbed_fields(rest: str) -> dict[str, Any] | None:
    """``Key: value`` fields separated by TABs; None if any part is not one."""
    fields: dict[str, Any] = {}
    for part in rest.rstrip("\t").split("\t"):
        key, sep, value = part.partition(": ")
        name = _FIELDS.get(key)
        if not sep or name is None:
            return None
        if name.endswith(("Ms", "MB")):
            number = value.removesuffix(" ms").removesuffix(" MB")
            try:
                fields[name] = int(number) if number.isdigit() else float(number)
            except ValueError:
                return None
        elif name in ("events", "types"):
            inner = value.strip().removeprefix("[").removesuffix("]")
            fields[name] = [v.strip() for v in inner.split(",") if v.strip()]
        else:
            fields[name] = value
    return fields


class JsonLines:
    """Turns a log's bytes, fed as they are read, into JSON Lines; keeps a partial last line."""

    def __init__(self) -> None:
        self._partial = b""

    def feed(self, chunk: bytes) -> str:
        """The JSON lines of every line ``chunk`` completes ("" if none)."""
        *lines, self._partial = (self._partial + chunk).split(b"\n")
        return "".join(self._encode(line) for line in lines)

    def flush(self) -> str:
        """The JSON line of a last line that has no newline (at the end, or when the log
        is replaced)."""
        line, self._partial = self._partial, b""
        return self._encode(line) if line else ""

    @staticmethod
    def _encode(line: bytes) -> str:
        text = line.decode(errors="replace").removesuffix("\r")
        return json.dumps(parse_line(text)) + "\n"
