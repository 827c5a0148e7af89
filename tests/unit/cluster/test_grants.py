"""Concurrency limits across workers: leases in a real PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from lambdalet.cluster.grants import SharedLimits, forget_dead_leases
from lambdalet.cluster.membership import Load, Membership
from lambdalet.config import ServerConfig
from lambdalet.errors import TooManyRequestsException
from lambdalet.store import Store
from tests.unit.store.helpers import ManualClock, add_function
from tests.unit.store.pg_fixture import pg_admin_url, pg_url  # noqa: F401 (fixtures)


@pytest.fixture
def store(tmp_path: Path, pg_url: str) -> Iterator[Store]:  # noqa: F811
    s = Store(ServerConfig(data_dir=tmp_path / "data", database_url=pg_url), ManualClock())
    yield s
    s.close()


def worker(store: Store, account_limit: int = 20) -> tuple[Membership, SharedLimits]:
    m = Membership(store.db, "127.0.0.1:1", 1024, Load)
    m.register()
    return m, SharedLimits(store.db, m.worker_id, account_limit)


async def test_reserved_concurrency_holds_across_workers(store: Store) -> None:
    await add_function(store, "fn")
    store.set_reserved_concurrency("fn", 2)
    one_m, one = worker(store)
    _, two = worker(store)
    one.take("fn")
    two.take("fn")
    with pytest.raises(TooManyRequestsException) as e:
        one.take("fn")
    assert e.value.extra["Reason"] == "ReservedFunctionConcurrentInvocationLimitExceeded"
    two.give("fn")
    one.take("fn")  # a slot given back on one worker is free on the other
    # a dead worker's executions stop counting
    store.db.execute("UPDATE workers SET state = 'dead' WHERE id = ?", (one_m.worker_id,))
    two.take("fn")
    two.take("fn")
    forget_dead_leases(store.db)
    (left,) = store.db.execute("SELECT COUNT(*) FROM concurrency_leases").fetchone()
    assert left == 2


async def test_unreserved_pool_is_the_account_limit_minus_reservations(store: Store) -> None:
    await add_function(store, "a")
    await add_function(store, "b")
    store.set_reserved_concurrency("b", 17)
    _, one = worker(store, account_limit=20)
    _, two = worker(store, account_limit=20)
    for _ in range(2):
        one.take("a")
    two.take("a")
    with pytest.raises(TooManyRequestsException) as e:
        two.take("a")
    assert e.value.extra["Reason"] == "ConcurrentInvocationLimitExceeded"
    assert not one.disabled("a")
    store.set_reserved_concurrency("a", 0)
    assert two.disabled("a")
