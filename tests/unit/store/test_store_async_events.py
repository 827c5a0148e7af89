"""The durable async queue and the per-qualifier settings, on a tmp SQLite store."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from lambdalet.errors import (
    ProvisionedConcurrencyConfigNotFoundException,
    ResourceNotFoundException,
)
from lambdalet.store import Store
from lambdalet.store.records import (
    EventInvokeConfig,
    EventInvokePatch,
    NewEvent,
    ProvisionedConfig,
)
from tests.unit.store.helpers import ARN, ManualClock, add_function, open_store


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def store(tmp_path: Path, clock: ManualClock) -> Iterator[Store]:
    s = open_store(tmp_path, clock)
    yield s
    s.close()


def event(request_id: str, name: str = "fn", qualifier: str | None = None) -> NewEvent:
    return NewEvent(request_id, name, qualifier, f'{{"id":"{request_id}"}}'.encode())


def test_enqueue_is_due_at_once_and_survives_reopening(tmp_path: Path, clock: ManualClock) -> None:
    store = open_store(tmp_path, clock)
    store.enqueue_event(event("a"))
    store.enqueue_event(event("b", qualifier="live"))
    store.enqueue_event(event("a"))  # the same request id again: queued once
    store.close()  # what a restart (or a kill after the 202) leaves behind

    store = open_store(tmp_path, clock)
    due = store.due_events(clock.now, 10, ())
    assert [(e.request_id, e.qualifier) for e in due] == [("a", None), ("b", "live")]
    first = due[0]
    assert first.payload == b'{"id":"a"}' and first.enqueued_at == clock.now
    assert (first.attempts, first.throttles, first.due_at) == (0, 0, clock.now)
    assert store.queued_events() == 2
    store.close()


def test_claimed_events_are_excluded_and_limit_applies(store: Store, clock: ManualClock) -> None:
    for rid in "abc":
        store.enqueue_event(event(rid))
    seqs = [e.seq for e in store.due_events(clock.now, 10, ())]
    assert [e.request_id for e in store.due_events(clock.now, 1, ())] == ["a"]
    # events being run (claimed by the dispatcher) are not handed out again
    assert [e.request_id for e in store.due_events(clock.now, 10, {seqs[0]})] == ["b", "c"]
    assert [e.request_id for e in store.due_events(clock.now, 1, {seqs[0], seqs[1]})] == ["c"]
    assert store.next_due({seqs[0]}) == clock.now
    assert store.next_due(set(seqs)) is None


def test_reschedule_counts_attempts_and_throttles(store: Store, clock: ManualClock) -> None:
    store.enqueue_event(event("a"))
    (e,) = store.due_events(clock.now, 1, ())
    store.event_attempt_started(e.seq)
    store.reschedule_event(e.seq, clock.now + 60, throttled=False)
    assert store.due_events(clock.now, 10, ()) == []
    assert store.next_due(()) == clock.now + 60
    clock.advance(60)
    (e,) = store.due_events(clock.now, 1, ())
    assert (e.attempts, e.throttles) == (1, 0)
    # a throttled attempt never reached the function: it does not count as one
    store.event_attempt_started(e.seq)
    store.reschedule_event(e.seq, clock.now + 1, throttled=True)
    clock.advance(1)
    (e,) = store.due_events(clock.now, 1, ())
    assert (e.attempts, e.throttles, e.due_at) == (1, 1, clock.now)


def test_finish_deletes_and_queues_the_follow_up_atomically(
    store: Store, clock: ManualClock
) -> None:
    store.enqueue_event(event("a"))
    (e,) = store.due_events(clock.now, 1, ())
    clock.advance(5)
    store.finish_event(e.seq, event("dest", name="target", qualifier="$LATEST"))
    (follow,) = store.due_events(clock.now, 10, ())
    assert (follow.request_id, follow.function_name, follow.qualifier) == (
        "dest",
        "target",
        "$LATEST",
    )
    assert follow.enqueued_at == clock.now
    store.finish_event(follow.seq)
    assert store.queued_events() == 0


async def test_event_invoke_config_put_update_get_list_delete(
    store: Store, clock: ManualClock
) -> None:
    await add_function(store)
    with pytest.raises(ResourceNotFoundException, match=f"{ARN}:fn:\\$LATEST doesn't have an"):
        store.get_event_invoke_config("fn", "$LATEST")
    assert store.event_invoke_config("fn", "$LATEST") is None

    put = store.put_event_invoke_config(
        EventInvokeConfig("fn", "$LATEST", max_retry_attempts=0, on_failure=f"{ARN}:dlq")
    )
    assert (put.retries, put.max_age_s, put.last_modified) == (0, 21_600, clock.now)
    clock.advance(1)
    up = store.update_event_invoke_config(
        "fn", "$LATEST", EventInvokePatch(max_event_age_s=60, on_success=f"{ARN}:ok")
    )
    assert (up.max_retry_attempts, up.max_event_age_s) == (0, 60)
    assert (up.on_success, up.on_failure) == (f"{ARN}:ok", f"{ARN}:dlq")
    assert up.last_modified == clock.now
    # "" clears a destination; a put replaces everything
    cleared = store.update_event_invoke_config("fn", "$LATEST", EventInvokePatch(on_failure=""))
    assert cleared.on_failure is None and cleared.on_success == f"{ARN}:ok"
    fresh = store.put_event_invoke_config(EventInvokeConfig("fn", "$LATEST"))
    assert (fresh.retries, fresh.max_age_s, fresh.on_success) == (2, 21_600, None)

    store.update_event_invoke_config("fn", "1", EventInvokePatch(max_retry_attempts=1))
    page = store.list_event_invoke_configs("fn", None, 1)
    assert [c.qualifier for c in page.items] == ["$LATEST"] and page.next_after == "$LATEST"
    rest = store.list_event_invoke_configs("fn", page.next_after, 5)
    assert [c.qualifier for c in rest.items] == ["1"] and rest.next_after is None
    store.delete_event_invoke_config("fn", "1")
    with pytest.raises(ResourceNotFoundException):
        store.delete_event_invoke_config("fn", "1")
    with pytest.raises(ResourceNotFoundException):
        store.list_event_invoke_configs("nope", None, 5)


async def test_provisioned_configs_and_deletion_with_the_function(store: Store) -> None:
    await add_function(store)
    store.publish_version("fn")
    with pytest.raises(
        ProvisionedConcurrencyConfigNotFoundException,
        match="No Provisioned Concurrency Config found for this function",
    ):
        store.provisioned_config("fn", "1")
    stamp = "2024-01-01T00:00:00.000+0000"
    store.put_provisioned_config(ProvisionedConfig("fn", "1", 2, stamp))
    store.put_provisioned_config(ProvisionedConfig("fn", "live", 3, stamp))
    assert store.provisioned_config("fn", "1").requested == 2
    page = store.list_provisioned_configs("fn", None, 1)
    assert [c.qualifier for c in page.items] == ["1"] and page.next_after == "1"
    assert [c.qualifier for c in store.list_provisioned_configs().items] == ["1", "live"]
    store.put_event_invoke_config(EventInvokeConfig("fn", "1"))
    # deleting the version takes its settings along
    store.delete_version("fn", "1")
    assert store.event_invoke_config("fn", "1") is None
    assert [c.qualifier for c in store.list_provisioned_configs().items] == ["live"]
    store.delete_function("fn")
    assert store.list_provisioned_configs().items == ()
