"""Placement as a replica sees the workers in PostgreSQL: idle environment of the version
first, then most free memory and fewest busy; dead and draining workers never."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from lambdalet.cluster.membership import Load, Membership, idle_key
from lambdalet.cluster.routing import RoutingInvoker
from lambdalet.config import ServerConfig
from lambdalet.store import Store
from tests.unit.cluster.test_protocol import record
from tests.unit.store.helpers import ManualClock
from tests.unit.store.pg_fixture import pg_admin_url, pg_url  # noqa: F401 (fixtures)


@pytest.fixture
def store(tmp_path: Path, pg_url: str) -> Iterator[Store]:  # noqa: F811
    s = Store(ServerConfig(data_dir=tmp_path / "data", database_url=pg_url), ManualClock())
    yield s
    s.close()


def worker(store: Store, port: int, load: Load) -> Membership:
    m = Membership(store.db, f"127.0.0.1:{port}", 4096, lambda: load)
    m.register()
    assert m.heartbeat()
    return m


def test_idle_environment_first_then_free_memory_then_load(store: Store) -> None:
    fn = record()
    warm = idle_key(fn.name, fn.version, fn.revision_id)
    roomy = worker(store, 1, Load(environments=1, used_mb=128))
    full = worker(store, 2, Load(environments=20, used_mb=3000))
    holder = worker(store, 3, Load(environments=30, used_mb=3500, idle={warm: 1}))
    gone = worker(store, 4, Load())
    drained = worker(store, 5, Load())
    store.db.execute("UPDATE workers SET state = 'dead' WHERE id = ?", (gone.worker_id,))
    drained.drain()
    routing = RoutingInvoker(store.db, "token")
    routing.refresh()
    order = [w.id for w in routing.candidates(fn)]
    assert order == [holder.worker_id, roomy.worker_id, full.worker_id]
    # an older revision's idle environment does not attract the new one
    stale = replace(record(), revision_id="rev-2")
    assert routing.candidates(stale)[0].id == roomy.worker_id


def test_a_worker_declared_dead_reregisters_with_a_new_epoch(store: Store) -> None:
    m = worker(store, 1, Load())
    first = m.epoch
    store.db.execute("UPDATE workers SET state = 'dead' WHERE id = ?", (m.worker_id,))
    assert not m.alive()
    assert m.heartbeat() is False  # it noticed, and came back under a new epoch
    assert m.epoch > first and m.alive()
