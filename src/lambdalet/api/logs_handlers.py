"""``POST /`` with ``X-Amz-Target: Logs_20140328.<Operation>``: the Logs read API.

Thin: find the log group's functions (the store's ``LoggingConfig.LogGroup``, else
``/aws/lambda/<name>``; also functions deleted but whose logs remain), read their events
through ``env/log_records.py``, and let ``api/logs_protocol.py`` do the rest.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from aiohttp import web

from lambdalet.api import logs_protocol as lp
from lambdalet.api import render
from lambdalet.env.log_records import LogEvent, functions_with_logs, log_files, read_events
from lambdalet.errors import (
    LogsInvalidParameterException,
    LogsUnknownOperationException,
    UnknownOperationException,
)
from lambdalet.store import Store

JSON_11 = "application/x-amz-json-1.1"

#: log group name → the functions that write to it
_Groups = dict[str, list[str]]


class LogsApi:
    def __init__(self, store: Store, logs_dir: Path, region: str, account_id: str) -> None:
        self._store = store
        self._logs_dir = logs_dir
        self._arn_prefix = f"arn:aws:logs:{region}:{account_id}"
        self._ops: dict[str, Callable[[dict[str, Any], _Groups], dict[str, Any]]] = {
            "FilterLogEvents": self._filter,
            "GetLogEvents": self._get,
            "DescribeLogStreams": self._streams,
            "DescribeLogGroups": self._groups,
        }

    # -------------------------------------------------------------- groups

    def _group_map(self) -> _Groups:
        groups: _Groups = {}
        seen: set[str] = set()
        after: str | None = None
        while True:
            page = self._store.list_functions(after, 1000)
            for fn in page.items:
                seen.add(fn.name)
                groups.setdefault(fn.log_group or lp.default_group(fn.name), []).append(fn.name)
            if page.next_after is None:
                break
            after = page.next_after
        for name in functions_with_logs(self._logs_dir):
            if name not in seen:
                groups.setdefault(lp.default_group(name), []).append(name)
        return groups

    def _events(self, group: str, groups: _Groups) -> list[LogEvent]:
        functions = groups.get(group)
        if functions is None:
            raise lp.not_found_group()
        events: list[LogEvent] = []
        for fn in functions:
            events.extend(read_events(self._logs_dir, fn))
        return events

    # -------------------------------------------------------------- operations

    def _filter(self, body: dict[str, Any], groups: _Groups) -> dict[str, Any]:
        events = self._events(lp.group_name(body), groups)
        return lp.filter_log_events(body, events, int(time.time() * 1000))

    def _get(self, body: dict[str, Any], groups: _Groups) -> dict[str, Any]:
        events = self._events(lp.group_name(body), groups)
        stream = body.get("logStreamName")
        if not isinstance(stream, str) or not stream:
            raise LogsInvalidParameterException("logStreamName is required")
        mine = [e for e in events if e.stream == stream]
        if not mine:
            raise lp.not_found_stream()
        return lp.get_log_events(body, mine)

    def _streams(self, body: dict[str, Any], groups: _Groups) -> dict[str, Any]:
        group = lp.group_name(body)
        streams = lp.streams_of(self._events(group, groups))
        return lp.describe_log_streams(body, group, streams, self._arn_prefix)

    def _groups(self, body: dict[str, Any], groups: _Groups) -> dict[str, Any]:
        infos = []
        for group, functions in groups.items():
            created, size = 0, 0
            for fn in functions:
                for p in log_files(self._logs_dir, fn):
                    st = p.stat()
                    size += st.st_size
                    created = min(created or int(st.st_mtime * 1000), int(st.st_mtime * 1000))
            infos.append(lp.GroupInfo(group, created, size))
        return lp.describe_log_groups(body, infos, self._arn_prefix)

    # -------------------------------------------------------------- HTTP

    async def handle(self, request: web.Request) -> web.Response:
        target = request.headers.get("X-Amz-Target", "")
        if not target.startswith(lp.TARGET_PREFIX):
            # not a Logs request: the Lambda API has no operation here
            raise UnknownOperationException("Unknown operation")
        op = self._ops.get(target.removeprefix(lp.TARGET_PREFIX))
        if op is None:
            raise LogsUnknownOperationException(f"Unknown operation {target!r}")
        raw = await request.read()
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            raise LogsInvalidParameterException("The request body is not valid JSON") from None
        if not isinstance(body, dict):
            raise LogsInvalidParameterException("The request body must be a JSON object")
        # the store on the loop's thread (its connection's); files off the loop, which
        # runs every invoke
        groups = self._group_map()
        result = await asyncio.to_thread(op, body, groups)
        resp = render.json_response(result)
        resp.content_type = JSON_11
        return resp


def logs_route(api: LogsApi) -> Callable[[web.Request], Awaitable[web.Response]]:
    return api.handle
