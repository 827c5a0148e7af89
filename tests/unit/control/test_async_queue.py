"""The async queue stepped through Lambda's retry schedule by an injected clock (no sleeps)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from lambdalet.control.async_queue import (
    EVENT_AGE_EXCEEDED,
    RETRIES_EXHAUSTED,
    SUCCESS,
    AsyncQueue,
    RetryPolicy,
    destination_record,
    iso_millis,
    parse_function_arn,
)
from lambdalet.control.concurrency import ConcurrencyLimits
from lambdalet.errors import ServiceException, TooManyRequestsException
from lambdalet.model import FunctionRecord, InvokeInput, InvokeOutput, ProvisionResult
from lambdalet.store import Store
from lambdalet.store.records import AliasSpec, EventInvokeConfig, NewEvent, QueuedEvent
from tests.unit.store.helpers import ARN, ManualClock, add_function, new_code, open_store

DEST = f"{ARN}:dest"
FAILED = InvokeOutput(b'{"errorMessage":"boom","errorType":"ValueError"}', "$LATEST", "Unhandled")


class ScriptedInvoker:
    """Answers each invoke with the next scripted outcome (an output or an error to raise)."""

    def __init__(self, *outcomes: InvokeOutput | Exception) -> None:
        self.outcomes = list(outcomes)
        self.calls: list[InvokeInput] = []

    async def invoke(self, request: InvokeInput) -> InvokeOutput:
        self.calls.append(request)
        outcome = self.outcomes.pop(0) if self.outcomes else ok(request.function.version)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    async def retire(self, function_name: str, version: str | None = None) -> None:
        return None

    async def provision(
        self, config_key: str, function: FunctionRecord, count: int
    ) -> ProvisionResult:
        return ProvisionResult(count)

    async def unprovision(self, config_key: str) -> None:
        return None


def ok(version: str = "$LATEST") -> InvokeOutput:
    return InvokeOutput(b'{"ok":true}', version)


@dataclass
class Rig:
    store: Store
    clock: ManualClock
    limits: ConcurrencyLimits
    invoker: ScriptedInvoker

    def queue(self, draw: float = 0.5) -> AsyncQueue:
        return AsyncQueue(self.store, self.invoker, self.limits, self.clock, draw=lambda: draw)

    def only_event(self) -> QueuedEvent:
        events = self.store.due_events(float("inf"), 10, ())
        assert len(events) == 1, events
        return events[0]

    def destination_records(self) -> list[dict[str, Any]]:
        events = self.store.due_events(float("inf"), 10, ())
        return [json.loads(e.payload) for e in events if e.function_name == "dest"]


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    clock = ManualClock()
    store = open_store(tmp_path, clock)
    await add_function(store, "fn")
    await add_function(store, "dest")
    yield Rig(store, clock, ConcurrencyLimits(1000), ScriptedInvoker())
    store.close()


def submit(rig: Rig, qualifier: str | None = None, payload: bytes = b'{"n":1}') -> None:
    rig.store.enqueue_event(NewEvent("req-1", "fn", qualifier, payload))


# ------------------------------------------------------------------ the schedule itself


def test_retry_policy_follows_lambda() -> None:
    p = RetryPolicy()
    # ~1 min before the 2nd attempt, ~2 min before the 3rd
    assert [p.after_function_error(n) for n in (1, 2)] == [60.0, 120.0]
    # throttles: exponential from 1 s, capped at 5 min
    assert [p.after_throttle(n) for n in range(10)] == [1, 2, 4, 8, 16, 32, 64, 128, 256, 300]
    assert p.after_throttle(10_000) == 300.0
    fast = RetryPolicy(scale=0.001)
    assert fast.after_function_error(2) == pytest.approx(0.12)
    assert fast.after_throttle(0) == pytest.approx(0.001)


def test_parse_function_arn() -> None:
    assert parse_function_arn(f"{ARN}:f") == ("f", None)
    assert parse_function_arn(f"{ARN}:f:$LATEST") == ("f", "$LATEST")
    assert parse_function_arn(f"{ARN}:f:live") == ("f", "live")
    assert parse_function_arn("arn:aws:sqs:us-east-1:123456789012:q") is None
    assert parse_function_arn("f") is None


def test_destination_record_shape() -> None:
    assert iso_millis(1_573_755_365.568) == "2019-11-14T18:16:05.568Z"
    rec = destination_record(
        now=1_573_755_365.568,
        request_id="rid",
        function_arn=f"{ARN}:fn:$LATEST",
        condition=RETRIES_EXHAUSTED,
        attempts=3,
        payload=b'{"a":1}',
        output=FAILED,
    )
    assert rec == {
        "version": "1.0",
        "timestamp": "2019-11-14T18:16:05.568Z",
        "requestContext": {
            "requestId": "rid",
            "functionArn": f"{ARN}:fn:$LATEST",
            "condition": "RetriesExhausted",
            "approximateInvokeCount": 3,
        },
        "requestPayload": {"a": 1},
        "responseContext": {
            "statusCode": 200,
            "executedVersion": "$LATEST",
            "functionError": "Unhandled",
        },
        "responsePayload": {"errorMessage": "boom", "errorType": "ValueError"},
    }
    success = destination_record(
        now=0,
        request_id="rid",
        function_arn="a",
        condition=SUCCESS,
        attempts=1,
        payload=b"not json",
        output=InvokeOutput(b"", "1"),
    )
    assert success["requestPayload"] == "not json"
    assert success["responseContext"] == {"statusCode": 200, "executedVersion": "1"}
    assert success["responsePayload"] is None
    # never ran: no response at all
    aged = destination_record(
        now=0,
        request_id="rid",
        function_arn="a",
        condition=EVENT_AGE_EXCEEDED,
        attempts=0,
        payload=b"{}",
        output=None,
    )
    assert "responseContext" not in aged and "responsePayload" not in aged
    assert aged["requestContext"]["condition"] == "EventAgeExceeded"


# ------------------------------------------------------------------ the queue, step by step


async def test_function_errors_retry_twice_then_reach_the_failure_destination(rig: Rig) -> None:
    rig.store.put_event_invoke_config(EventInvokeConfig("fn", "$LATEST", on_failure=DEST))
    rig.invoker.outcomes = [FAILED, FAILED, FAILED]
    queue = rig.queue()
    submit(rig)
    start = rig.clock.now
    assert await queue.run_due() == 1
    assert rig.only_event().due_at == start + 60  # ~1 min before the 2nd attempt
    rig.clock.advance(59)
    assert await queue.run_due() == 0
    rig.clock.advance(1)
    assert await queue.run_due() == 1
    assert rig.only_event().due_at == rig.clock.now + 120  # ~2 min before the 3rd
    rig.clock.advance(120)
    assert await queue.run_due() == 1
    assert len(rig.invoker.calls) == 3
    assert all(c.request_id == "req-1" for c in rig.invoker.calls)
    assert all(c.invoked_arn == f"{ARN}:fn" for c in rig.invoker.calls)
    (rec,) = rig.destination_records()
    assert rec["requestContext"] == {
        "requestId": "req-1",
        "functionArn": f"{ARN}:fn:$LATEST",
        "condition": "RetriesExhausted",
        "approximateInvokeCount": 3,
    }
    assert rec["responseContext"]["functionError"] == "Unhandled"
    assert rec["requestPayload"] == {"n": 1}
    assert rec["timestamp"] == iso_millis(rig.clock.now)
    assert rig.only_event().function_name == "dest"  # the original event is gone


@pytest.mark.parametrize("retries", [0, 1])
async def test_maximum_retry_attempts(rig: Rig, retries: int) -> None:
    rig.store.put_event_invoke_config(
        EventInvokeConfig("fn", "$LATEST", max_retry_attempts=retries, on_failure=DEST)
    )
    rig.invoker.outcomes = [FAILED] * 3
    queue = rig.queue()
    submit(rig)
    for _ in range(retries + 1):
        assert await queue.run_due() == 1
        rig.clock.advance(600)
    assert len(rig.invoker.calls) == retries + 1
    (rec,) = rig.destination_records()
    assert rec["requestContext"]["approximateInvokeCount"] == retries + 1
    assert rec["requestContext"]["condition"] == RETRIES_EXHAUSTED


async def test_success_goes_to_the_success_destination_of_the_qualifier(rig: Rig) -> None:
    rig.store.publish_version("fn")
    rig.store.put_event_invoke_config(EventInvokeConfig("fn", "1", on_success=DEST))
    rig.invoker.outcomes = [FAILED, ok("1")]
    queue = rig.queue()
    submit(rig, qualifier="1")
    await queue.run_due()
    rig.clock.advance(60)
    await queue.run_due()
    (rec,) = rig.destination_records()
    assert rec["requestContext"]["condition"] == "Success"
    assert rec["requestContext"]["functionArn"] == f"{ARN}:fn:1"
    assert rec["requestContext"]["approximateInvokeCount"] == 2
    assert rec["responseContext"] == {"statusCode": 200, "executedVersion": "1"}
    assert rec["responsePayload"] == {"ok": True}
    assert rig.invoker.calls[-1].invoked_arn == f"{ARN}:fn:1"


async def test_no_destination_just_settles(rig: Rig) -> None:
    queue = rig.queue()
    submit(rig)
    await queue.run_due()
    assert rig.store.queued_events() == 0


async def test_throttles_back_off_and_the_event_ages_out(rig: Rig) -> None:
    rig.store.put_event_invoke_config(
        EventInvokeConfig("fn", "$LATEST", max_event_age_s=60, on_failure=DEST)
    )
    rig.invoker.outcomes = [
        TooManyRequestsException("ReservedFunctionConcurrentInvocationLimitExceeded")
    ] * 10 + [ServiceException("platform")]
    queue = rig.queue()
    submit(rig)
    start = rig.clock.now
    delays = []
    while rig.clock.now - start <= 60:
        assert await queue.run_due() == 1
        event = rig.only_event()
        delays.append(event.due_at - rig.clock.now)
        rig.clock.now = event.due_at
    assert delays == [1, 2, 4, 8, 16, 32]
    # throttles are not attempts of the function
    assert rig.only_event().attempts == 0 and rig.only_event().throttles == 6
    assert await queue.run_due() == 1
    (rec,) = rig.destination_records()
    assert rec["requestContext"]["condition"] == "EventAgeExceeded"
    assert rec["requestContext"]["approximateInvokeCount"] == 0
    assert "responseContext" not in rec
    assert len(rig.invoker.calls) == 6


async def test_reserved_zero_fails_at_once_without_invoking(rig: Rig) -> None:
    rig.store.put_event_invoke_config(EventInvokeConfig("fn", "$LATEST", on_failure=DEST))
    rig.limits.set_reserved("fn", 0)
    submit(rig)
    await rig.queue().run_due()
    assert rig.invoker.calls == []
    (rec,) = rig.destination_records()
    assert rec["requestContext"]["condition"] == RETRIES_EXHAUSTED
    assert rec["requestContext"]["approximateInvokeCount"] == 0


async def test_an_event_of_a_deleted_function_is_dropped(rig: Rig) -> None:
    submit(rig)
    rig.store.delete_function("fn")
    await rig.queue().run_due()
    assert rig.store.queued_events() == 0 and rig.invoker.calls == []


async def test_each_attempt_runs_the_current_code(rig: Rig) -> None:
    rig.invoker.outcomes = [FAILED]
    queue = rig.queue()
    submit(rig)
    await queue.run_due()
    updated = await new_code(rig.store, "fn", "two")
    rig.clock.advance(60)
    await queue.run_due()
    first, second = rig.invoker.calls
    assert first.function.code_sha256 != second.function.code_sha256
    assert second.function.revision_id == updated.revision_id


@pytest.mark.parametrize(("draw", "version"), [(0.1, "2"), (0.9, "1")])
async def test_weighted_alias_routes_by_the_draw(rig: Rig, draw: float, version: str) -> None:
    rig.store.publish_version("fn")
    await new_code(rig.store, "fn", "two")
    rig.store.publish_version("fn")
    rig.store.create_alias("fn", AliasSpec("live", "1", weights={"2": 0.25}))
    submit(rig, qualifier="live")
    await rig.queue(draw=draw).run_due()
    (call,) = rig.invoker.calls
    assert call.function.version == version
    assert call.invoked_arn == f"{ARN}:fn:live"


async def test_an_unexpected_failure_keeps_the_event_queued(rig: Rig) -> None:
    class Broken(ScriptedInvoker):
        async def invoke(self, request: InvokeInput) -> InvokeOutput:
            raise ValueError("bug")

    queue = AsyncQueue(rig.store, Broken(), rig.limits, rig.clock)
    submit(rig)
    delays = []
    for _ in range(4):
        assert await queue.run_due() == 1
        event = rig.only_event()
        delays.append(event.due_at - rig.clock.now)
        rig.clock.now = event.due_at
    # backs off like a throttle, and is not counted as an attempt of the function
    assert delays == [1, 2, 4, 8]
    assert (event.function_name, event.attempts, event.throttles) == ("fn", 0, 4)
