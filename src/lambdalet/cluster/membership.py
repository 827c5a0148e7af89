"""Workers in the shared database: a worker registers, heartbeats and leaves; any node
reads the list and declares silent workers dead.

A worker's row carries a fencing *epoch* (a sequence value, new at every registration):
claims and other holdings name it, so a worker declared dead cannot act on what it held
even if it comes back (it re-registers with a new epoch).  Times are the database's
``now()``, never a node's clock.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from lambdalet.store.connection import Connection
from lambdalet.store.pg_queue import Claimer

log = logging.getLogger(__name__)

HEARTBEAT_S = 1.0
#: a worker this long without a heartbeat is dead: its claims go to others
DEAD_AFTER_S = 5.0

ALIVE = "alive"
DRAINING = "draining"
DEAD = "dead"


@dataclass(frozen=True)
class Load:
    """What a heartbeat reports of a worker's environments."""

    environments: int = 0
    busy: int = 0
    used_mb: int = 0
    #: "name|version|revision" -> idle environments (routing prefers a worker with one)
    idle: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class WorkerInfo:
    id: str
    address: str
    pid: int
    epoch: int
    state: str
    environments: int
    busy: int
    total_mb: int
    free_mb: int
    last_heartbeat: str
    idle: dict[str, int]

    def admin_json(self) -> dict[str, Any]:
        """One item of ``GET /lambdalet/admin/workers``."""
        return {
            "Id": self.id,
            "Address": self.address,
            "Pid": self.pid,
            "State": self.state,
            "Environments": self.environments,
            "Memory": {"TotalMB": self.total_mb, "FreeMB": self.free_mb},
            "LastHeartbeat": self.last_heartbeat,
        }


def idle_key(name: str, version: str, revision_id: str) -> str:
    return f"{name}|{version}|{revision_id}"


def mark_dead(db: Connection) -> int:
    """Declare workers silent for ``DEAD_AFTER_S`` dead; how many."""
    cur = db.execute(
        "UPDATE workers SET state = 'dead' WHERE state <> 'dead'"
        " AND heartbeat_at < now() - make_interval(secs => ?::double precision)",
        (DEAD_AFTER_S,),
    )
    return int(cur.rowcount)


def list_workers(db: Connection, *, include_dead: bool = True) -> list[WorkerInfo]:
    rows = db.execute(
        "SELECT id, address, pid, epoch, state, envs, busy, mem_total_mb, mem_free_mb, idle,"
        " to_char(heartbeat_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"') AS hb"
        " FROM workers" + ("" if include_dead else " WHERE state <> 'dead'") + " ORDER BY id"
    ).fetchall()
    return [
        WorkerInfo(
            id=str(r["id"]),
            address=str(r["address"]),
            pid=int(r["pid"]),
            epoch=int(r["epoch"]),
            state=str(r["state"]),
            environments=int(r["envs"]),
            busy=int(r["busy"]),
            total_mb=int(r["mem_total_mb"]),
            free_mb=int(r["mem_free_mb"]),
            last_heartbeat=str(r["hb"]),
            idle={str(k): int(v) for k, v in dict(r["idle"]).items()},
        )
        for r in rows
    ]


def forget_dead(db: Connection, older_than_s: float = 3600.0) -> None:
    """Dead workers' rows go after an hour (the admin list shows recent deaths)."""
    db.execute(
        "DELETE FROM workers WHERE state = 'dead'"
        " AND heartbeat_at < now() - make_interval(secs => ?::double precision)",
        (older_than_s,),
    )


class Membership:
    """This worker's row: registration, heartbeats every ``HEARTBEAT_S``, drain, leave."""

    def __init__(
        self, db: Connection, address: str, total_mb: int, load: Callable[[], Load]
    ) -> None:
        self._db = db
        self.address = address
        self.total_mb = total_mb
        self._load = load
        self.worker_id = str(uuid.uuid4())
        self.epoch = 0
        self.state = DEAD
        #: called with the new claimer when a re-registration replaced the epoch
        self.on_new_epoch: Callable[[Claimer], None] | None = None
        self._task: asyncio.Task[None] | None = None

    def __repr__(self) -> str:
        return f"Membership({self.worker_id}, epoch={self.epoch}, {self.state})"

    @property
    def claimer(self) -> Claimer:
        return Claimer(self.worker_id, self.epoch)

    def register(self) -> Claimer:
        (epoch,) = self._db.execute("SELECT nextval('worker_epoch')").fetchone()
        self.epoch = int(epoch)
        self._db.execute(
            "INSERT INTO workers (id, address, pid, epoch, state, mem_total_mb, mem_free_mb)"
            " VALUES (?, ?, ?, ?, 'alive', ?, ?) ON CONFLICT (id) DO UPDATE SET"
            " epoch = EXCLUDED.epoch, state = 'alive', heartbeat_at = now()",
            (self.worker_id, self.address, os.getpid(), self.epoch, self.total_mb, self.total_mb),
        )
        self.state = ALIVE
        log.info("worker %s registered at %s (epoch %d)", self.worker_id, self.address, epoch)
        return self.claimer

    def heartbeat(self) -> bool:
        """Report load; False (and a new registration) when we had been declared dead."""
        load = self._load()
        cur = self._db.execute(
            "UPDATE workers SET heartbeat_at = now(), envs = ?, busy = ?, mem_free_mb = ?,"
            " idle = ?::jsonb WHERE id = ? AND epoch = ? AND state <> 'dead'",
            (
                load.environments,
                load.busy,
                max(0, self.total_mb - load.used_mb),
                json.dumps(load.idle),
                self.worker_id,
                self.epoch,
            ),
        )
        if cur.rowcount:
            return True
        log.warning("worker %s was declared dead (no heartbeat): registering again", self)
        claimer = self.register()
        if self.on_new_epoch is not None:
            self.on_new_epoch(claimer)
        return False

    def alive(self) -> bool:
        row = self._db.execute(
            "SELECT state FROM workers WHERE id = ? AND epoch = ?", (self.worker_id, self.epoch)
        ).fetchone()
        return row is not None and row["state"] == ALIVE

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._beat(), name="heartbeat")

    async def _beat(self) -> None:
        while True:
            await asyncio.sleep(HEARTBEAT_S)
            try:
                if self.state != DEAD:
                    self.heartbeat()
                mark_dead(self._db)
            except Exception:
                log.exception("worker heartbeat")

    def drain(self) -> None:
        """No new routes or claims; what runs finishes."""
        self.state = DRAINING
        self._db.execute(
            "UPDATE workers SET state = 'draining' WHERE id = ? AND epoch = ?",
            (self.worker_id, self.epoch),
        )

    async def leave(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        self.state = DEAD
        try:
            self._db.execute(
                "UPDATE workers SET state = 'dead' WHERE id = ? AND epoch = ?",
                (self.worker_id, self.epoch),
            )
        except Exception as e:  # the database is gone: the others declare us dead anyway
            log.warning("could not leave the cluster cleanly: %s", e)
