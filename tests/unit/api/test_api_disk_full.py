"""A full data disk seen through the API: named in the error, and no function left Pending."""

from __future__ import annotations

import errno
import json
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from lambdalet.api import TASKS_KEY, handler_base
from lambdalet.app import build_api
from lambdalet.config import ServerConfig
from lambdalet.errors import DiskFullException
from lambdalet.store import Store

from .test_api_app import HangingInvoker

EMPTY_ZIP_B64 = "UEsFBgAAAAAAAAAAAAAAAAAAAAAAAA=="
CREATE = {
    "FunctionName": "fn",
    "Runtime": "python3.12",
    "Role": "arn:aws:iam::123456789012:role/r",
    "Handler": "app.handler",
    "Code": {"ZipFile": EMPTY_ZIP_B64},
}


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[tuple[TestClient, Store]]:
    config = ServerConfig(data_dir=tmp_path)
    store = Store(config)
    client = TestClient(TestServer(build_api(config, store, HangingInvoker())))
    await client.start_server()
    yield client, store
    await client.close()
    store.close()


async def test_any_failure_for_lack_of_space_names_the_cause(
    api: tuple[TestClient, Store], monkeypatch: pytest.MonkeyPatch
) -> None:
    client, store = api

    def no_space(*_: Any, **__: Any) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(store, "list_functions", no_space)
    resp = await client.get("/2015-03-31/functions/")
    assert resp.status == 500
    assert resp.headers["X-Amzn-ErrorType"] == "ServiceException"
    body = await resp.json()
    assert body["Message"].startswith("No space left on the data disk")
    assert body["Type"] == "Service"


async def test_a_commit_failing_on_a_full_disk_is_named_and_rolled_back(
    api: tuple[TestClient, Store], monkeypatch: pytest.MonkeyPatch
) -> None:
    client, store = api
    assert (await client.post("/2015-03-31/functions", data=json.dumps(CREATE))).status == 201
    real_execute = store._db.execute

    def execute(sql: str, *args: Any) -> Any:
        if sql == "COMMIT":
            e = sqlite3.OperationalError("database or disk is full")
            e.sqlite_errorcode = sqlite3.SQLITE_FULL  # type: ignore[attr-defined]
            raise e
        return real_execute(sql, *args)

    await client.app[TASKS_KEY].wait_idle()
    monkeypatch.setattr(store, "_db", _Proxy(store._db, execute))
    resp = await client.put(
        "/2015-03-31/functions/fn/configuration", data=json.dumps({"Description": "new"})
    )
    assert resp.status == 500
    assert (await resp.json())["Message"].startswith("No space left on the data disk")
    monkeypatch.undo()
    assert not store._db.in_transaction
    got = await (await client.get("/2015-03-31/functions/fn")).json()
    assert got["Configuration"]["Description"] == ""
    assert store._db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


async def test_a_function_that_could_not_settle_settles_once_there_is_room(
    api: tuple[TestClient, Store], monkeypatch: pytest.MonkeyPatch
) -> None:
    client, store = api
    monkeypatch.setattr(handler_base, "SETTLE_RETRY_S", 0.01)
    real_settle = store.settle
    attempts: list[str] = []

    def settle(name: str) -> Any:
        attempts.append(name)
        if len(attempts) < 3:
            raise DiskFullException("/data")
        return real_settle(name)

    monkeypatch.setattr(store, "settle", settle)
    assert (await client.post("/2015-03-31/functions", data=json.dumps(CREATE))).status == 201
    await client.app[TASKS_KEY].wait_idle()
    assert attempts == ["fn", "fn", "fn"]
    got = await (await client.get("/2015-03-31/functions/fn")).json()
    assert got["Configuration"]["State"] == "Active"


class _Proxy:
    """The store's connection with ``execute`` replaced (sqlite3.Connection's is read-only)."""

    def __init__(self, conn: sqlite3.Connection, execute: Any) -> None:
        self._conn = conn
        self.execute = execute

    def __getattr__(self, name: str) -> Any:
        return getattr(self._conn, name)
