"""Fixtures for the cluster tests: one real PostgreSQL per test session, one database per user.

``pg`` is the running server (``tests.cluster.pg.Postgres``); ``pg_url`` a fresh, empty database
on it for each test module, so modules never see each other's tables. Where PostgreSQL is not
installed the tests skip, saying why, or fail when ``CI`` is set.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import pytest

from tests.cluster.pg import Postgres, missing, postgres
from tests.integration.test_dashboard import browser  # noqa: F401  (the headless browser)
from tests.needs import require

_databases = itertools.count(1)


@pytest.fixture(scope="session")
def pg() -> Iterator[Postgres]:
    require("PostgreSQL", missing())
    with postgres() as server:
        yield server


@pytest.fixture(scope="module")
def pg_url(pg: Postgres) -> str:
    return pg.create_database(f"t{next(_databases)}")
