"""Extensions API (2020-01-01): the registered extensions of one environment.

Protocol rules (names, event shapes, error answers) and the registry of
participants.  The environment decides *when* events go out and what a
failure does; this module keeps each extension's state and its pending
``next`` and answers refusals with the error types of contract §2.5.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from lambdalet.env import rapi_protocol as rp
from lambdalet.env.lifecycle import (
    ExtensionEvent,
    ExtensionState,
    Machine,
    extension_machine,
)
from lambdalet.env.mailbox import Mailbox
from lambdalet.env.participants import Participant
from lambdalet.env.rapi_protocol import RapiRefused

MAX_EXTENSIONS = 10
EVENT_TYPES = ("INVOKE", "SHUTDOWN")

NAME_HEADER = "Lambda-Extension-Name"
ID_HEADER = "Lambda-Extension-Identifier"
FEATURE_HEADER = "Lambda-Extension-Accept-Feature"
ERROR_TYPE_HEADER = "Lambda-Extension-Function-Error-Type"
EVENT_ID_HEADER = "Lambda-Extension-Event-Identifier"


def refusal(error_type: str, message: str, status: int = 403) -> rp.RapiError:
    return rp.RapiError(status, error_type, message)


MISSING_ID = refusal("Extension.MissingExtensionIdentifier", "Missing extension identifier")
INVALID_ID = refusal("Extension.InvalidExtensionIdentifier", "Invalid extension identifier")
EMPTY_NAME = refusal("Extension.InvalidExtensionName", "Empty extension name")
REGISTRATION_CLOSED = refusal("Extension.RegistrationClosed", "Extension registration is closed")
TOO_MANY = refusal("Extension.TooManyExtensions", f"Extension limit ({MAX_EXTENSIONS}) reached")
MISSING_ERROR_TYPE = refusal("Extension.MissingHeader", f"Missing header {ERROR_TYPE_HEADER}")


def unknown_id(ext_id: str) -> rp.RapiError:
    return refusal("Extension.UnknownExtensionIdentifier", f"Unknown extension {ext_id}")


def invalid_state(name: str, state: str, action: str) -> rp.RapiError:
    return refusal(
        "Extension.InvalidExtensionState",
        f"State transition from {state} to {action} failed for extension {name}",
    )


def parse_register_body(body: bytes) -> list[str] | rp.RapiError:
    """The event types an extension registers for, or the refusal."""
    bad = refusal("InvalidRequestFormat", "Invalid request format")
    try:
        doc = json.loads(body or b"{}")
    except ValueError:
        return bad
    if not isinstance(doc, dict):
        return bad
    if doc.get("configurationKeys"):
        return bad
    events = doc.get("events", [])
    if not isinstance(events, list) or not all(isinstance(e, str) for e in events):
        return bad
    for e in events:
        if e not in EVENT_TYPES:
            return refusal("Extension.InvalidEventType", f"Invalid event type: {e}")
    return list(dict.fromkeys(events))


def parse_extension_id(value: str | None) -> str | rp.RapiError:
    if not value:
        return MISSING_ID
    try:
        return str(uuid.UUID(value))
    except ValueError:
        return INVALID_ID


def invoke_event(request_id: str, deadline_ms: int, arn: str, trace_id: str) -> bytes:
    return json.dumps(
        {
            "eventType": "INVOKE",
            "deadlineMs": deadline_ms,
            "requestId": request_id,
            "invokedFunctionArn": arn,
            "tracing": {"type": "X-Amzn-Trace-Id", "value": trace_id},
        }
    ).encode()


def shutdown_event(reason: str, deadline_ms: int) -> bytes:
    """``reason`` is lower-case on the wire: spindown, timeout or failure."""
    return json.dumps(
        {"eventType": "SHUTDOWN", "deadlineMs": deadline_ms, "shutdownReason": reason}
    ).encode()


def external_extensions(layer_dirs: Sequence[Path]) -> dict[str, Path]:
    """Regular files directly in each layer's ``extensions/``, merged in order (later wins)."""
    found: dict[str, Path] = {}
    for layer in layer_dirs:
        d = layer / "extensions"
        try:
            entries = sorted(d.iterdir())
        except OSError:
            continue
        for p in entries:
            if p.is_file():
                found[p.name] = p
            else:
                found.pop(p.name, None)  # a later layer's directory hides the file
    return found


