"""Versions, aliases and their routing weights in the SQLite store (tmp data dir)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from lambdalet.errors import (
    InvalidParameterValueException,
    PreconditionFailedException,
    ResourceConflictException,
    ResourceNotFoundException,
)
from lambdalet.store import Store
from lambdalet.store.records import AliasPatch, AliasRecord, AliasSpec, pick_version
from tests.unit.store.helpers import ARN, ManualClock, add_function, new_code, open_store


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = open_store(tmp_path, ManualClock())
    yield s
    s.close()


async def test_publish_freezes_latest_and_is_idempotent_while_unchanged(store: Store) -> None:
    latest = await add_function(store)
    v1 = store.publish_version("fn", description="first")
    assert (v1.version, v1.qualified_arn) == ("1", f"{ARN}:fn:1")
    assert v1.code_sha256 == latest.code_sha256 and v1.description == "first"
    assert v1.revision_id != latest.revision_id
    # nothing changed since version 1: the same version, not a new one
    assert store.publish_version("fn").version == "1"
    await new_code(store, "fn", "two")
    v2 = store.publish_version("fn")
    assert v2.version == "2" and v2.code_sha256 != v1.code_sha256
    # version 1 is immutable: still the old code
    assert store.get_function("fn", "1").code_sha256 == v1.code_sha256


async def test_version_numbers_are_never_reused(store: Store) -> None:
    await add_function(store)
    store.publish_version("fn")
    await new_code(store, "fn", "two")
    store.publish_version("fn")
    store.delete_version("fn", "2")
    await new_code(store, "fn", "three")
    assert store.publish_version("fn").version == "3"
    with pytest.raises(ResourceNotFoundException, match=f"Function not found: {ARN}:fn:2"):
        store.get_function("fn", "2")


async def test_publish_preconditions(store: Store) -> None:
    latest = await add_function(store)
    with pytest.raises(InvalidParameterValueException, match=r"CodeSHA256 \(x\) is different"):
        store.publish_version("fn", code_sha256="x")
    with pytest.raises(PreconditionFailedException, match="Revision Id provided does not match"):
        store.publish_version("fn", revision_id="other")
    assert store.publish_version("fn", code_sha256=latest.code_sha256).version == "1"
    with pytest.raises(ResourceNotFoundException):
        store.publish_version("nope")
    # an update in progress: no version of a half-updated function
    blob = await store.put_code(b"PK\x05\x06" + b"\0" * 18)
    store.update_function_code("fn", blob)
    with pytest.raises(ResourceConflictException, match="An update is in progress"):
        store.publish_version("fn")


async def test_list_versions_pages_in_order(store: Store) -> None:
    await add_function(store)
    for code in ("a", "b", "c"):
        await new_code(store, "fn", code)
        store.publish_version("fn")
    page = store.list_versions("fn", None, 2)
    assert [r.version for r in page.items] == ["$LATEST", "1"] and page.next_after == "1"
    rest = store.list_versions("fn", page.next_after, 10)
    assert [r.version for r in rest.items] == ["2", "3"] and rest.next_after is None
    with pytest.raises(InvalidParameterValueException, match="Invalid marker"):
        store.list_versions("fn", "bogus", 2)
    everything = store.list_all_versions(None, 3)
    assert [(r.name, r.version) for r in everything.items] == [
        ("fn", "$LATEST"),
        ("fn", "1"),
        ("fn", "2"),
    ]
    assert [r.version for r in store.list_all_versions(everything.next_after, 9).items] == ["3"]


async def two_versions(store: Store) -> None:
    await add_function(store)
    store.publish_version("fn")
    await new_code(store, "fn", "two")
    store.publish_version("fn")


async def test_alias_crud_and_resolution(store: Store) -> None:
    await two_versions(store)
    alias = store.create_alias("fn", AliasSpec("live", "1", "d", {"2": 0.25}))
    assert alias.arn == f"{ARN}:fn:live" and alias.weights == {"2": 0.25}
    with pytest.raises(ResourceConflictException, match=f"Alias already exists: {ARN}:fn:live"):
        store.create_alias("fn", AliasSpec("live", "1"))
    with pytest.raises(ResourceNotFoundException):
        store.create_alias("fn", AliasSpec("x", "9"))
    with pytest.raises(ResourceNotFoundException):
        store.create_alias("fn", AliasSpec("x", "1", weights={"9": 0.5}))

    record, found = store.resolve("fn", "live")
    assert record.version == "1" and found == alias
    assert store.resolve("fn", "2") == (store.get_function("fn", "2"), None)
    assert store.resolve("fn", None)[0].version == "$LATEST"
    with pytest.raises(ResourceNotFoundException, match=f"Function not found: {ARN}:fn:gone"):
        store.resolve("fn", "gone")

    moved = store.update_alias("fn", "live", AliasPatch(function_version="2", weights={}))
    assert (moved.function_version, moved.weights) == ("2", {})
    assert moved.revision_id != alias.revision_id and moved.description == "d"
    with pytest.raises(PreconditionFailedException):
        store.update_alias("fn", "live", AliasPatch(revision_id=alias.revision_id))

    store.create_alias("fn", AliasSpec("beta", "1"))
    page = store.list_aliases("fn", function_version=None, after=None, limit=1)
    assert [a.name for a in page.items] == ["beta"] and page.next_after == "beta"
    assert [
        a.name for a in store.list_aliases("fn", function_version="2", after=None, limit=9).items
    ] == ["live"]
    store.delete_alias("fn", "beta")
    store.delete_alias("fn", "beta")  # idempotent
    with pytest.raises(ResourceNotFoundException, match=f"Alias not found: {ARN}:fn:beta"):
        store.get_alias("fn", "beta")


async def test_a_version_in_use_by_an_alias_cannot_be_deleted(store: Store) -> None:
    await two_versions(store)
    store.create_alias("fn", AliasSpec("live", "1", weights={"2": 0.5}))
    for version in ("1", "2"):
        with pytest.raises(ResourceConflictException, match=r"reference it: \[live\]"):
            store.delete_version("fn", version)
    store.delete_alias("fn", "live")
    store.delete_version("fn", "2")
    store.delete_function("fn")
    with pytest.raises(ResourceNotFoundException):
        store.get_alias("fn", "live")


def alias(weights: dict[str, float]) -> AliasRecord:
    return AliasRecord("fn", "live", f"{ARN}:fn:live", "1", "", weights, "rev")


@pytest.mark.parametrize(
    ("weights", "draw", "version"),
    [
        ({}, 0.0, "1"),
        ({}, 0.999, "1"),
        ({"2": 0.3}, 0.0, "2"),
        ({"2": 0.3}, 0.299, "2"),
        ({"2": 0.3}, 0.3, "1"),
        ({"2": 0.3}, 0.999, "1"),
        ({"2": 1.0}, 0.999, "2"),
        ({"2": 0.0}, 0.0, "1"),
    ],
)
def test_pick_version_follows_the_weights(
    weights: dict[str, float], draw: float, version: str
) -> None:
    assert pick_version(alias(weights), draw) == version


def test_pick_version_share_matches_the_weight() -> None:
    a = alias({"2": 0.2})
    draws = [i / 1000 for i in range(1000)]
    assert sum(pick_version(a, d) == "2" for d in draws) == 200


async def test_tags_and_reserved_concurrency(store: Store) -> None:
    await add_function(store)
    store.tag_function("fn", {"a": "1", "b": "2"})
    store.untag_function("fn", ["a", "zz"])
    assert store.get_function("fn").tags == {"b": "2"}
    with pytest.raises(InvalidParameterValueException, match="tag limit of 50"):
        store.tag_function("fn", {f"k{i}": "v" for i in range(50)})
    assert store.reserved_concurrency("fn") is None
    store.set_reserved_concurrency("fn", 5)
    assert store.reserved_concurrency("fn") == 5
    assert store.all_reserved_concurrency() == {"fn": 5}
    store.set_reserved_concurrency("fn", None)
    assert store.all_reserved_concurrency() == {}
    size, count = store.account_usage()
    assert count == 1 and size > 0
