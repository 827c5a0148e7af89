from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest

from lambdalet.env import extensions as ex
from lambdalet.env.lifecycle import (
    EXTENSION_TABLE,
    ExtensionEvent,
    ExtensionState,
    TransitionRefused,
    extension_machine,
)
from lambdalet.env.rapi_protocol import RapiError, RapiRefused


def test_register_body() -> None:
    assert ex.parse_register_body(b'{"events":["INVOKE","SHUTDOWN"]}') == ["INVOKE", "SHUTDOWN"]
    assert ex.parse_register_body(b'{"events":[]}') == []
    assert ex.parse_register_body(b"") == []
    bad = ex.parse_register_body(b'{"events":["BOOT"]}')
    assert isinstance(bad, RapiError) and bad.error_type == "Extension.InvalidEventType"
    for body in (b"[", b"[]", b'{"events":"INVOKE"}', b'{"configurationKeys":["a"]}'):
        err = ex.parse_register_body(body)
        assert isinstance(err, RapiError) and err.error_type == "InvalidRequestFormat", body


def test_extension_id_header() -> None:
    assert ex.parse_extension_id(None) is ex.MISSING_ID
    assert ex.parse_extension_id("not-a-uuid") is ex.INVALID_ID
    u = "3da1f2dc-3222-475e-9205-e2e6c6318895"
    assert ex.parse_extension_id(u) == u


def test_events_on_the_wire() -> None:
    inv = json.loads(ex.invoke_event("rid", 123, "arn:x", "Root=1-a"))
    assert inv == {
        "eventType": "INVOKE",
        "deadlineMs": 123,
        "requestId": "rid",
        "invokedFunctionArn": "arn:x",
        "tracing": {"type": "X-Amzn-Trace-Id", "value": "Root=1-a"},
    }
    sd = json.loads(ex.shutdown_event("spindown", 456))
    assert sd == {"eventType": "SHUTDOWN", "deadlineMs": 456, "shutdownReason": "spindown"}


def test_external_extensions_merge_layers_in_order(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    (a / "extensions" / "sub").mkdir(parents=True)
    (b / "extensions").mkdir(parents=True)
    (a / "extensions" / "one").write_text("a1")
    (a / "extensions" / "two").write_text("a2")
    (a / "extensions" / "sub" / "nested").write_text("no")
    (b / "extensions" / "two").write_text("b2")
    found = ex.external_extensions([a, b])
    assert sorted(found) == ["one", "two"]
    assert found["two"].read_text() == "b2"  # the later layer wins
    assert ex.external_extensions([tmp_path / "missing"]) == {}


def test_registry_refusals() -> None:
    reg = ex.Extensions()
    reg.launch("ext-a", 10)
    with pytest.raises(RapiRefused) as e:
        reg.register("", [])
    assert e.value.error.error_type == "Extension.InvalidExtensionName"
    a = reg.register("ext-a", ["INVOKE", "SHUTDOWN"])
    assert a.external and a.state is ExtensionState.REGISTERED
    with pytest.raises(RapiRefused) as e:
        reg.register("ext-a", [])
    assert e.value.error.error_type == "Extension.InvalidExtensionState"
    with pytest.raises(RapiRefused) as e:
        reg.register("internal-one", ["SHUTDOWN"])
    assert e.value.error.error_type == "Extension.InvalidEventType"
    internal = reg.register("internal-one", ["INVOKE"])
    assert not internal.external and reg.has_internal()
    for i in range(8):
        reg.register(f"more-{i}", [])
    with pytest.raises(RapiRefused) as e:
        reg.register("eleventh", [])
    assert e.value.error.error_type == "Extension.TooManyExtensions"
    assert e.value.error.message == "Extension limit (10) reached"
    reg.registration_open = False
    with pytest.raises(RapiRefused) as e:
        reg.register("late", [])
    assert e.value.error.error_type == "Extension.RegistrationClosed"
    with pytest.raises(RapiRefused) as e:
        reg.get("3da1f2dc-3222-475e-9205-e2e6c6318895")
    assert e.value.error.error_type == "Extension.UnknownExtensionIdentifier"


def test_all_ready_counts_only_subscribers() -> None:
    reg = ex.Extensions()
    reg.launch("b", 11)
    a = reg.register("a", ["INVOKE"])
    b = reg.register("b", ["SHUTDOWN"])
    assert not reg.all_ready()
    a.machine.fire(ExtensionEvent.NEXT)
    assert reg.all_ready("INVOKE") and not reg.all_ready()
    b.machine.fire(ExtensionEvent.NEXT)
    assert reg.all_ready()
    a.deliver(b"{}")  # no waiter: queued, and a now holds an event
    assert a.state is ExtensionState.RUNNING and a.mailbox.kept == b"{}"
    assert not reg.all_ready("INVOKE")


@pytest.mark.parametrize(
    ("state", "event"), list(itertools.product(ExtensionState, ExtensionEvent))
)
def test_extension_machine_every_event(state: ExtensionState, event: ExtensionEvent) -> None:
    m = extension_machine(state)
    target = EXTENSION_TABLE.get((state, event))
    if target is None:
        with pytest.raises(TransitionRefused):
            m.fire(event)
        assert m.state is state
    else:
        assert m.fire(event) is target


def test_exited_is_terminal_and_every_live_state_can_exit() -> None:
    assert not [k for k in EXTENSION_TABLE if k[0] is ExtensionState.EXITED]
    for s in ExtensionState:
        if s is not ExtensionState.EXITED:
            assert (s, ExtensionEvent.EXIT) in EXTENSION_TABLE
