"""PostgreSQL behind the interface the store already uses (``execute``/``executemany`` with
``?`` placeholders, rows read by name or position, ``BEGIN IMMEDIATE``/``COMMIT``).

The store's statements are written once, in SQLite's dialect; :func:`translate` rewrites the
few constructs PostgreSQL spells differently (placeholders, ``INSERT OR IGNORE/REPLACE``,
two-argument ``MAX``, JSON functions), once per statement text.  The schema is SQLite's
migrations with PostgreSQL's types (:func:`pg_migration`) plus PostgreSQL-only steps
(cluster tables), tracked in ``schema_version`` under a transaction-scoped advisory lock so
that nodes starting together migrate once.

A write transaction (``BEGIN IMMEDIATE``) takes one cluster-wide advisory lock: writers are
serialised as SQLite serialises them, so the store's read-modify-write steps (next version
number, revision checks) stay correct across API replicas.  Each one also bumps
``config_version``, which tells every node's record cache to drop what it holds.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import psycopg
from psycopg import pq

from lambdalet.store.schema import MIGRATIONS

#: the advisory lock every write transaction holds (serialises writers like SQLite does)
WRITE_LOCK = 0x1A4B_DA1E
#: the advisory lock migrations hold
MIGRATE_LOCK = 0x1A4B_DA1F

#: PostgreSQL-only migrations, run after the translated SQLite ones (append only)
PG_MIGRATIONS: tuple[str, ...] = (
    """
    ALTER TABLE code_blobs ADD COLUMN data BYTEA;
    CREATE TABLE config_version (
        id INT PRIMARY KEY CHECK (id = 1),
        version BIGINT NOT NULL
    );
    INSERT INTO config_version VALUES (1, 0);
    CREATE SEQUENCE worker_epoch;
    CREATE TABLE workers (
        id TEXT COLLATE "C" PRIMARY KEY,
        address TEXT NOT NULL,
        pid INT NOT NULL,
        epoch BIGINT NOT NULL,
        state TEXT NOT NULL,                         -- alive | draining | dead
        heartbeat_at TIMESTAMPTZ NOT NULL DEFAULT now(),
        mem_total_mb INT NOT NULL,
        mem_free_mb INT NOT NULL,
        busy INT NOT NULL DEFAULT 0,
        envs INT NOT NULL DEFAULT 0,
        idle JSONB NOT NULL DEFAULT '{}'               -- {"name|version|revision": count}
    );
    CREATE TABLE cluster_secret (
        id INT PRIMARY KEY CHECK (id = 1),
        token TEXT NOT NULL
    );
    ALTER TABLE async_events ADD COLUMN claimed_by TEXT;
    ALTER TABLE async_events ADD COLUMN claim_epoch BIGINT;
    ALTER TABLE async_events ADD COLUMN claim_deadline TIMESTAMPTZ;
    CREATE INDEX async_events_ready ON async_events (due_at, seq) WHERE claimed_by IS NULL;
    CREATE TABLE concurrency_leases (
        id TEXT COLLATE "C" PRIMARY KEY,             -- request id
        name TEXT COLLATE "C" NOT NULL,              -- function name
        worker_id TEXT COLLATE "C" NOT NULL,
        expires_at TIMESTAMPTZ NOT NULL
    );
    CREATE INDEX concurrency_leases_name ON concurrency_leases (name);
    """,
    # provisioned concurrency's status, as the replica that applied the config saw it
    """
    CREATE TABLE provisioned_status (
        config_key TEXT COLLATE "C" PRIMARY KEY,
        requested INT NOT NULL,
        allocated INT NOT NULL,
        status TEXT NOT NULL,
        reason TEXT
    );
    """,
    # one on-demand execution's concurrency lease, taken in one round trip (cluster/grants.py)
    """
    CREATE FUNCTION lambdalet_take(lease TEXT, fn TEXT, worker TEXT, account_limit INT,
                                   provisioned INT) RETURNS TEXT
    LANGUAGE plpgsql VOLATILE AS $$
    DECLARE
        fn_reserved INT;
        running BIGINT;
        reserved_total BIGINT;
    BEGIN
        -- serialise takes: the counts below are read after the lock (a volatile function
        -- takes a fresh snapshot per statement)
        PERFORM pg_advisory_xact_lock(441178656);
        SELECT reserved_concurrency INTO fn_reserved FROM function_meta WHERE name = fn;
        IF fn_reserved IS NOT NULL THEN
            SELECT COUNT(*) INTO running FROM concurrency_leases l
            WHERE l.name = fn AND EXISTS (SELECT 1 FROM workers w
                WHERE w.id = l.worker_id AND w.state <> 'dead');
            IF running >= fn_reserved - provisioned THEN
                RETURN 'ReservedFunctionConcurrentInvocationLimitExceeded';
            END IF;
        ELSE
            SELECT COALESCE(SUM(reserved_concurrency), 0) INTO reserved_total FROM function_meta;
            SELECT COUNT(*) INTO running FROM concurrency_leases l
            WHERE EXISTS (SELECT 1 FROM workers w
                    WHERE w.id = l.worker_id AND w.state <> 'dead')
              AND NOT EXISTS (SELECT 1 FROM function_meta m
                    WHERE m.name = l.name AND m.reserved_concurrency IS NOT NULL);
            IF running >= account_limit - reserved_total THEN
                RETURN 'ConcurrentInvocationLimitExceeded';
            END IF;
        END IF;
        INSERT INTO concurrency_leases (id, name, worker_id, expires_at)
        VALUES (lease, fn, worker, now() + interval '16 minutes');
        RETURN NULL;
    END
    $$;
    """,
)


def pg_migration(sqlite_sql: str) -> str:
    """One SQLite migration step in PostgreSQL's types (double-precision times, bytea,
    identity keys, byte-order text comparison as SQLite's)."""
    sql = sqlite_sql.replace(
        "INTEGER PRIMARY KEY AUTOINCREMENT", "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY"
    )
    sql = re.sub(r"\bREAL\b", "DOUBLE PRECISION", sql)
    sql = re.sub(r"\bBLOB\b", "BYTEA", sql)
    sql = re.sub(r"\bINTEGER\b", "BIGINT", sql)
    sql = re.sub(r"\bTEXT\b", 'TEXT COLLATE "C"', sql)
    return sql


