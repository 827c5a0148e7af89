"""The PostgreSQL fixture itself: a real server that answers, with the database it promised."""

from __future__ import annotations

import psycopg

from tests.cluster.pg import Postgres


def test_the_database_answers_queries(pg: Postgres) -> None:
    with psycopg.connect(pg.url) as conn:
        assert conn.execute("select 1").fetchone() == (1,)
        assert conn.execute("select current_database()").fetchone() == ("lambdalet",)
        version = conn.execute("show server_version_num").fetchone()
        assert version is not None and int(version[0]) // 10000 == 15


def test_each_module_gets_its_own_empty_database(pg: Postgres, pg_url: str) -> None:
    assert pg_url != pg.url
    with psycopg.connect(pg_url) as conn:
        conn.execute("create table t (x int)")
        conn.commit()
    with psycopg.connect(pg.url) as conn:
        row = conn.execute("select count(*) from pg_tables where tablename = 't'").fetchone()
        assert row == (0,)


def test_the_server_runs_unprivileged(pg: Postgres) -> None:
    with psycopg.connect(pg.url) as conn:
        # a superuser role, but the server process itself is not root (PostgreSQL refuses root)
        assert conn.execute("select current_user").fetchone() == ("postgres",)
    with open(f"/proc/{pg.process.pid}/status") as status:
        uid = next(line.split()[1] for line in status if line.startswith("Uid:"))
    assert uid != "0"
