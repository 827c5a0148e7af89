"""The store's behaviour tests again, on PostgreSQL (cluster mode), plus what only a shared
database has: two nodes' stores seeing each other's writes and code."""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from pathlib import Path

import pytest

from lambdalet.config import ServerConfig
from lambdalet.store import Store
from lambdalet.store.pg import pg_migration, translate
from lambdalet.store.pg_queue import Claimer
from lambdalet.store.records import NewEvent
from tests.unit.store import test_store_async_events, test_store_versions
from tests.unit.store.helpers import ManualClock, add_function, new_code
from tests.unit.store.pg_fixture import pg_admin_url, pg_url  # noqa: F401 (fixtures)

# every test of these modules that runs on the ``store`` fixture runs here on PostgreSQL
for _module in (test_store_versions, test_store_async_events):
    for _name, _test in vars(_module).items():
        if _name.startswith("test_") and "store" in inspect.signature(_test).parameters:
            globals()[_name] = _test


def pg_store(tmp_path: Path, url: str, clock: ManualClock, node: str = "data") -> Store:
    return Store(ServerConfig(data_dir=tmp_path / node, database_url=url), clock)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def store(tmp_path: Path, pg_url: str, clock: ManualClock) -> Iterator[Store]:  # noqa: F811
    s = pg_store(tmp_path, pg_url, clock)
    yield s
    s.close()


def test_translation_of_sqlite_constructs() -> None:
    assert translate("UPDATE t SET a = MAX(0, a - ?) WHERE b = ?") == (
        "UPDATE t SET a = GREATEST(0, a - %s) WHERE b = %s"
    )
    assert translate("SELECT COUNT(*) FROM t WHERE x LIKE '%'") == (
        "SELECT COUNT(*) FROM t WHERE x LIKE '%%'"
    )
    assert "DOUBLE PRECISION" in pg_migration("CREATE TABLE t (at REAL NOT NULL)")
    assert "BYTEA" in pg_migration("CREATE TABLE t (b BLOB NOT NULL)")


async def test_two_nodes_share_functions_and_code(
    tmp_path: Path,
    pg_url: str,  # noqa: F811
    clock: ManualClock,
) -> None:
    one = pg_store(tmp_path, pg_url, clock, "one")
    two = pg_store(tmp_path, pg_url, clock, "two")
    try:
        created = await add_function(one, "fn", "first")
        seen = two.get_function("fn")
        assert seen.revision_id == created.revision_id
        # the other node unpacked the code from the database into its own data dir
        assert seen.code_dir.parent == tmp_path / "two" / "code"
        assert (seen.code_dir / "bootstrap").read_text() == "#!/bin/sh\necho first\n"
        # a write on one node: the other's cached record goes once it rechecks
        updated = await new_code(one, "fn", "second")
        clock.advance(1.0)
        assert two.get_function("fn").revision_id == updated.revision_id
        assert (two.get_function("fn").code_dir / "bootstrap").read_text().endswith("second\n")
    finally:
        one.close()
        two.close()


def test_insert_or_replace_resets_columns_not_given(store: Store) -> None:
    """SQLite's REPLACE deletes the old row: the PostgreSQL translation gives the columns the
    statement does not name their defaults too."""
    store.db.execute("INSERT INTO function_meta (name, reserved_concurrency) VALUES ('x', 3)")
    store.db.execute("INSERT OR REPLACE INTO function_meta (name, last_version) VALUES ('x', 7)")
    row = store.db.execute(
        "SELECT last_version, reserved_concurrency FROM function_meta WHERE name = ?", ("x",)
    ).fetchone()
    assert (row["last_version"], row["reserved_concurrency"]) == (7, None)
    store.db.execute("INSERT OR IGNORE INTO function_meta (name, last_version) VALUES ('x', 9)")
    (kept,) = store.db.execute("SELECT last_version FROM function_meta").fetchone()
    assert kept == 7


def _worker(store: Store, worker_id: str, epoch: int) -> Claimer:
    store.db.execute(
        "INSERT INTO workers (id, address, pid, epoch, state, mem_total_mb, mem_free_mb)"
        " VALUES (?, '127.0.0.1:1', 1, ?, 'alive', 1024, 1024)",
        (worker_id, epoch),
    )
    return Claimer(worker_id, epoch)


async def test_claims_split_events_and_a_dead_workers_claims_run_elsewhere(
    tmp_path: Path,
    pg_url: str,  # noqa: F811
    clock: ManualClock,
) -> None:
    one = pg_store(tmp_path, pg_url, clock, "one")
    two = pg_store(tmp_path, pg_url, clock, "two")
    try:
        one.claimer = _worker(one, "w1", 1)
        two.claimer = _worker(two, "w2", 2)
        for i in range(4):
            one.enqueue_event(NewEvent(f"r{i}", "fn", None, b"{}"))
        mine = one.due_events(clock.wall(), 3, ())
        theirs = two.due_events(clock.wall(), 3, ())
        assert [e.request_id for e in mine] == ["r0", "r1", "r2"]
        assert [e.request_id for e in theirs] == ["r3"]  # never one of w1's
        assert two.next_due(()) is None
        # w1 dies: its claims are free; its late steps change nothing
        one.db.execute("UPDATE workers SET state = 'dead' WHERE id = 'w1'")
        retaken = two.due_events(clock.wall(), 5, {theirs[0].seq})
        assert sorted(e.request_id for e in retaken) == ["r0", "r1", "r2"]
        assert one.event_attempt_started(mine[0].seq) is False
        one.finish_event(mine[0].seq)
        assert one.queued_events() == 4
        assert two.event_attempt_started(retaken[0].seq) is True
        two.finish_event(retaken[0].seq)
        assert two.queued_events() == 3
        # a rescheduled event is unclaimed: any worker may take it when due
        two.reschedule_event(retaken[1].seq, clock.wall() + 5, throttled=True)
        two.claimer = Claimer("w2", 2)
        assert two.next_due({theirs[0].seq, retaken[2].seq}) == clock.wall() + 5
    finally:
        one.close()
        two.close()
