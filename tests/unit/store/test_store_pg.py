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
