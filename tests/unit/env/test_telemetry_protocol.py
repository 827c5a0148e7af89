from __future__ import annotations

import json

import pytest

from lambdalet.env import telemetry_protocol as tp
from lambdalet.env.rapi_protocol import RapiRefused


def body(**kw: object) -> bytes:
    doc: dict[str, object] = {
        "schemaVersion": "2022-07-01",
        "types": ["platform", "function"],
        "destination": {"protocol": "HTTP", "URI": "http://sandbox.localdomain:8080/lambda"},
    }
    doc.update(kw)
    return json.dumps(doc).encode()


def test_defaults_and_destination() -> None:
    sub = tp.parse_subscription("telemetry", body())
    assert sub.buffering == tp.Buffering(10_000, 262_144, 1_000)
    assert sub.destination == tp.Destination("HTTP", 8080, "/lambda", "sandbox.localdomain")
    assert sub.types == ("platform", "function")
    tcp = tp.parse_subscription("telemetry", body(destination={"protocol": "TCP", "port": 4243}))
    assert tcp.destination.protocol == "TCP" and tcp.destination.port == 4243
    short = tp.parse_subscription(
        "telemetry", body(destination={"protocol": "HTTP", "URI": "http://sandbox:4243"})
    )
    assert short.destination.port == 4243 and short.destination.path == "/"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("maxItems", 999),
        ("maxItems", 10_001),
        ("maxBytes", 262_143),
        ("maxBytes", 1_048_577),
        ("timeoutMs", 24),
        ("timeoutMs", 30_001),
        ("timeoutMs", "100"),
    ],
)
def test_buffering_ranges(field: str, value: object) -> None:
    with pytest.raises(RapiRefused) as e:
        tp.parse_subscription("telemetry", body(buffering={field: value}))
    assert e.value.error.status == 400 and e.value.error.error_type == "ValidationError"


def test_buffering_bounds_are_inclusive() -> None:
    b = {"maxItems": 1000, "maxBytes": 1_048_576, "timeoutMs": 25}
    sub = tp.parse_subscription("telemetry", body(buffering=b))
    assert sub.buffering == tp.Buffering(1000, 1_048_576, 25)


@pytest.mark.parametrize(
    "bad",
    [
        {"schemaVersion": "2019-01-01"},
        {"types": []},
        {"types": ["platform", "bogus"]},
        {"destination": {"protocol": "HTTP", "URI": "http://example.com:80"}},
        {"destination": {"protocol": "HTTPS", "URI": "https://sandbox:443"}},
        {"destination": {"protocol": "HTTP", "URI": "http://sandbox:9001"}},
        {"destination": {"protocol": "TCP"}},
    ],
)
def test_invalid_subscriptions(bad: dict[str, object]) -> None:
    with pytest.raises(RapiRefused):
        tp.parse_subscription("telemetry", body(**bad))


def test_logs_api_defaults_and_error_type() -> None:
    doc = {
        "types": ["platform"],
        "destination": {
            "protocol": "HTTP",
            "URI": "http://sandbox:1234",
            "method": "PUT",
            "encoding": "JSON",
        },
    }
    sub = tp.parse_subscription("logs", json.dumps(doc).encode())
    assert sub.schema == "2020-08-15" and sub.destination.method == "PUT"
    with pytest.raises(RapiRefused) as e:
        tp.parse_subscription("logs", b"{}")
    assert e.value.error.error_type == "Logs.ValidationError"


def test_translate_per_api() -> None:
    tel = tp.parse_subscription("telemetry", body(types=["platform"]))
    logs_old = tp.parse_subscription(
        "logs",
        json.dumps(
            {
                "types": ["platform", "function"],
                "destination": {"protocol": "HTTP", "URI": "http://sandbox:1"},
            }
        ).encode(),
    )
    logs_new = tp.parse_subscription(
        "logs",
        json.dumps(
            {
                "schemaVersion": "2021-03-18",
                "types": ["platform"],
                "destination": {"protocol": "HTTP", "URI": "http://sandbox:1"},
            }
        ).encode(),
    )
    start = tp.Event(0.0, "platform.start", {"requestId": "r", "version": "$LATEST", "tracing": {}})
    done = tp.Event(
        0.0,
        "platform.runtimeDone",
        {"requestId": "r", "status": "success", "metrics": {"durationMs": 1.0}},
    )
    end = tp.Event(0.0, "platform.end", {"requestId": "r"})
    init = tp.Event(0.0, "platform.initStart", {"phase": "init"})
    line = tp.Event(0.0, "function", "hello\n")
    assert tp.translate(tel, start) == {
        "time": "1970-01-01T00:00:00.000Z",
        "type": "platform.start",
        "record": {"requestId": "r", "version": "$LATEST", "tracing": {}},
    }
    assert tp.translate(tel, end) is None  # Logs API only
    assert tp.translate(tel, line) is None  # not subscribed to function
    assert tp.translate(logs_old, init) is None
    assert tp.translate(logs_old, start)["record"] == {"requestId": "r", "version": "$LATEST"}  # type: ignore[index]
    assert tp.translate(logs_old, done) is None
    assert tp.translate(logs_new, done)["record"] == {"requestId": "r", "status": "success"}  # type: ignore[index]
    assert tp.translate(logs_old, end) is not None
    assert tp.translate(logs_old, line)["record"] == "hello\n"  # type: ignore[index]


def test_iso_time_has_milliseconds() -> None:
    assert tp.iso_time(1654469121.6149) == "2022-06-05T22:45:21.614Z"
