"""Provisioned-concurrency status and the split of a weighted alias across its versions."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from lambdalet.control.concurrency import ConcurrencyLimits
from lambdalet.control.provisioned import (
    FAILED,
    IN_PROGRESS,
    READY,
    ProvisionedStatus,
    Provisioner,
    split_by_weight,
)
from lambdalet.errors import ResourceNotFoundException
from lambdalet.model import FunctionRecord, InvokeInput, InvokeOutput, ProvisionResult
from lambdalet.store import Store
from lambdalet.store.records import AliasPatch, AliasSpec, ProvisionedConfig
from tests.unit.store.helpers import ManualClock, add_function, new_code, open_store


class GatedInvoker:
    """Provisioning finishes when the test opens the gate; outcomes per version."""

    def __init__(self) -> None:
        self.gate = asyncio.Event()
        self.live: dict[str, tuple[str, int]] = {}  # pool key → (version, count)
        self.unprovisioned: list[str] = []
        self.fail: dict[str, ProvisionResult | Exception] = {}

    async def invoke(self, request: InvokeInput) -> InvokeOutput:
        raise AssertionError("not used")

    async def retire(self, function_name: str, version: str | None = None) -> None:
        return None

    async def provision(
        self, config_key: str, function: FunctionRecord, count: int
    ) -> ProvisionResult:
        self.live[config_key] = (function.version, count)
        await self.gate.wait()
        outcome = self.fail.get(function.version)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome or ProvisionResult(count)

    async def unprovision(self, config_key: str) -> None:
        self.unprovisioned.append(config_key)
        self.live.pop(config_key, None)


@pytest.mark.parametrize(
    ("requested", "weights", "shares"),
    [
        (4, {}, {"1": 4}),
        (4, {"2": 0.5}, {"1": 2, "2": 2}),
        (3, {"2": 0.5}, {"1": 2, "2": 1}),  # a tie: the primary version gets the odd one
        (10, {"2": 0.25}, {"1": 8, "2": 2}),  # 7.5 / 2.5
        (10, {"2": 0.26}, {"1": 7, "2": 3}),  # 7.4 / 2.6: largest remainder
        (1, {"2": 0.1}, {"1": 1}),  # a zero share is left out
        (5, {"2": 1.0}, {"2": 5}),
        (7, {"2": 0.3}, {"1": 5, "2": 2}),  # 4.9 / 2.1
    ],
)
def test_split_by_weight(requested: int, weights: dict[str, float], shares: dict[str, int]) -> None:
    got = split_by_weight(requested, "1", weights)
    assert got == shares and sum(got.values()) == requested


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    s = open_store(tmp_path, ManualClock())
    await add_function(s)
    s.publish_version("fn")
    await new_code(s, "fn", "two")
    s.publish_version("fn")
    yield s
    s.close()


async def settle(provisioner: Provisioner, invoker: GatedInvoker) -> None:
    invoker.gate.set()
    await provisioner.wait_idle()


async def test_in_progress_then_ready(store: Store) -> None:
    limits = ConcurrencyLimits(1000)
    invoker = GatedInvoker()
    p = Provisioner(store, invoker, limits)
    p.apply("fn", "1", 3)
    assert p.status("fn", "1", 3) == ProvisionedStatus(3, 0, IN_PROGRESS)
    assert limits.provisioned_total("fn") == 3 and limits.unreserved() == 997
    for _ in range(10):  # let the provisioning task reach the gate
        await asyncio.sleep(0)
    assert invoker.live == {"fn:1@1": ("1", 3)}
    assert p.status("fn", "1", 3).status == IN_PROGRESS
    await settle(p, invoker)
    assert p.status("fn", "1", 3) == ProvisionedStatus(3, 3, READY)
    # a different request than the one applied is still on its way
    assert p.status("fn", "1", 4).status == IN_PROGRESS
    await p.remove("fn", "1")
    assert invoker.unprovisioned == ["fn:1@1"] and invoker.live == {}
    assert limits.provisioned_total("fn") == 0
    assert p.status("fn", "1", 3).status == IN_PROGRESS  # unknown: as if just applied


@pytest.mark.parametrize(
    ("outcome", "reason", "allocated"),
    [
        (
            ProvisionResult(1, "FUNCTION_ERROR_INIT_FAILURE: the function's Init phase failed."),
            "FUNCTION_ERROR_INIT_FAILURE: the function's Init phase failed.",
            1,
        ),
        (ProvisionResult(1), "Not every environment could be initialized.", 1),
        (RuntimeError("no sandbox"), "no sandbox", 0),
    ],
)
async def test_failed_with_a_reason(
    store: Store, outcome: ProvisionResult | Exception, reason: str, allocated: int
) -> None:
    invoker = GatedInvoker()
    invoker.fail["1"] = outcome
    p = Provisioner(store, invoker, ConcurrencyLimits(1000))
    p.apply("fn", "1", 2)
    await settle(p, invoker)
    assert p.status("fn", "1", 2) == ProvisionedStatus(2, allocated, FAILED, reason)


async def test_weighted_alias_warms_both_versions_by_weight(store: Store) -> None:
    store.create_alias("fn", AliasSpec("live", "1", weights={"2": 0.25}))
    invoker = GatedInvoker()
    p = Provisioner(store, invoker, ConcurrencyLimits(1000))
    assert p.shares("fn", "live", 4) == {"1": 3, "2": 1}
    p.apply("fn", "live", 4)
    await settle(p, invoker)
    assert invoker.live == {"fn:live@1": ("1", 3), "fn:live@2": ("2", 1)}
    assert p.status("fn", "live", 4) == ProvisionedStatus(4, 4, READY)

    # one version's share failing fails the config, with what did come up
    invoker.gate = asyncio.Event()
    invoker.fail["2"] = ProvisionResult(0, "FUNCTION_ERROR_INIT_FAILURE: boom")
    p.apply("fn", "live", 4)
    await settle(p, invoker)
    assert p.status("fn", "live", 4) == ProvisionedStatus(
        4, 3, FAILED, "FUNCTION_ERROR_INIT_FAILURE: boom"
    )


async def test_alias_moves_and_stale_shares_are_unprovisioned(store: Store) -> None:
    store.create_alias("fn", AliasSpec("live", "1", weights={"2": 0.5}))
    invoker = GatedInvoker()
    invoker.gate.set()
    p = Provisioner(store, invoker, ConcurrencyLimits(1000))
    p.apply("fn", "live", 2)
    await p.wait_idle()
    assert set(invoker.live) == {"fn:live@1", "fn:live@2"}
    store.update_alias("fn", "live", AliasPatch(function_version="2", weights={}))
    p.apply("fn", "live", 2)
    await p.wait_idle()
    assert invoker.unprovisioned == ["fn:live@1"]
    assert invoker.live == {"fn:live@2": ("2", 2)}
    await p.forget_function("fn")
    assert invoker.live == {}


async def test_restore_provisions_stored_configs_and_skips_dangling_ones(store: Store) -> None:
    stamp = "2024-01-01T00:00:00.000+0000"
    store.put_provisioned_config(ProvisionedConfig("fn", "2", 1, stamp))
    store.put_provisioned_config(ProvisionedConfig("fn", "gone", 1, stamp))
    invoker = GatedInvoker()
    invoker.gate.set()
    p = Provisioner(store, invoker, ConcurrencyLimits(1000))
    p.restore()
    await p.wait_idle()
    assert invoker.live == {"fn:2@2": ("2", 1)}
    assert p.status("fn", "2", 1).status == READY
    with pytest.raises(ResourceNotFoundException):
        p.apply("fn", "gone", 1)
