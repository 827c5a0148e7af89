"""Asynchronous invocation (``InvocationType=Event``): a durable queue with Lambda's retries.

Contract §7.5.  An event is committed to the store before the caller gets 202; a
dispatcher runs due events through the invoker; the row is deleted only when the event
is settled, in the same transaction that queues its destination delivery.  A crash
anywhere therefore runs the event again later: delivery is at least once.

* function error (incl. timeout and crash): up to ``MaximumRetryAttempts`` (default 2)
  more attempts, ~1 min before the second and ~2 min before the third;
* throttled (429) or platform error: back into the queue with exponential back-off from
  1 s to 5 min, for as long as ``MaximumEventAgeInSeconds`` (default 6 h) allows;
* reserved concurrency 0: straight to the failure destination, no retries;
* the function, version or alias is resolved at each attempt: events queued before an
  UpdateFunctionCode run the new code.

``RetryPolicy.scale`` multiplies every delay, so tests can shrink minutes to milliseconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from lambdalet.clock import Clock
from lambdalet.control.concurrency import ConcurrencyLimits
from lambdalet.errors import LambdaApiError, ResourceNotFoundException
from lambdalet.model import LATEST, InvokeInput, InvokeOutput, Invoker
from lambdalet.store import Store
from lambdalet.store.records import (
    EventInvokeConfig,
    NewEvent,
    QueuedEvent,
    pick_version,
)

log = logging.getLogger(__name__)

SUCCESS = "Success"
RETRIES_EXHAUSTED = "RetriesExhausted"
#: on a shared database, how often a dispatcher looks for events other nodes queued
SHARED_POLL_S = 0.25
EVENT_AGE_EXCEEDED = "EventAgeExceeded"

_FUNCTION_ARN_RE = re.compile(
    r"arn:aws[a-zA-Z-]*:lambda:[a-z0-9-]+:\d{12}:function:(?P<name>[a-zA-Z0-9_-]+)"
    r"(?::(?P<qualifier>\$LATEST|[a-zA-Z0-9_-]+))?"
)


@dataclass(frozen=True)
class RetryPolicy:
    """Lambda's delays, times ``scale`` (1.0 in production)."""

    scale: float = 1.0
    retry_base_s: float = 60.0  # before the 2nd attempt; twice that before the 3rd
    throttle_first_s: float = 1.0
    throttle_max_s: float = 300.0

    def after_function_error(self, attempts_done: int) -> float:
        return self.retry_base_s * attempts_done * self.scale

    def after_throttle(self, throttles_so_far: int) -> float:
        delay = min(self.throttle_first_s * 2.0 ** min(throttles_so_far, 20), self.throttle_max_s)
        return delay * self.scale


def parse_function_arn(arn: str) -> tuple[str, str | None] | None:
    """(name, qualifier) of a Lambda function ARN, or None for any other ARN."""
    m = _FUNCTION_ARN_RE.fullmatch(arn)
    return None if m is None else (m["name"], m["qualifier"])


def _json_or_text(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except (ValueError, RecursionError):
        return raw.decode("utf-8", "replace")


def iso_millis(epoch_s: float) -> str:
    ms = round(epoch_s * 1000)
    secs, millis = divmod(ms, 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs)) + f".{millis:03d}Z"


def destination_record(
    *,
    now: float,
    request_id: str,
    function_arn: str,
    condition: str,
    attempts: int,
    payload: bytes,
    output: InvokeOutput | None,
) -> dict[str, Any]:
    """The invocation record a destination receives (contract §7.5)."""
    record: dict[str, Any] = {
        "version": "1.0",
        "timestamp": iso_millis(now),
        "requestContext": {
            "requestId": request_id,
            "functionArn": function_arn,
            "condition": condition,
            "approximateInvokeCount": attempts,
        },
        "requestPayload": _json_or_text(payload),
    }
    if output is not None:
        response: dict[str, Any] = {"statusCode": 200, "executedVersion": output.executed_version}
        if output.function_error:
            response["functionError"] = output.function_error
        record["responseContext"] = response
        record["responsePayload"] = _json_or_text(output.payload) if output.payload else None
    return record


