"""A PostgreSQL for store tests: one server per session (``tests/cluster/pg.py``), one fresh
database per test.  ``LAMBDALET_TEST_POSTGRES`` (an admin URL) uses a server already running.
A missing PostgreSQL skips locally and fails in CI (``tests.needs.require``)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import psycopg
import pytest

from tests.needs import require


@pytest.fixture(scope="session")
def pg_admin_url() -> Iterator[str]:
    given = os.environ.get("LAMBDALET_TEST_POSTGRES")
    if given:
        yield given
        return
    try:
        from tests.cluster import pg
    except ImportError:
        require("PostgreSQL", "tests/cluster/pg.py is not there")
        return
    require("PostgreSQL", pg.missing())
    with pg.postgres() as server:
        yield server.admin_url


def new_database(admin_url: str) -> str:
    """An empty database on the server of ``admin_url``; its URL."""
    name = f"t{uuid.uuid4().hex[:16]}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}".encode())
    return admin_url.rsplit("/", 1)[0] + "/" + name


@pytest.fixture
def pg_url(pg_admin_url: str) -> str:
    return new_database(pg_admin_url)
