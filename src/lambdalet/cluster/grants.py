"""Concurrency limits held across the cluster: every on-demand execution on any worker is
a lease row in the shared database, taken and given back in one short transaction.

``SharedLimits`` is the worker pool's ``ConcurrencyLimits`` with ``take``/``give`` counting
the cluster's leases instead of this process's: a function's reserved concurrency and the
account's unreserved pool hold whichever worker runs the invoke.  The reservations are read
from the database at each take, so a PutFunctionConcurrency made through any replica
holds at once.  A dead worker's leases stop counting as soon as it is declared dead (its
row's state), and are deleted by the next worker to register.

Each take holds one cluster-wide advisory lock for its transaction (two round trips on a
local network): simple and exact, at the price of serialising on-demand starts across the
cluster.  ``docs/cluster.md`` sketches the block grants that would lift this.
"""

from __future__ import annotations

import logging
import uuid
from collections import defaultdict

from lambdalet.control.concurrency import (
    ACCOUNT_LIMIT_EXCEEDED,
    RESERVED_LIMIT_EXCEEDED,
    ConcurrencyLimits,
)
from lambdalet.errors import TooManyRequestsException
from lambdalet.store.connection import Connection

log = logging.getLogger(__name__)

CONCURRENCY_LOCK = 0x1A4B_DA20
#: leases of workers that are not dead
_LIVE = "EXISTS (SELECT 1 FROM workers w WHERE w.id = l.worker_id AND w.state <> 'dead')"


class SharedLimits(ConcurrencyLimits):
    """``ConcurrencyLimits`` whose on-demand count is the cluster's (leases in PostgreSQL)."""

    def __init__(
        self, db: Connection, worker_id: str, account_limit: int, min_unreserved: int | None = None
    ) -> None:
        super().__init__(account_limit, min_unreserved)
        self._db = db
        self.worker_id = worker_id
        #: this worker's leases, per function (what ``give`` returns)
        self._mine: dict[str, list[str]] = defaultdict(list)

    def _reason(self, name: str) -> str | None:
        row = self._db.execute(
            "SELECT reserved_concurrency FROM function_meta WHERE name = ?", (name,)
        ).fetchone()
        reserved = None if row is None else row["reserved_concurrency"]
        if reserved is not None:
            (busy,) = self._db.execute(
                "SELECT COUNT(*) FROM concurrency_leases l WHERE l.name = ? AND " + _LIVE,
                (name,),
            ).fetchone()
            provisioned = self.provisioned_total(name)
            return RESERVED_LIMIT_EXCEEDED if busy >= int(reserved) - provisioned else None
        (reserved_total,) = self._db.execute(
            "SELECT COALESCE(SUM(reserved_concurrency), 0) FROM function_meta"
        ).fetchone()
        (shared_busy,) = self._db.execute(
            "SELECT COUNT(*) FROM concurrency_leases l WHERE " + _LIVE + " AND NOT EXISTS"
            " (SELECT 1 FROM function_meta m WHERE m.name = l.name"
            " AND m.reserved_concurrency IS NOT NULL)"
        ).fetchone()
        unreserved = self.account_limit - int(reserved_total)
        return ACCOUNT_LIMIT_EXCEEDED if shared_busy >= unreserved else None

    def take(self, name: str) -> None:
        lease = str(uuid.uuid4())
        self._db.execute("BEGIN")
        try:
            self._db.execute("SELECT pg_advisory_xact_lock(?)", (CONCURRENCY_LOCK,))
            reason = self._reason(name)
            if reason is None:
                self._db.execute(
                    "INSERT INTO concurrency_leases (id, name, worker_id, expires_at)"
                    " VALUES (?, ?, ?, now() + interval '16 minutes')",
                    (lease, name, self.worker_id),
                )
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        if reason is not None:
            raise TooManyRequestsException(reason)
        self._mine[name].append(lease)
        self._busy[name] += 1

    def give(self, name: str) -> None:
        leases = self._mine.get(name)
        if leases:
            lease = leases.pop()
            if not leases:
                del self._mine[name]
            try:
                self._db.execute("DELETE FROM concurrency_leases WHERE id = ?", (lease,))
            except Exception as e:  # the row goes with this worker's death anyway
                log.warning("returning a concurrency lease of %s: %s", name, e)
        super().give(name)

    def disabled(self, name: str) -> bool:
        row = self._db.execute(
            "SELECT reserved_concurrency FROM function_meta WHERE name = ?", (name,)
        ).fetchone()
        return row is not None and row["reserved_concurrency"] == 0


def forget_dead_leases(db: Connection) -> None:
    """Leases of dead workers (a registering worker cleans up after the ones before it)."""
    db.execute("DELETE FROM concurrency_leases l WHERE NOT " + _LIVE)