class AsyncQueue:
    """Owns the dispatcher task and the tasks of the events it runs."""

    def __init__(
        self,
        store: Store,
        invoker: Invoker,
        limits: ConcurrencyLimits,
        clock: Clock,
        policy: RetryPolicy | None = None,
        *,
        max_in_flight: int = 32,
        draw: Callable[[], float] = random.random,
    ) -> None:
        self._store = store
        self._invoker = invoker
        self._limits = limits
        self._clock = clock
        self.policy = policy or RetryPolicy()
        self._max_in_flight = max_in_flight
        self._draw = draw
        self._in_flight: dict[int, asyncio.Task[None]] = {}
        self._wake = asyncio.Event()
        self._dispatcher: asyncio.Task[None] | None = None
        self._closing = False

    def __repr__(self) -> str:
        return f"AsyncQueue(in_flight={len(self._in_flight)}, queued={self._store.queued_events()})"

    # ------------------------------------------------------------------ API side

    def submit(self, event: NewEvent) -> None:
        """Queue durably (committed when this returns), then let the dispatcher know."""
        self._store.enqueue_event(event)
        self._wake.set()

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        """Start dispatching (not on a cluster's API replica: there workers claim events)."""
        if self._store.shared and self._store.claimer is None:
            return
        if self._dispatcher is None:
            self._dispatcher = asyncio.get_running_loop().create_task(
                self._dispatch(), name="async-queue dispatcher"
            )

    async def close(self) -> None:
        """Stop dispatching; events being run stay queued and run again after a restart."""
        self._closing = True
        tasks = list(self._in_flight.values())
        if self._dispatcher is not None:
            tasks.append(self._dispatcher)
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._in_flight.clear()

    async def run_due(self) -> int:
        """Run every event due by the clock now, without the dispatcher, and wait for them;
        how many ran.  Lets tests step an injected clock through the retry schedule."""
        due = self._store.due_events(self._clock.wall(), self._max_in_flight, self._in_flight)
        await asyncio.gather(*(self._run(event) for event in due))
        return len(due)

    # ------------------------------------------------------------------ dispatcher

    async def _dispatch(self) -> None:
        while not self._closing:
            self._wake.clear()
            now = self._clock.wall()
            free = self._max_in_flight - len(self._in_flight)
            if free > 0:
                for event in self._store.due_events(now, free, self._in_flight.keys()):
                    task = asyncio.get_running_loop().create_task(
                        self._run(event), name=f"async event {event.request_id}"
                    )
                    self._in_flight[event.seq] = task
                    task.add_done_callback(self._done_callback(event.seq))
            timeout: float | None = None
            if len(self._in_flight) < self._max_in_flight:
                due = self._store.next_due(self._in_flight.keys())
                if due is not None:
                    timeout = max(0.0, due - self._clock.wall())
            if self._store.shared:  # other nodes enqueue and release claims: look again soon
                timeout = SHARED_POLL_S if timeout is None else min(timeout, SHARED_POLL_S)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await self._wake.wait()

    def _done_callback(self, seq: int) -> Callable[[asyncio.Task[None]], None]:
        def done(_: asyncio.Task[None]) -> None:
            self._in_flight.pop(seq, None)
            self._wake.set()

        return done

    async def _run(self, event: QueuedEvent) -> None:
        try:
            await self._attempt(event)
        except asyncio.CancelledError:
            raise
        except Exception:
            # a platform error, not an attempt of the function: the event stays queued and
            # backs off exponentially like a throttled one (no retry loop every second)
            log.exception("async event %s: unexpected failure", event.request_id)
            due = self._clock.wall() + self.policy.after_throttle(event.throttles)
            self._store.reschedule_event(event.seq, due, throttled=True)

    def _config(self, event: QueuedEvent) -> EventInvokeConfig:
        qualifier = event.qualifier or LATEST
        found = self._store.event_invoke_config(event.function_name, qualifier)
        return found or EventInvokeConfig(event.function_name, qualifier)

    async def _attempt(self, event: QueuedEvent) -> None:
        name = event.function_name
        try:
            primary, alias = self._store.resolve(name, event.qualifier)
        except ResourceNotFoundException:
            log.warning("async event %s: %s no longer exists; dropped", event.request_id, name)
            self._store.finish_event(event.seq)
            return
        config = self._config(event)
        now = self._clock.wall()
        arn = f"{primary.arn}:{event.qualifier or LATEST}"
        if now - event.enqueued_at > config.max_age_s:
            self._fail(event, config, arn, EVENT_AGE_EXCEEDED, event.attempts, None)
            return
        if self._limits.disabled(name):
            self._fail(event, config, arn, RETRIES_EXHAUSTED, event.attempts, None)
            return
        record = primary
        if alias is not None and alias.weights:
            version = pick_version(alias, self._draw())
            if version != primary.version:
                record = self._store.get_function(name, version)
        invoked = f"{primary.arn}:{event.qualifier}" if event.qualifier else primary.arn
        if not self._store.event_attempt_started(event.seq):
            log.info("async event %s: claimed by another worker; left to it", event.request_id)
            return
        attempts = event.attempts + 1
        try:
            output = await self._invoker.invoke(
                InvokeInput(
                    function=record,
                    invoked_arn=invoked,
                    request_id=event.request_id,
                    payload=event.payload,
                )
            )
        except LambdaApiError as e:
            # throttled or a platform error: not an attempt of the function; back off
            log.info("async event %s: %s; retrying later", event.request_id, e.error_type)
            due = self._clock.wall() + self.policy.after_throttle(event.throttles)
            self._store.reschedule_event(event.seq, due, throttled=True)
            return
        if output.function_error is None:
            follow = self._delivery(config.on_success, event, arn, SUCCESS, attempts, output)
            self._store.finish_event(event.seq, follow)
            return
        if attempts <= config.retries:
            due = self._clock.wall() + self.policy.after_function_error(attempts)
            self._store.reschedule_event(event.seq, due, throttled=False)
            return
        self._fail(event, config, arn, RETRIES_EXHAUSTED, attempts, output)

    def _fail(
        self,
        event: QueuedEvent,
        config: EventInvokeConfig,
        arn: str,
        condition: str,
        attempts: int,
        output: InvokeOutput | None,
    ) -> None:
        log.info("async event %s failed: %s", event.request_id, condition)
        follow = self._delivery(config.on_failure, event, arn, condition, attempts, output)
        self._store.finish_event(event.seq, follow)

    def _delivery(
        self,
        destination: str | None,
        event: QueuedEvent,
        arn: str,
        condition: str,
        attempts: int,
        output: InvokeOutput | None,
    ) -> NewEvent | None:
        if not destination:
            return None
        target = parse_function_arn(destination)
        if target is None:
            log.warning("async event %s: destination %s unsupported", event.request_id, destination)
            return None
        record = destination_record(
            now=self._clock.wall(),
            request_id=event.request_id,
            function_arn=arn,
            condition=condition,
            attempts=attempts,
            payload=event.payload,
            output=output,
        )
        return NewEvent(
            request_id=str(uuid.uuid4()),
            function_name=target[0],
            qualifier=target[1],
            payload=json.dumps(record, separators=(",", ":")).encode(),
        )
