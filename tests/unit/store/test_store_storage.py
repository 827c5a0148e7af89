"""Storage of the store: code collection by reference, the code-storage limit, permissions,
and what a full disk does to writes and deletes."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from lambdalet.config import ServerConfig
from lambdalet.errors import CodeStorageExceededException, DiskFullException
from lambdalet.store import FunctionPatch, FunctionSpec, LayerKey, LayerVersionSpec, Store
from lambdalet.store.disk import RESERVE_NAME, SpaceReserve, is_disk_full

from .helpers import ROLE, ManualClock, zip_of


def spec(name: str = "fn", **kw: object) -> FunctionSpec:
    return FunctionSpec(name=name, runtime="provided.al2023", handler="h", role=ROLE, **kw)  # type: ignore[arg-type]


def stored(config: ServerConfig) -> set[str]:
    """What is on disk under blobs/ and code/ (names), trash emptied."""
    names = set(os.listdir(config.blobs_dir)) | set(os.listdir(config.code_dir))
    trash = config.trash_dir
    assert not trash.exists() or not os.listdir(trash), os.listdir(trash)
    return names


@pytest.fixture
def config(tmp_path: Path) -> ServerConfig:
    return ServerConfig(data_dir=tmp_path / "data")


@pytest.fixture
def store(config: ServerConfig) -> Iterator[Store]:
    s = Store(config, ManualClock())
    yield s
    s.close()


def _hexes(config: ServerConfig) -> set[str]:
    return {n.split(".")[0] for n in os.listdir(config.code_dir)} | {
        n.split(".")[0] for n in os.listdir(config.blobs_dir)
    }


async def test_replaced_code_is_collected_and_versions_keep_theirs(
    store: Store, config: ServerConfig
) -> None:
    one = await store.put_code(zip_of("one"))
    store.create_function(spec(), one)
    store.settle("fn")
    store.publish_version("fn")  # version 1 keeps "one"
    two = await store.put_code(zip_of("two"))
    store.update_function_code("fn", two)
    store.settle("fn")
    three = await store.put_code(zip_of("three"))
    store.update_function_code("fn", three)  # "two" is referenced by nothing now
    store.settle("fn")
    await store.settle_collection()
    assert _hexes(config) == {one.sha256_hex, three.sha256_hex}
    assert store.code_zip_path(two.sha256_hex) is None
    store.delete_version("fn", "1")
    await store.settle_collection()
    assert _hexes(config) == {three.sha256_hex}
    store.delete_function("fn")
    await store.settle_collection()
    assert stored(config) == set()


async def test_shared_code_stays_while_anyone_refers_to_it(
    store: Store, config: ServerConfig
) -> None:
    code = await store.put_code(zip_of("same"))
    store.create_function(spec("a"), code)
    store.create_function(spec("b"), code)
    store.delete_function("a")
    assert store.code_zip_path(code.sha256_hex) is not None
    assert (config.code_dir / code.sha256_hex / "bootstrap").is_file()
    store.delete_function("b")
    await store.settle_collection()
    assert stored(config) == set()


async def test_a_deleted_layer_version_stays_while_a_function_uses_it(
    store: Store, config: ServerConfig
) -> None:
    layer_code = await store.put_code(zip_of("layer"))
    store.publish_layer_version(LayerVersionSpec("lay"), layer_code)
    fn_code = await store.put_code(zip_of("fn"))
    store.create_function(spec(layers=(LayerKey("lay", 1),)), fn_code)
    store.settle("fn")
    store.delete_layer_version("lay", 1)
    await store.settle_collection()
    assert (config.code_dir / layer_code.sha256_hex).is_dir()
    store.update_function_configuration("fn", FunctionPatch(layers=()))
    await store.settle_collection()
    assert _hexes(config) == {fn_code.sha256_hex}


async def test_code_a_live_environment_runs_from_waits_for_it(
    store: Store, config: ServerConfig
) -> None:
    one = await store.put_code(zip_of("one"))
    store.create_function(spec(), one)
    store.settle("fn")
    in_use = {config.code_dir / one.sha256_hex}
    store.code_in_use = lambda: set(in_use)
    two = await store.put_code(zip_of("two"))
    store.update_function_code("fn", two)
    await store.settle_collection()
    assert (config.code_dir / one.sha256_hex / "bootstrap").is_file()  # still mounted
    in_use.clear()
    store.environment_gone()
    await store.settle_collection()
    assert _hexes(config) == {two.sha256_hex}


async def test_collection_waits_for_uploads_in_flight(store: Store, config: ServerConfig) -> None:
    one = await store.put_code(zip_of("one"))
    store.create_function(spec(), one)
    # an upload of the same bytes as garbage-to-be, racing a delete
    upload = asyncio.ensure_future(store.put_code(zip_of("one")))
    await asyncio.sleep(0)  # the upload is in its worker thread
    store.delete_function("fn")  # collection is deferred: the upload will refer to it
    blob = await upload
    store.create_function(spec("fn2"), blob)
    await asyncio.sleep(0.05)  # the deferred collection runs (and must keep "one")
    await store.settle_collection()
    assert (config.code_dir / blob.sha256_hex / "bootstrap").is_file()
    assert store.code_zip_path(blob.sha256_hex) is not None


async def test_leftovers_of_a_crash_are_collected_at_start(config: ServerConfig) -> None:
    s = Store(config, ManualClock())
    s.close()
    orphan = "ab" * 32
    (config.code_dir / orphan).mkdir()
    (config.code_dir / orphan / "f").write_text("x")
    (config.blobs_dir / f"{orphan}.zip").write_bytes(b"zip")
    (config.code_dir / ".tmp-123").mkdir()
    s = Store(config, ManualClock())
    s.collect_code()  # what the server does at start
    await s.settle_collection()
    s.close()
    assert stored(config) == set()


async def test_account_usage_and_the_code_storage_limit(tmp_path: Path) -> None:
    one, two = zip_of("one"), zip_of("two-two")
    config = ServerConfig(data_dir=tmp_path / "d", code_storage_limit=len(one) + len(two))
    store = Store(config, ManualClock())
    try:
        blob = await store.put_code(one)
        store.create_function(spec(), blob)
        store.settle("fn")
        assert store.account_usage() == (len(one), 1)
        lay = await store.put_code(two)
        store.publish_layer_version(LayerVersionSpec("lay"), lay)
        assert store.account_usage() == (len(one) + len(two), 1)
        with pytest.raises(CodeStorageExceededException, match="Code storage limit exceeded"):
            await store.put_code(zip_of("three"))
        with pytest.raises(CodeStorageExceededException):
            store.publish_version("fn")  # a version counts its code again
        with pytest.raises(CodeStorageExceededException):
            store.publish_layer_version(LayerVersionSpec("lay"), lay)
        store.delete_layer_version("lay", 1)
        assert store.account_usage() == (len(one), 1)
        store.publish_version("fn")
        assert store.account_usage() == (2 * len(one), 1)
    finally:
        store.close()


async def test_data_dir_database_and_wal_are_private(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir(mode=0o755)
    (data / "logs").mkdir(mode=0o755)
    (data / "logs" / "fn.log").write_text("secret\n")
    os.chmod(data / "logs" / "fn.log", 0o644)
    config = ServerConfig(data_dir=data)
    (data / "lambdalet.sqlite3").touch(mode=0o644)
    os.chmod(data / "lambdalet.sqlite3", 0o644)
    store = Store(config, ManualClock())
    try:
        store.create_function(spec(), await store.put_code(zip_of("x")))  # the WAL exists
        assert stat.S_IMODE(data.stat().st_mode) == 0o700
        for name in ("lambdalet.sqlite3", "lambdalet.sqlite3-wal", "lambdalet.sqlite3-shm"):
            assert stat.S_IMODE((data / name).stat().st_mode) == 0o600, name
        assert stat.S_IMODE((data / "logs").stat().st_mode) == 0o700
        assert stat.S_IMODE((data / "logs" / "fn.log").stat().st_mode) == 0o600
    finally:
        store.close()
    fresh = ServerConfig(data_dir=tmp_path / "fresh")
    old = os.umask(0o022)
    try:
        Store(fresh, ManualClock()).close()
    finally:
        os.umask(old)
    assert stat.S_IMODE(fresh.data_dir.stat().st_mode) == 0o700
    assert stat.S_IMODE(fresh.db_path.stat().st_mode) == 0o600


def test_disk_full_is_recognised_through_causes() -> None:
    full = sqlite3.OperationalError("database or disk is full")
    full.sqlite_errorcode = sqlite3.SQLITE_FULL  # type: ignore[attr-defined]
    assert is_disk_full(full)
    assert is_disk_full(OSError(28, "No space left on device"))
    wrapped = DiskFullException("/d")
    wrapped.__cause__ = OSError(28, "No space left on device")
    assert is_disk_full(wrapped)
    assert not is_disk_full(OSError(13, "Permission denied"))
    assert not is_disk_full(sqlite3.OperationalError("database is locked"))


def test_the_space_reserve(tmp_path: Path) -> None:
    reserve = SpaceReserve(tmp_path, 1 << 20)
    assert reserve.take() and reserve.held
    assert (tmp_path / RESERVE_NAME).stat().st_blocks * 512 >= 1 << 20
    assert reserve.release() and not reserve.held
    assert not reserve.release()


async def test_a_delete_on_a_full_disk_releases_the_reserve_and_succeeds(
    store: Store, config: ServerConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    code = await store.put_code(zip_of("one"))
    store.create_function(spec(), code)
    reserve = config.data_dir / RESERVE_NAME
    assert reserve.exists()
    real_tx = store._tx
    failures = []

    def full_once():  # type: ignore[no-untyped-def]
        if reserve.exists():  # the disk is full until the reserve is given back
            failures.append(1)
            e = sqlite3.OperationalError("database or disk is full")
            e.sqlite_errorcode = sqlite3.SQLITE_FULL  # type: ignore[attr-defined]
            raise DiskFullException(config.data_dir) from e
        return real_tx()

    monkeypatch.setattr(store, "_tx", full_once)
    with pytest.raises(DiskFullException, match="No space left on the data disk"):
        store.set_reserved_concurrency("fn", 3)  # not a delete: refused, reserve kept
    assert reserve.exists()
    store.delete_function("fn")
    assert failures == [1, 1]
    monkeypatch.undo()
    await store.settle_collection()
    assert stored(config) == set()
    assert store.function_names() == set()
    assert reserve.exists()  # taken again once space was freed