@dataclass(eq=False)
class Extension(Participant[ExtensionState, ExtensionEvent, bytes]):
    NEXT = ExtensionEvent.NEXT
    EVENT = ExtensionEvent.EVENT
    RUNNING = ExtensionState.RUNNING

    name: str
    external: bool
    ext_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    pid: int | None = None
    events: tuple[str, ...] = ()
    machine: Machine[ExtensionState, ExtensionEvent] = field(default_factory=extension_machine)
    mailbox: Mailbox[bytes] = field(default_factory=Mailbox)
    error_type: str | None = None

    @property
    def state(self) -> ExtensionState:
        return self.machine.state

    @property
    def alive(self) -> bool:
        return self.state is not ExtensionState.EXITED

    def refusal(self, action: str) -> rp.RapiError:
        return invalid_state(self.name, self.state.value, action)

    def subscribed(self, event_type: str) -> bool:
        return event_type in self.events

    def events_text(self) -> str:
        return "[" + ", ".join(self.events) + "]"


class Extensions:
    """The extensions of one Init: launched, registered, their next and their events."""

    def __init__(self) -> None:
        self.by_id: dict[str, Extension] = {}
        self.launched: dict[str, Extension] = {}
        self.registration_open = True

    def unregistered(self) -> list[Extension]:
        return [e for e in self.launched.values() if e.state is ExtensionState.LAUNCHED]

    def registered(self) -> list[Extension]:
        return list(self.by_id.values())

    def external(self) -> list[Extension]:
        return list(self.launched.values())

    def has_internal(self) -> bool:
        return any(not e.external for e in self.by_id.values())

    def launch(self, name: str, pid: int) -> Extension:
        ext = Extension(name=name, external=True, pid=pid)
        self.launched[name] = ext
        return ext

    def by_pid(self, pid: int) -> Extension | None:
        for e in self.launched.values():
            if e.pid == pid:
                return e
        return None

    def register(self, name: str | None, events: list[str]) -> Extension:
        """Raises ``RapiRefused`` with the AWS error on refusal."""
        if not name:
            raise RapiRefused(EMPTY_NAME)
        if not self.registration_open:
            raise RapiRefused(REGISTRATION_CLOSED)
        if any(e.name == name for e in self.by_id.values()):
            raise RapiRefused(invalid_state(name, "Registered", "Registered"))
        if len(self.by_id) >= MAX_EXTENSIONS:
            raise RapiRefused(TOO_MANY)
        ext = self.launched.get(name)
        if ext is None:
            # a name matching no launched file is an internal extension: INVOKE only
            if "SHUTDOWN" in events:
                raise RapiRefused(
                    refusal(
                        "Extension.InvalidEventType",
                        "Internal extensions cannot register for SHUTDOWN",
                    )
                )
            ext = Extension(name=name, external=False)
        ext.machine.fire(ExtensionEvent.REGISTER)
        ext.events = tuple(events)
        self.by_id[ext.ext_id] = ext
        return ext

    def get(self, ext_id: str) -> Extension:
        ext = self.by_id.get(ext_id)
        if ext is None:
            raise RapiRefused(unknown_id(ext_id))
        return ext

    def all_ready(self, event_type: str | None = None) -> bool:
        """Every registered extension (subscribed to ``event_type``, if given) waits in next."""
        return all(
            e.state is ExtensionState.READY
            for e in self.by_id.values()
            if event_type is None or e.subscribed(event_type)
        )

    def cancel_waiters(self) -> None:
        for e in self.by_id.values():
            e.mailbox.cancel()