#: whole fragments PostgreSQL spells differently
_FRAGMENTS = {
    "SELECT json_extract(j.value, '$.sha256') FROM functions f, json_each(f.layers) j": (
        "SELECT j.value->>'sha256' FROM functions f, json_array_elements(f.layers::json) j"
    ),
    "ORDER BY CAST(version AS INTEGER)": (
        "ORDER BY CASE WHEN version ~ '^[0-9]+$' THEN version::bigint END"
    ),
    "(? IS NULL OR": "(?::text IS NULL OR",
}
_MAX2 = re.compile(r"\bMAX\(([^(),]+),([^(),]+)\)")
_INSERT_OR = re.compile(r"^\s*INSERT OR (IGNORE|REPLACE) INTO (\w+)\s*\(([^)]*)\)", re.S)


class Row(tuple[Any, ...]):
    """A result row read by position or by column name, like ``sqlite3.Row``."""

    _names: dict[str, int]

    def __new__(cls, values: Sequence[Any], names: dict[str, int]) -> Row:
        row = super().__new__(cls, values)
        row._names = names
        return row

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, str):
            return tuple.__getitem__(self, self._names[key])
        return tuple.__getitem__(self, key)

    def keys(self) -> list[str]:
        return list(self._names)


class Cursor:
    """What the store reads of a cursor: rows and ``rowcount``."""

    def __init__(self, rows: list[Row], rowcount: int) -> None:
        self._rows = rows
        self.rowcount = rowcount

    def fetchone(self) -> Row | None:
        return self._rows[0] if self._rows else None

    def fetchall(self) -> list[Row]:
        return self._rows

    def __iter__(self) -> Iterator[Row]:
        return iter(self._rows)


