"""The SQLite store on a temporary data directory."""

from __future__ import annotations

import io
import os
import sqlite3
import stat
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lambdalet.config import ServerConfig
from lambdalet.errors import (
    InvalidParameterValueException,
    PreconditionFailedException,
    ResourceConflictException,
    ResourceNotFoundException,
)
from lambdalet.store import (
    FunctionPatch,
    FunctionSpec,
    LayerKey,
    LayerVersionSpec,
    LoggingSettings,
    Store,
    aws_timestamp,
)
from lambdalet.store import sqlite as store_sqlite
from lambdalet.store.schema import MIGRATIONS

ROLE = "arn:aws:iam::123456789012:role/r"


class FixedClock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.25

    def monotonic(self) -> float:
        return self.now

    def wall(self) -> float:
        return self.now


def zip_bytes(files: dict[str, bytes], executable: tuple[str, ...] = ()) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in files.items():
            info = zipfile.ZipInfo(name)
            info.create_system = 3
            info.external_attr = (stat.S_IFREG | (0o755 if name in executable else 0o644)) << 16
            zf.writestr(info, data)
    return buf.getvalue()


CODE = zip_bytes({"bootstrap": b"#!/bin/sh\necho hi\n"}, executable=("bootstrap",))


@pytest.fixture
def config(tmp_path: Path) -> ServerConfig:
    return ServerConfig(data_dir=tmp_path / "data")


@pytest.fixture
def store(config: ServerConfig) -> Iterator[Store]:
    s = Store(config, FixedClock())
    yield s
    s.close()


def spec(name: str = "fn", **kw: Any) -> FunctionSpec:
    return FunctionSpec(name=name, runtime="provided.al2023", handler="h", role=ROLE, **kw)


async def test_create_get_and_settle(store: Store, config: ServerConfig) -> None:
    code = await store.put_code(CODE)
    rec = store.create_function(spec(environment={"AA": "1"}, tags={"t": "v"}), code)
    assert (rec.state, rec.last_update_status) == ("Pending", "InProgress")
    assert rec.arn == "arn:aws:lambda:us-east-1:123456789012:function:fn"
    assert rec.version == "$LATEST"
    assert rec.code_dir == config.code_dir / code.sha256_hex
    assert os.access(rec.code_dir / "bootstrap", os.X_OK)
    assert rec.code_sha256 == code.sha256_b64 and rec.code_size == len(CODE)
    assert rec.environment == {"AA": "1"} and rec.tags == {"t": "v"}
    assert rec.last_modified == "2023-11-14T22:13:20.250+0000"
    assert rec.log_group == "/aws/lambda/fn"
    settled = store.settle("fn")
    assert settled is not None
    assert (settled.state, settled.last_update_status) == ("Active", "Successful")
    assert store.settle("missing") is None


async def test_duplicate_and_missing(store: Store) -> None:
    code = await store.put_code(CODE)
    store.create_function(spec(), code)
    with pytest.raises(ResourceConflictException, match="Function already exist: fn"):
        store.create_function(spec(), code)
    with pytest.raises(ResourceNotFoundException) as info:
        store.get_function("nope")
    assert info.value.message.endswith(":function:nope")
    with pytest.raises(ResourceNotFoundException) as info:
        store.get_function("fn", "3")
    assert info.value.message.endswith(":function:fn:3")


async def test_updates_need_a_settled_function_and_the_current_revision(store: Store) -> None:
    code = await store.put_code(CODE)
    rec = store.create_function(spec(), code)
    with pytest.raises(ResourceConflictException, match="following state: Pending"):
        store.update_function_configuration("fn", FunctionPatch(timeout_s=9))
    store.settle("fn")
    with pytest.raises(PreconditionFailedException):
        store.update_function_configuration("fn", FunctionPatch(timeout_s=9), revision_id="x")
    upd = store.update_function_configuration(
        "fn",
        FunctionPatch(
            timeout_s=9, environment={"BB": "2"}, logging=LoggingSettings("JSON", "INFO", "WARN")
        ),
        revision_id=rec.revision_id,
    )
    assert upd.timeout_s == 9 and upd.environment == {"BB": "2"}
    assert upd.revision_id != rec.revision_id
    assert upd.last_update_status == "InProgress"
    assert (upd.log_format, upd.application_log_level, upd.system_log_level) == (
        "JSON",
        "INFO",
        "WARN",
    )
    with pytest.raises(ResourceConflictException, match="An update is in progress"):
        store.update_function_code("fn", code)
    store.settle("fn")
    other = await store.put_code(zip_bytes({"x": b"2"}))
    new = store.update_function_code("fn", other, architectures=("arm64",))
    assert new.code_sha256 == other.sha256_b64 and new.architectures == ("arm64",)
    assert new.timeout_s == 9


