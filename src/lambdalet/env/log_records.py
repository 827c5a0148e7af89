"""The stored form of a function's log events, and the one place that reads them back.

A function's log is ``<logs>/<function>.log`` (rotated copies ``<function>.log.1``,
``.2``, ... are older, the highest number the oldest).  Each line is one event, as
CloudWatch Logs keeps it::

    <epoch milliseconds> TAB <log stream name> TAB <text>

The text's own line breaks are stored as ``\\r``: awslambdaric's text logger already
writes a multi-line record (a traceback) as one line joined with ``\\r``; reading turns
them back into ``\\n``, so a traceback is one event of several lines.  An event's
message ends with ``\\n``, as Lambda's do.

Writers call :func:`encode`; readers (the Logs API, tests) call :func:`read_events`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from lambdalet.env.log_files import log_files, logged_functions


@dataclass(frozen=True)
class LogEvent:
    timestamp: int  # epoch milliseconds
    stream: str
    message: str  # ends with "\n"; several lines for a traceback
    #: stable across reads: the timestamp and the event's rank among those of its millisecond
    event_id: str


def encode(timestamp_ms: int, stream: str, text: bytes) -> bytes:
    """One event's stored line.  ``text`` is one line as written, with or without its
    newline; line breaks inside it (``\\r``, ``\\r\\n``, ``\\n``) become ``\\r``."""
    if text.endswith(b"\n"):
        text = text[:-1]
    if text.endswith(b"\r"):
        text = text[:-1]
    if b"\n" in text:
        text = text.replace(b"\r\n", b"\r").replace(b"\n", b"\r")
    return b"%d\t%s\t%s\n" % (timestamp_ms, stream.encode(), text)


def decode(line: bytes) -> tuple[int, str, str]:
    """(timestamp ms, stream, message) of one stored line (without its ``\\n``).

    A line in the older plain format (text only) gets timestamp 0 and no stream.
    """
    ts, sep, rest = line.partition(b"\t")
    stream, sep2, text = rest.partition(b"\t")
    if not (sep and sep2 and ts.isdigit()):
        ts, stream, text = b"0", b"", line
    message = text.decode(errors="replace").replace("\r", "\n") + "\n"
    return int(ts), stream.decode(errors="replace"), message


def functions_with_logs(logs_dir: Path) -> list[str]:
    """Names of the functions that have a log file."""
    return sorted(logged_functions(logs_dir))


def _lines(paths: list[Path]) -> Iterator[bytes]:
    for p in paths:
        with contextlib.suppress(FileNotFoundError), p.open("rb") as f:
            for line in f:
                # a last line still being written is not an event yet
                if line.endswith(b"\n"):
                    yield line[:-1]


def read_events(logs_dir: Path, function_name: str) -> list[LogEvent]:
    """Every stored event of a function, in the order they were written."""
    events: list[LogEvent] = []
    ranks: dict[int, int] = {}
    for line in _lines(log_files(logs_dir, function_name)):
        ts, stream, message = decode(line)
        rank = ranks.get(ts, 0)
        ranks[ts] = rank + 1
        events.append(LogEvent(ts, stream, message, f"{ts:016d}{rank:06d}"))
    return events


def plain_text(events: list[LogEvent]) -> str:
    """The events' messages one after the other, as a terminal would show them."""
    return "".join(e.message for e in events)