class PgConnection:
    """One autocommit psycopg connection speaking the store's SQLite dialect."""

    dialect = "postgresql"

    def __init__(self, url: str) -> None:
        self.url = url
        self._conn = psycopg.connect(url, autocommit=True, prepare_threshold=None)
        #: table -> (primary-key columns, every column), for INSERT OR REPLACE
        self._tables: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {}
        self._write_tx = False

    def __repr__(self) -> str:
        return f"PgConnection({self._conn.info.host}:{self._conn.info.port})"

    @property
    def raw(self) -> psycopg.Connection[Any]:
        return self._conn

    @property
    def in_transaction(self) -> bool:
        return self._conn.info.transaction_status != pq.TransactionStatus.IDLE

    def close(self) -> None:
        self._conn.close()

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Cursor:
        word = sql.strip().upper()
        if word == "BEGIN IMMEDIATE":
            self._conn.execute("BEGIN")
            self._conn.execute("SELECT pg_advisory_xact_lock(%s)", (WRITE_LOCK,))
            self._write_tx = True
            return Cursor([], -1)
        if word == "COMMIT" and self._write_tx:
            self._write_tx = False
            self._conn.execute("UPDATE config_version SET version = version + 1")
        elif word == "ROLLBACK":
            self._write_tx = False
        cur = self._conn.execute(self._translate(sql), tuple(params))
        return _cursor(cur)

    def executemany(self, sql: str, seq: Iterable[Sequence[Any]]) -> Cursor:
        with self._conn.cursor() as cur:
            cur.executemany(self._translate(sql), [tuple(p) for p in seq])
            return Cursor([], cur.rowcount)

    def _translate(self, sql: str) -> str:
        m = _INSERT_OR.match(sql)
        if m is None:
            return translate(sql)
        kind, table, cols = m.group(1), m.group(2), [c.strip() for c in m.group(3).split(",")]
        body = translate("INSERT INTO" + sql[m.end(1) + len(" INTO") :])
        if kind == "IGNORE":
            return body + " ON CONFLICT DO NOTHING"
        keys, every = self._table(table)
        # SQLite's REPLACE deletes the old row: columns not given take their defaults
        sets = [f"{c} = EXCLUDED.{c}" for c in cols if c not in keys]
        sets += [f"{c} = DEFAULT" for c in every if c not in keys and c not in cols]
        return f"{body} ON CONFLICT ({', '.join(keys)}) DO UPDATE SET {', '.join(sets)}"

    def _table(self, table: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
        known = self._tables.get(table)
        if known is None:
            cols = self._conn.execute(
                "SELECT column_name FROM information_schema.columns"
                " WHERE table_name = %s AND table_schema = current_schema()"
                " ORDER BY ordinal_position",
                (table,),
            ).fetchall()
            keys = self._conn.execute(
                "SELECT a.attname FROM pg_index i JOIN pg_attribute a"
                " ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)"
                " WHERE i.indrelid = %s::regclass AND i.indisprimary",
                (table,),
            ).fetchall()
            known = (tuple(str(k[0]) for k in keys), tuple(str(c[0]) for c in cols))
            self._tables[table] = known
        return known


@functools.lru_cache(maxsize=512)
def translate(sql: str) -> str:
    """A statement in SQLite's dialect as PostgreSQL spells it."""
    for old, new in _FRAGMENTS.items():
        sql = sql.replace(old, new)
    sql = _MAX2.sub(r"GREATEST(\1,\2)", sql)
    return sql.replace("%", "%%").replace("?", "%s")


def _cursor(cur: psycopg.Cursor[Any]) -> Cursor:
    if cur.description is None:
        return Cursor([], cur.rowcount)
    names = {d.name: i for i, d in enumerate(cur.description)}
    return Cursor([Row(r, names) for r in cur.fetchall()], cur.rowcount)


def connect(url: str) -> PgConnection:
    """Connect and bring the schema to the newest version."""
    db = PgConnection(url)
    migrate(db.raw)
    return db


def migrate(conn: psycopg.Connection[Any]) -> None:
    steps = [pg_migration(s) for s in MIGRATIONS] + list(PG_MIGRATIONS)
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATE_LOCK,))
        conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INT NOT NULL)")
        row = conn.execute("SELECT version FROM schema_version").fetchone()
        if row is None:
            conn.execute("INSERT INTO schema_version VALUES (0)")
            current = 0
        else:
            current = int(row[0])
        for i in range(current, len(steps)):
            conn.execute(steps[i].encode())
        conn.execute("UPDATE schema_version SET version = %s", (len(steps),))
