"""The durable queue of asynchronous invocations, event-invoke and provisioned-concurrency
configuration (part of ``Store``).

An Event invoke is a row in ``async_events`` committed before the caller gets its 202;
the row goes away only once the invocation (and its destination delivery, queued in the
same transaction) is settled, so a crash at any point runs the event again: at least once.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Collection
from typing import TYPE_CHECKING

from lambdalet.errors import (
    ProvisionedConcurrencyConfigNotFoundException,
    ResourceNotFoundException,
)
from lambdalet.model import FunctionRecord
from lambdalet.store import pg_queue
from lambdalet.store.pg_queue import Claimer
from lambdalet.store.records import (
    EventInvokeConfig,
    EventInvokePatch,
    NewEvent,
    Page,
    ProvisionedConfig,
    QueuedEvent,
)

if TYPE_CHECKING:
    from contextlib import AbstractContextManager

    from lambdalet.clock import Clock
    from lambdalet.store.connection import Connection


class AsyncEventsMixin:
    """Queue rows and per-qualifier settings: methods of ``Store``."""

    #: on a shared database, the worker whose dispatcher claims events (None: this process
    #: is the only one running the queue, or it runs none)
    claimer: Claimer | None = None

    if TYPE_CHECKING:  # provided by Store
        _db: Connection
        _clock: Clock

        def _tx(self) -> AbstractContextManager[None]: ...
        def function_arn(self, name: str) -> str: ...
        def get_function(self, name: str, qualifier: str | None = None) -> FunctionRecord: ...

    # ------------------------------------------------------------------ the queue

    def enqueue_event(self, event: NewEvent) -> None:
        """Commit an event for immediate delivery (the caller answers 202 after this)."""
        now = self._clock.wall()
        with self._tx():
            self._insert_event(event, now)

    def _insert_event(self, event: NewEvent, now: float) -> None:
        self._db.execute(
            "INSERT OR IGNORE INTO async_events (request_id, name, qualifier, payload,"
            " enqueued_at, due_at) VALUES (?, ?, ?, ?, ?, ?)",
            (event.request_id, event.function_name, event.qualifier, event.payload, now, now),
        )

    def due_events(self, now: float, limit: int, exclude: Collection[int]) -> list[QueuedEvent]:
        """Events whose time has come, oldest due first, except those already being run.

        On a shared database they are claimed for this worker (``store.pg_queue``)."""
        if self.claimer is not None:
            return [
                _event(r) for r in pg_queue.claim_due(self._db, self.claimer, now, limit, exclude)
            ]
        rows = self._db.execute(
            "SELECT * FROM async_events WHERE due_at <= ? ORDER BY due_at, seq LIMIT ?",
            (now, limit + len(exclude)),
        ).fetchall()
        events = [_event(r) for r in rows if int(r["seq"]) not in exclude]
        return events[:limit]

    def next_due(self, exclude: Collection[int]) -> float | None:
        """When the next event not being run is due (None: the queue is empty)."""
        if self.claimer is not None:
            return pg_queue.next_due(self._db, exclude)
        rows = self._db.execute(
            "SELECT seq, due_at FROM async_events ORDER BY due_at, seq LIMIT ?",
            (len(exclude) + 1,),
        ).fetchall()
        for r in rows:
            if int(r["seq"]) not in exclude:
                return float(r["due_at"])
        return None

    def queued_events(self) -> int:
        (n,) = self._db.execute("SELECT COUNT(*) FROM async_events").fetchone()
        return int(n)

    def event_attempt_started(self, seq: int) -> bool:
        """Count an attempt; False when the event is no longer this worker's to run."""
        with self._tx():
            if self.claimer is not None:
                cur = self._db.execute(
                    "UPDATE async_events SET attempts = attempts + 1 WHERE seq = ?"
                    + pg_queue.FENCE,
                    (seq, *pg_queue.fence_params(self.claimer)),
                )
                return bool(cur.rowcount)
            self._db.execute(
                "UPDATE async_events SET attempts = attempts + 1 WHERE seq = ?", (seq,)
            )
        return True

    def reschedule_event(self, seq: int, due_at: float, *, throttled: bool) -> None:
        """Run again at ``due_at``; a throttled attempt never reached the function."""
        n = 1 if throttled else 0
        with self._tx():
            if self.claimer is not None:  # and the claim ends: any worker may run it then
                self._db.execute(
                    "UPDATE async_events SET due_at = ?, throttles = throttles + ?,"
                    " attempts = MAX(0, attempts - ?), claimed_by = NULL, claim_epoch = NULL,"
                    " claim_deadline = NULL WHERE seq = ?" + pg_queue.FENCE,
                    (due_at, n, n, seq, *pg_queue.fence_params(self.claimer)),
                )
                return
            self._db.execute(
                "UPDATE async_events SET due_at = ?, throttles = throttles + ?,"
                " attempts = MAX(0, attempts - ?) WHERE seq = ?",
                (due_at, n, n, seq),
            )

    def finish_event(self, seq: int, follow_up: NewEvent | None = None) -> None:
        """Remove a settled event and queue its destination delivery, atomically."""
        now = self._clock.wall()
        with self._tx():
            if self.claimer is not None:
                cur = self._db.execute(
                    "DELETE FROM async_events WHERE seq = ?" + pg_queue.FENCE,
                    (seq, *pg_queue.fence_params(self.claimer)),
                )
                if not cur.rowcount:  # claimed away meanwhile: its new owner settles it
                    return
            else:
                self._db.execute("DELETE FROM async_events WHERE seq = ?", (seq,))
            if follow_up is not None:
                self._insert_event(follow_up, now)

    # ------------------------------------------------------------------ event invoke config

    def put_event_invoke_config(self, config: EventInvokeConfig) -> EventInvokeConfig:
        with self._tx():
            self._db.execute(
                "INSERT OR REPLACE INTO event_invoke_configs (name, qualifier,"
                " max_retry_attempts, max_event_age_s, on_success, on_failure, last_modified)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    config.function_name,
                    config.qualifier,
                    config.max_retry_attempts,
                    config.max_event_age_s,
                    config.on_success,
                    config.on_failure,
                    self._clock.wall(),
                ),
            )
        return self._event_config_or_404(config.function_name, config.qualifier)

    def update_event_invoke_config(
        self, name: str, qualifier: str, patch: EventInvokePatch
    ) -> EventInvokeConfig:
        current = self.event_invoke_config(name, qualifier) or EventInvokeConfig(name, qualifier)

        def dest(new: str | None, old: str | None) -> str | None:
            if new is None:
                return old
            return new or None

        return self.put_event_invoke_config(
            EventInvokeConfig(
                name,
                qualifier,
                max_retry_attempts=(
                    current.max_retry_attempts
                    if patch.max_retry_attempts is None
                    else patch.max_retry_attempts
                ),
                max_event_age_s=(
                    current.max_event_age_s
                    if patch.max_event_age_s is None
                    else patch.max_event_age_s
                ),
                on_success=dest(patch.on_success, current.on_success),
                on_failure=dest(patch.on_failure, current.on_failure),
            )
        )

    def event_invoke_config(self, name: str, qualifier: str) -> EventInvokeConfig | None:
        row = self._db.execute(
            "SELECT * FROM event_invoke_configs WHERE name = ? AND qualifier = ?",
            (name, qualifier),
        ).fetchone()
        return None if row is None else _config(row)

    def _event_config_or_404(self, name: str, qualifier: str) -> EventInvokeConfig:
        config = self.event_invoke_config(name, qualifier)
        if config is None:
            raise ResourceNotFoundException(
                f"The function {self.function_arn(name)}:{qualifier} doesn't have an "
                "EventInvokeConfig"
            )
        return config

    def get_event_invoke_config(self, name: str, qualifier: str) -> EventInvokeConfig:
        return self._event_config_or_404(name, qualifier)

    def delete_event_invoke_config(self, name: str, qualifier: str) -> None:
        self._event_config_or_404(name, qualifier)
        with self._tx():
            self._db.execute(
                "DELETE FROM event_invoke_configs WHERE name = ? AND qualifier = ?",
                (name, qualifier),
            )

    def list_event_invoke_configs(
        self, name: str, after: str | None, limit: int
    ) -> Page[EventInvokeConfig]:
        self.get_function(name)
        rows = self._db.execute(
            "SELECT * FROM event_invoke_configs WHERE name = ? AND qualifier > ?"
            " ORDER BY qualifier LIMIT ?",
            (name, after or "", limit + 1),
        ).fetchall()
        items = tuple(_config(r) for r in rows[:limit])
        return Page(items, items[-1].qualifier if len(rows) > limit else None)

    # ------------------------------------------------------------------ provisioned concurrency

    def put_provisioned_config(self, config: ProvisionedConfig) -> None:
        with self._tx():
            self._db.execute(
                "INSERT OR REPLACE INTO provisioned_configs (name, qualifier, requested,"
                " last_modified) VALUES (?, ?, ?, ?)",
                (config.function_name, config.qualifier, config.requested, config.last_modified),
            )

    def provisioned_config(self, name: str, qualifier: str) -> ProvisionedConfig:
        row = self._db.execute(
            "SELECT * FROM provisioned_configs WHERE name = ? AND qualifier = ?",
            (name, qualifier),
        ).fetchone()
        if row is None:
            raise ProvisionedConcurrencyConfigNotFoundException(
                "No Provisioned Concurrency Config found for this function"
            )
        return _provisioned(row)

    def delete_provisioned_config(self, name: str, qualifier: str) -> None:
        with self._tx():
            self._db.execute(
                "DELETE FROM provisioned_configs WHERE name = ? AND qualifier = ?",
                (name, qualifier),
            )

    def list_provisioned_configs(
        self, name: str | None = None, after: str | None = None, limit: int = 10**9
    ) -> Page[ProvisionedConfig]:
        """Configs of one function (by qualifier), or of every function when ``name`` is None."""
        if name is None:
            rows = self._db.execute(
                "SELECT * FROM provisioned_configs ORDER BY name, qualifier"
            ).fetchall()
        else:
            rows = self._db.execute(
                "SELECT * FROM provisioned_configs WHERE name = ? AND qualifier > ?"
                " ORDER BY qualifier LIMIT ?",
                (name, after or "", limit + 1),
            ).fetchall()
        items = tuple(_provisioned(r) for r in rows[:limit])
        return Page(items, items[-1].qualifier if len(rows) > limit else None)


def _event(row: sqlite3.Row) -> QueuedEvent:
    return QueuedEvent(
        seq=int(row["seq"]),
        request_id=str(row["request_id"]),
        function_name=str(row["name"]),
        qualifier=row["qualifier"],
        payload=bytes(row["payload"]),
        enqueued_at=float(row["enqueued_at"]),
        attempts=int(row["attempts"]),
        throttles=int(row["throttles"]),
        due_at=float(row["due_at"]),
    )


def _config(row: sqlite3.Row) -> EventInvokeConfig:
    return EventInvokeConfig(
        function_name=str(row["name"]),
        qualifier=str(row["qualifier"]),
        max_retry_attempts=row["max_retry_attempts"],
        max_event_age_s=row["max_event_age_s"],
        on_success=row["on_success"],
        on_failure=row["on_failure"],
        last_modified=float(row["last_modified"]),
    )


def _provisioned(row: sqlite3.Row) -> ProvisionedConfig:
    return ProvisionedConfig(
        function_name=str(row["name"]),
        qualifier=str(row["qualifier"]),
        requested=int(row["requested"]),
        last_modified=str(row["last_modified"]),
    )