async def test_layers(store: Store, config: ServerConfig) -> None:
    code = await store.put_code(zip_bytes({"python/m.py": b"x=1"}))
    v1 = store.publish_layer_version(
        LayerVersionSpec("lay", compatible_runtimes=("python3.12",)), code
    )
    v2 = store.publish_layer_version(LayerVersionSpec("lay", description="two"), code)
    assert (v1.version, v2.version) == (1, 2)
    assert v1.layer_version_arn == "arn:aws:lambda:us-east-1:123456789012:layer:lay:1"
    assert [r.version for r in store.list_layer_versions("lay").items] == [2, 1]
    assert [r.version for r in store.list_layer_versions("lay", runtime="python3.12").items] == [1]
    page = store.list_layer_versions("lay", limit=1)
    assert [r.version for r in page.items] == [2] and page.next_after == "2"
    assert [r.version for r in store.list_layer_versions("lay", after=2).items] == [1]
    assert [r.version for r in store.list_layers().items] == [2]
    fn_code = await store.put_code(CODE)
    rec = store.create_function(spec(layers=(LayerKey("lay", 1),)), fn_code)
    assert rec.layers[0].arn == v1.layer_version_arn
    assert rec.layers[0].code_dir == config.code_dir / code.sha256_hex
    assert rec.layers[0].code_size == code.size
    store.delete_layer_version("lay", 2)
    store.delete_layer_version("lay", 2)
    with pytest.raises(ResourceNotFoundException):
        store.get_layer_version("lay", 2)
    v3 = store.publish_layer_version(LayerVersionSpec("lay"), code)
    assert v3.version == 3  # numbers are never reused
    store.delete_layer_version("lay", 1)
    assert store.get_function("fn").layers == rec.layers  # the function keeps its layer
    with pytest.raises(
        InvalidParameterValueException, match=r"Layer version .*:layer:lay:1 does not exist\."
    ):
        store.create_function(spec("fn2", layers=(LayerKey("lay", 1),)), fn_code)


async def test_code_plus_layers_limit(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(store_sqlite, "MAX_UNZIPPED_BYTES", 30)
    layer = await store.put_code(zip_bytes({"a": b"x" * 20}))
    store.publish_layer_version(LayerVersionSpec("big"), layer)
    code = await store.put_code(zip_bytes({"b": b"y" * 20}))
    with pytest.raises(InvalidParameterValueException) as info:
        store.create_function(spec(layers=(LayerKey("big", 1),)), code)
    assert info.value.message == (
        "Function code combined with layers exceeds the maximum allowed size of 30 bytes. "
        "The actual size is 40 bytes."
    )


async def test_list_functions_pages(store: Store) -> None:
    code = await store.put_code(CODE)
    for n in ("c", "a", "b"):
        store.create_function(spec(n), code)
    first = store.list_functions(None, 2)
    assert [r.name for r in first.items] == ["a", "b"] and first.next_after == "b"
    rest = store.list_functions(first.next_after, 2)
    assert [r.name for r in rest.items] == ["c"] and rest.next_after is None


async def test_delete(store: Store) -> None:
    code = await store.put_code(CODE)
    store.create_function(spec(), code)
    store.delete_function("fn")
    with pytest.raises(ResourceNotFoundException):
        store.delete_function("fn")
    assert store.code_zip_path(code.sha256_hex) is None  # no one refers to it: collected


async def test_restart_keeps_everything(config: ServerConfig) -> None:
    first = Store(config)
    code = await first.put_code(CODE)
    layer = first.publish_layer_version(LayerVersionSpec("lay", license_info="MIT"), code)
    created = first.create_function(spec(layers=(LayerKey("lay", 1),), description="d"), code)
    first.close()
    second = Store(config)
    got = second.get_function("fn")
    assert got.state == "Active" and got.last_update_status == "Successful"  # settled at open
    assert got.revision_id == created.revision_id
    assert got.layers == created.layers and got.description == "d"
    assert second.get_layer_version("lay", 1) == layer
    assert os.access(got.code_dir / "bootstrap", os.X_OK)
    zip_path = second.code_zip_path(code.sha256_hex)
    assert zip_path is not None and zip_path.read_bytes() == CODE
    second.close()


def test_schema_is_versioned(config: ServerConfig) -> None:
    Store(config).close()
    with sqlite3.connect(config.db_path) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    Store(config).close()  # reopening migrates nothing and keeps working


def test_aws_timestamp() -> None:
    assert aws_timestamp(0) == "1970-01-01T00:00:00.000+0000"
    assert aws_timestamp(1574364732.5) == "2019-11-21T19:32:12.500+0000"


async def test_function_records_are_cached_until_a_write(store: Store) -> None:
    code = await store.put_code(CODE)
    store.create_function(spec(), code)
    store.settle("fn")
    first = store.get_function("fn")
    assert store.get_function("fn") is first  # served from the cache
    upd = store.update_function_configuration("fn", FunctionPatch(timeout_s=7))
    assert store.get_function("fn") is not first
    assert store.get_function("fn").timeout_s == 7 == upd.timeout_s
    store.settle("fn")
    # a failed write (rolled back) leaves nothing stale behind either
    cached = store.get_function("fn")
    with pytest.raises(PreconditionFailedException):
        store.update_function_configuration("fn", FunctionPatch(timeout_s=9), revision_id="x")
    assert store.get_function("fn") == cached and store.get_function("fn").timeout_s == 7
    store.delete_function("fn")
    with pytest.raises(ResourceNotFoundException):
        store.get_function("fn")
