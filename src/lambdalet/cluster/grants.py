"""Concurrency limits held across the cluster: every on-demand execution on any worker is
a lease row in the shared database, taken and given back in one short transaction.

``SharedLimits`` is the worker pool's ``ConcurrencyLimits`` with ``take``/``give`` counting
the cluster's leases instead of this process's: a function's reserved concurrency and the
account's unreserved pool hold whichever worker runs the invoke.  The reservations are read
from the database at each take, so a PutFunctionConcurrency made through any replica
holds at once.  A dead worker's leases stop counting as soon as it is declared dead (its
row's state), and are deleted by the next worker to register.

Each take is one call of the database function ``lambdalet_take`` (``store/pg.py``), which
holds one cluster-wide advisory lock for its transaction: one round trip, exact, at the
price of serialising on-demand starts across the cluster (block grants per worker, as
``docs/cluster.md`` sketches, would lift that).
"""

from __future__ import annotations

import logging
import uuid
from collections import defaultdict

from lambdalet.control.concurrency import ConcurrencyLimits
from lambdalet.errors import TooManyRequestsException
from lambdalet.store.connection import Connection

log = logging.getLogger(__name__)

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

    def take(self, name: str) -> None:
        """Count one on-demand execution cluster-wide (one round trip: the database's
        ``lambdalet_take`` locks, counts the live leases against the limits read there,
        and inserts this one), or raise 429 with Lambda's reason."""
        lease = str(uuid.uuid4())
        (reason,) = self._db.execute(
            "SELECT lambdalet_take(?, ?, ?, ?::int, ?::int)",
            (lease, name, self.worker_id, self.account_limit, self.provisioned_total(name)),
        ).fetchone()
        if reason is not None:
            raise TooManyRequestsException(str(reason))
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
