"""Telemetry API (2022-07-01) and Logs API (2020-08-15) wire rules, without I/O.

Subscription parsing and validation, and the record shapes each API sends.
The platform produces one stream of events (telemetry names); a Logs API
subscriber sees them translated to that older API's shapes.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from lambdalet.env import rapi_protocol as rp

TELEMETRY_SCHEMAS = ("2022-07-01", "2022-12-13", "2025-01-29")
LOGS_SCHEMAS = ("2020-08-15", "2021-03-18")
TYPES = ("platform", "function", "extension")

MAX_ITEMS = (1_000, 10_000, 10_000)  # min, max, default
MAX_BYTES = (262_144, 1_048_576, 262_144)
TIMEOUT_MS = (25, 30_000, 1_000)

_URI = re.compile(r"^http://(sandbox|sandbox\.localdomain)(?::(\d{1,5}))?(/[^\s]*)?$")
_TCP_URI = re.compile(r"^tcp://(sandbox|sandbox\.localdomain)(?::(\d{1,5}))$")

RESERVED_PORT = 9001


@dataclass(frozen=True)
class Buffering:
    max_items: int = MAX_ITEMS[2]
    max_bytes: int = MAX_BYTES[2]
    timeout_ms: int = TIMEOUT_MS[2]


@dataclass(frozen=True)
class Destination:
    protocol: str  # "HTTP" | "TCP"
    port: int
    path: str = "/"
    host_header: str = "sandbox.localdomain"
    method: str = "POST"


@dataclass(frozen=True)
class Subscription:
    api: str  # "telemetry" | "logs"
    schema: str
    types: tuple[str, ...]
    buffering: Buffering
    destination: Destination


def iso_time(epoch_s: float) -> str:
    t = datetime.fromtimestamp(epoch_s, UTC)
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"


def _error(api: str, message: str) -> rp.RapiError:
    etype = "ValidationError" if api == "telemetry" else "Logs.ValidationError"
    return rp.RapiError(400, etype, message)


def _int_in(value: Any, bounds: tuple[int, int, int], field: str, api: str) -> int:
    lo, hi, default = bounds
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int):
        raise rp.RapiRefused(_error(api, f"buffering.{field} must be an integer"))
    if not lo <= value <= hi:
        raise rp.RapiRefused(
            _error(api, f"buffering.{field} must be between {lo} and {hi}, got {value}")
        )
    return value


def _destination(doc: Any, api: str) -> Destination:
    if not isinstance(doc, dict):
        raise rp.RapiRefused(_error(api, "destination is required"))
    protocol = doc.get("protocol")
    method = doc.get("method", "POST")
    if method not in ("POST", "PUT") or (api == "telemetry" and method != "POST"):
        raise rp.RapiRefused(_error(api, f"destination.method {method!r} is not supported"))
    if protocol == "HTTP":
        uri = doc.get("URI")
        m = _URI.match(uri) if isinstance(uri, str) else None
        if m is None:
            raise rp.RapiRefused(
                _error(
                    api,
                    "destination.URI must be http://sandbox.localdomain[:port][/path] "
                    "or http://sandbox[:port][/path]",
                )
            )
        port = int(m.group(2) or 80)
        dest = Destination("HTTP", port, m.group(3) or "/", m.group(1), method)
    elif protocol == "TCP":
        port_value = doc.get("port")
        if port_value is None and isinstance(doc.get("URI"), str):
            tm = _TCP_URI.match(doc["URI"])
            port_value = int(tm.group(2)) if tm else None
        if isinstance(port_value, bool) or not isinstance(port_value, int):
            raise rp.RapiRefused(_error(api, "destination.port is required for TCP"))
        port = port_value
        dest = Destination("TCP", port)
    else:
        raise rp.RapiRefused(_error(api, "destination.protocol must be HTTP or TCP"))
    if not 1 <= dest.port <= 65535 or dest.port == RESERVED_PORT:
        raise rp.RapiRefused(_error(api, f"destination port {dest.port} is not allowed"))
    return dest


def parse_subscription(api: str, body: bytes) -> Subscription:
    """Validate a subscribe body; raises ``RapiRefused`` (400) with the reason."""
    try:
        doc = json.loads(body)
    except ValueError:
        raise rp.RapiRefused(_error(api, "request body is not valid JSON")) from None
    if not isinstance(doc, dict):
        raise rp.RapiRefused(_error(api, "request body must be a JSON object"))
    schema = doc.get("schemaVersion")
    if api == "telemetry":
        if schema not in TELEMETRY_SCHEMAS:
            raise rp.RapiRefused(
                _error(api, f"schemaVersion must be one of {', '.join(TELEMETRY_SCHEMAS)}")
            )
    else:
        schema = schema or LOGS_SCHEMAS[0]
        if schema not in LOGS_SCHEMAS:
            raise rp.RapiRefused(
                _error(api, f"schemaVersion must be one of {', '.join(LOGS_SCHEMAS)}")
            )
    types = doc.get("types")
    if (
        not isinstance(types, list)
        or not types
        or not all(isinstance(t, str) and t in TYPES for t in types)
    ):
        raise rp.RapiRefused(
            _error(api, "types must be a non-empty list of platform, function, extension")
        )
    buf = doc.get("buffering") or {}
    if not isinstance(buf, dict):
        raise rp.RapiRefused(_error(api, "buffering must be an object"))
    buffering = Buffering(
        max_items=_int_in(buf.get("maxItems"), MAX_ITEMS, "maxItems", api),
        max_bytes=_int_in(buf.get("maxBytes"), MAX_BYTES, "maxBytes", api),
        timeout_ms=_int_in(buf.get("timeoutMs"), TIMEOUT_MS, "timeoutMs", api),
    )
    return Subscription(
        api=api,
        schema=schema,
        types=tuple(dict.fromkeys(types)),
        buffering=buffering,
        destination=_destination(doc.get("destination"), api),
    )


@dataclass(frozen=True)
class Event:
    """One platform event or log line, as the Telemetry API names it."""

    time: float
    type: str  # "platform.start", "function", ...
    record: Any

    @property
    def category(self) -> str:
        return "platform" if self.type.startswith("platform.") else self.type

    def envelope(self) -> dict[str, Any]:
        return {"time": iso_time(self.time), "type": self.type, "record": self.record}


#: platform events only the Logs API knows
LOGS_ONLY = ("platform.end", "platform.fault")
#: telemetry platform events the Logs API does not send
_NOT_IN_LOGS = (
    "platform.initStart",
    "platform.initRuntimeDone",
    "platform.initReport",
    "platform.telemetrySubscription",
)


def translate(sub: Subscription, event: Event) -> dict[str, Any] | None:
    """The JSON object a subscriber receives for ``event``, or None if it gets nothing."""
    if event.category not in sub.types:
        return None
    if sub.api == "telemetry":
        if event.type in LOGS_ONLY or event.type == "platform.logsSubscription":
            return None
        return event.envelope()
    # Logs API 2020-08-15 / 2021-03-18
    if event.type in _NOT_IN_LOGS:
        return None
    rec = event.record
    if event.type == "platform.start":
        rec = {"requestId": rec["requestId"], "version": rec.get("version", "$LATEST")}
    elif event.type == "platform.runtimeDone":
        if sub.schema != "2021-03-18":
            return None
        rec = {"requestId": rec["requestId"], "status": rec["status"]}
    elif event.type == "platform.report":
        rec = {"requestId": rec["requestId"], "metrics": rec["metrics"]}
    return {"time": iso_time(event.time), "type": event.type, "record": rec}


def size_of(obj: dict[str, Any]) -> int:
    return len(json.dumps(obj, separators=(",", ":")))
