"""Saved test events, per function, as the Lambda console keeps them.

One JSON file per function, ``<data>/test-events/<function>.json``: ``{name: event}``.
Kept apart from SQLite on purpose: they are the dashboard's, not the Lambda API's, and
deleting the folder loses nothing a function needs.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

from lambdalet.errors import InvalidParameterValueException, ResourceNotFoundException

_NAME = re.compile(r"[A-Za-z0-9._-]{1,64}")
_FUNCTION = re.compile(r"[A-Za-z0-9_-]{1,64}")
MAX_EVENT_BYTES = 256 * 1024
MAX_EVENTS = 50


class TestEvents:
    __test__ = False  # not a pytest class

    def __init__(self, folder: Path) -> None:
        self._folder = folder

    def _path(self, function: str) -> Path:
        if not _FUNCTION.fullmatch(function):
            raise InvalidParameterValueException(f"invalid function name {function!r}")
        return self._folder / f"{function}.json"

    def list(self, function: str) -> dict[str, Any]:
        try:
            data = json.loads(self._path(function).read_text())
        except FileNotFoundError:
            return {}
        except ValueError:
            return {}
        return data if isinstance(data, dict) else {}

    def put(self, function: str, name: str, event: Any) -> None:
        if not _NAME.fullmatch(name):
            raise InvalidParameterValueException(
                "a test event's name is 1 to 64 letters, digits, '.', '_' or '-'"
            )
        if len(json.dumps(event)) > MAX_EVENT_BYTES:
            raise InvalidParameterValueException("a test event is at most 256 KB of JSON")
        events = self.list(function)
        if name not in events and len(events) >= MAX_EVENTS:
            raise InvalidParameterValueException(f"at most {MAX_EVENTS} test events a function")
        events[name] = event
        self._write(function, events)

    def delete(self, function: str, name: str) -> None:
        events = self.list(function)
        if name not in events:
            raise ResourceNotFoundException(f"no test event {name!r} for {function}")
        del events[name]
        self._write(function, events)

    def _write(self, function: str, events: dict[str, Any]) -> None:
        path = self._path(function)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(events, indent=1, sort_keys=True))
        os.replace(tmp, path)
