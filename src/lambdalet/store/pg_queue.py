"""The async queue's claims on a shared (PostgreSQL) database.

Several workers run dispatchers over one ``async_events`` table.  A worker *claims* the due
rows it will run (``FOR UPDATE SKIP LOCKED``: two workers never take the same row), and
every later step of that attempt (attempt started, reschedule, finish) is fenced by the
claim: ``claimed_by`` and ``claim_epoch`` must still be this worker's, else the step
changes nothing and the outcome is dropped (the event was given to someone else).

A claim ends when the attempt settles, when its deadline passes (the longest function
timeout plus a margin: a hung worker's events run again), or at once when its worker is
declared dead (no heartbeat): the events of a ``kill -9``'d worker run elsewhere.  Delivery
stays at least once.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from lambdalet.store.connection import Connection

#: how long a claim lasts without its worker dying: Lambda's longest timeout plus a margin
CLAIM_S = 900 + 30

#: rows another worker may take: unclaimed, or claimed by a worker that is gone or too late
_CLAIMABLE = (
    "(claimed_by IS NULL OR claim_deadline < now() OR NOT EXISTS"
    " (SELECT 1 FROM workers w WHERE w.id = claimed_by AND w.epoch = claim_epoch"
    " AND w.state <> 'dead'))"
)


@dataclass(frozen=True)
class Claimer:
    """The worker whose dispatcher claims events: its id and the epoch of this run."""

    worker_id: str
    epoch: int


def claim_due(
    db: Connection, claimer: Claimer, now: float, limit: int, exclude: Collection[int]
) -> list[Any]:
    """Claim up to ``limit`` due rows (oldest due first) not already run here."""
    if limit <= 0:
        return []
    rows = db.execute(
        "UPDATE async_events SET claimed_by = ?, claim_epoch = ?,"
        " claim_deadline = now() + make_interval(secs => ?::double precision)"
        " WHERE seq IN (SELECT seq FROM async_events WHERE due_at <= ? AND "
        + _CLAIMABLE
        + " AND NOT (seq = ANY(?::bigint[])) ORDER BY due_at, seq LIMIT ? FOR UPDATE SKIP LOCKED)"
        " RETURNING *",
        (claimer.worker_id, claimer.epoch, CLAIM_S, now, list(exclude), limit),
    ).fetchall()
    return sorted(rows, key=lambda r: (float(r["due_at"]), int(r["seq"])))


def next_due(db: Connection, exclude: Collection[int]) -> float | None:
    """When the next claimable event is due (None: none is waiting)."""
    row = db.execute(
        "SELECT MIN(due_at) FROM async_events WHERE "
        + _CLAIMABLE
        + " AND NOT (seq = ANY(?::bigint[]))",
        (list(exclude),),
    ).fetchone()
    return None if row is None or row[0] is None else float(row[0])


#: appended to a statement's WHERE on one event: the claim is still this worker's
FENCE = " AND claimed_by = ? AND claim_epoch = ?"


def fence_params(claimer: Claimer) -> tuple[str, int]:
    return (claimer.worker_id, claimer.epoch)
