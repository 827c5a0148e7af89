"""The pool's rules on the fake sandbox backend: which environment serves an invoke,
and when environments go away (warm reuse, cold starts, idle spin-down, retirement,
provisioned environments, concurrency limits, broken environments).  Time is a
``FakeClock``: the 300 s idle timeout passes when a test advances it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from pathlib import Path

import pytest

from lambdalet.control.concurrency import ConcurrencyLimits
from lambdalet.control.pool import Pool, PoolSettings
from lambdalet.env.environment import Environment, EnvSettings
from lambdalet.env.lifecycle import EnvState
from lambdalet.errors import ServiceException, TooManyRequestsException
from lambdalet.fake_clock import FakeClock
from lambdalet.model import FunctionRecord, InvokeInput, InvokeOutput
from lambdalet.sandbox.base import SandboxError
from tests.fakes.clock import run_out
from tests.fakes.records import function_record
from tests.fakes.sandbox import (
    FakeBackend,
    FakeLauncher,
    FakeProcess,
    answering,
    exits_in_invoke,
    reports_init_error,
)

#: time is fake: a test that waits for it without advancing it would hang, so fail fast
pytestmark = pytest.mark.timeout(30)


class Rig:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.backend = FakeBackend(root / "sandboxes", runtime=answering())
        self.launcher = FakeLauncher()
        self.clock = FakeClock()
        self.settings = PoolSettings(
            idle_timeout_s=300.0, env=EnvSettings(init_timeout_s=10.0, freeze_delay_s=0.0)
        )
        self.limits: ConcurrencyLimits | None = None
        self.fn = function_record(root)
        self._pool: Pool | None = None
        self._ids = 0

    @property
    def pool(self) -> Pool:
        if self._pool is None:
            self._pool = Pool(
                backend=self.backend,
                launcher=self.launcher,
                clock=self.clock,
                logs_dir=self.root / "logs",
                settings=self.settings,
                limits=self.limits,
            )
        return self._pool

    async def invoke(
        self, fn: FunctionRecord | None = None, payload: bytes = b"{}"
    ) -> tuple[Environment, InvokeOutput]:
        """One invoke through the pool, as the invoker does it; returns once it settled."""
        fn = fn or self.fn
        self._ids += 1
        env = await self.pool.acquire(fn)
        done = env.invocations + 1
        out = await env.invoke(InvokeInput(fn, fn.arn, f"req-{self._ids}", payload))
        await until(lambda: env.invocations >= done)
        return env, out

    def live(self) -> list[Environment]:
        return list(self.pool.environments())


async def until(cond: Callable[[], bool], turns: int = 100_000) -> None:
    """Let the loop run (I/O included) until ``cond`` holds."""
    for _ in range(turns):
        if cond():
            return
        await asyncio.sleep(0)
    raise AssertionError("condition never held")


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    r = Rig(tmp_path)
    yield r
    await run_out(r.clock, asyncio.ensure_future(r.pool.close()))


async def test_a_settled_environment_is_reused_warm(rig: Rig) -> None:
    first, out = await rig.invoke()
    assert out.payload == b"{}"
    second, _ = await rig.invoke()
    assert second is first
    assert len(rig.backend.sandboxes) == 1 and first.invocations == 2
    assert rig.pool.busy == 0


async def test_concurrent_invokes_get_separate_cold_environments(rig: Rig) -> None:
    a = await rig.pool.acquire(rig.fn)
    b = await rig.pool.acquire(rig.fn)  # a is busy: a cold start
    assert a is not b and len(rig.backend.sandboxes) == 2
    assert rig.pool.busy == 2
    await asyncio.gather(
        *(e.invoke(InvokeInput(rig.fn, rig.fn.arn, f"r{i}", b"1")) for i, e in enumerate((a, b)))
    )
    await until(lambda: rig.pool.busy == 0)
    # both are warm now: the most recently settled serves first
    c, _ = await rig.invoke()
    assert c in (a, b) and len(rig.backend.sandboxes) == 2


async def test_an_idle_environment_spins_down_after_the_idle_timeout(rig: Rig) -> None:
    env, _ = await rig.invoke()
    sandbox = rig.backend.sandboxes[0]
    await rig.clock.advance(299.999)
    assert rig.live() == [env] and env.state is EnvState.IDLE
    await rig.clock.advance(0.001)
    await sandbox.wait_op("destroy")
    await until(lambda: not rig.live())
    assert env.state is EnvState.DEAD and list(rig.pool.ended) == [env]
    again, _ = await rig.invoke()
    assert again is not env and len(rig.backend.sandboxes) == 2


async def test_a_busy_environment_is_not_spun_down(rig: Rig) -> None:
    rig.fn = function_record(rig.root, timeout_s=900)
    release = asyncio.Event()

    async def slow(p: FakeProcess) -> int:
        while True:
            inv = await p.next()
            p.mark("working")
            await release.wait()
            await p.respond(inv.request_id, b"done")

    rig.backend.runtime = slow
    env = await rig.pool.acquire(rig.fn)
    call = asyncio.create_task(env.invoke(InvokeInput(rig.fn, rig.fn.arn, "r", b"")))
    await rig.backend.reached("working")
    await rig.clock.advance(600)  # two idle timeouts pass while it works
    assert env.state is EnvState.INVOKING and rig.backend.sandboxes[0].count("destroy") == 0
    release.set()
    assert (await call).payload == b"done"


async def test_retire_stops_idle_environments_and_busy_ones_when_they_settle(rig: Rig) -> None:
    idle, _ = await rig.invoke()
    await rig.pool.retire(rig.fn.name, rig.fn.version)
    assert idle.state is EnvState.DEAD and not rig.live()
    # a busy one (and no idle one) when its function is retired: it goes when it settles
    other_fn = function_record(rig.root, name="other")
    busy = await rig.pool.acquire(other_fn)
    await rig.pool.retire(other_fn.name)
    assert busy.state is EnvState.IDLE
    await busy.invoke(InvokeInput(other_fn, other_fn.arn, "r-b", b""))
    await until(lambda: busy.state is EnvState.DEAD)
    assert not rig.live()


async def test_a_new_revision_does_not_reuse_the_old_ones_environments(rig: Rig) -> None:
    old, _ = await rig.invoke()
    new_fn = replace(rig.fn, revision_id="r2")
    new, _ = await rig.invoke(new_fn)
    assert new is not old and new.function.revision_id == "r2"


async def test_the_concurrency_limit_throttles_on_demand_invokes(rig: Rig) -> None:
    rig.limits = ConcurrencyLimits(1, min_unreserved=0)
    env = await rig.pool.acquire(rig.fn)
    with pytest.raises(TooManyRequestsException):
        await rig.pool.acquire(rig.fn)
    assert len(rig.backend.sandboxes) == 1
    await env.invoke(InvokeInput(rig.fn, rig.fn.arn, "r", b""))
    await until(lambda: rig.pool.busy == 0)
    assert rig.limits.busy(rig.fn.name) == 0
    assert await rig.pool.acquire(rig.fn) is env


async def test_a_crashed_environment_is_reused_and_re_inits(rig: Rig) -> None:
    rig.backend.runtime = exits_in_invoke(1)
    env, out = await rig.invoke()
    assert out.function_error == "Unhandled" and env.state is EnvState.NEEDS_INIT
    rig.backend.runtime = answering()
    again, out = await rig.invoke()
    # the reset environment (sandbox and /tmp kept) takes the next invoke, Init inside it
    assert again is env and out.function_error is None
    assert len(rig.backend.sandboxes) == 1


async def test_a_sandbox_that_cannot_be_built_is_a_service_error(rig: Rig) -> None:
    rig.backend.fail_next_create = SandboxError("no cgroup")
    with pytest.raises(ServiceException, match="no cgroup"):
        await rig.pool.acquire(rig.fn)
    assert not rig.live() and rig.pool.busy == 0
    _, out = await rig.invoke()
    assert out.function_error is None


async def test_provisioned_environments_init_ahead_and_serve_first(rig: Rig) -> None:
    result = await rig.pool.provision("fn:$LATEST", rig.fn, 2)
    assert result.ready == 2 and result.failure is None
    assert rig.launcher.plans == ["provisioned-concurrency"] * 2
    provisioned = set(rig.live())
    env, _ = await rig.invoke()
    assert env in provisioned and rig.pool.provisioned_ready("fn:$LATEST") == 2
    await rig.pool.unprovision("fn:$LATEST")
    assert not rig.live()


async def test_a_failed_provisioned_environment_is_replaced(rig: Rig) -> None:
    async def crashes_when_told(p: FakeProcess) -> int:
        while True:
            inv = await p.next()
            if inv.payload == b"crash":
                return 1
            await p.respond(inv.request_id, b"ok")

    rig.backend.runtime = crashes_when_told
    await rig.pool.provision("fn:$LATEST", rig.fn, 1)
    (first,) = rig.live()
    env, out = await rig.invoke(payload=b"crash")
    assert env is first and out.function_error == "Unhandled"
    await until(lambda: rig.pool.provisioned_ready("fn:$LATEST") == 1 and first not in rig.live())
    (replacement,) = rig.live()
    assert replacement is not first and replacement.state is EnvState.IDLE
    assert rig.launcher.plans.count("provisioned-concurrency") == 2


async def test_a_provisioned_init_failure_is_reported(rig: Rig) -> None:
    rig.backend.runtime = reports_init_error()
    result = await rig.pool.provision("fn:$LATEST", rig.fn, 1)
    assert result.ready == 0
    assert result.failure is not None and result.failure.startswith("FUNCTION_ERROR_INIT_FAILURE")


async def test_close_shuts_every_environment_down(rig: Rig) -> None:
    a = await rig.pool.acquire(rig.fn)
    b, _ = await rig.invoke()
    await rig.pool.close()
    assert a.state is EnvState.DEAD and b.state is EnvState.DEAD
    assert all(sb.destroyed for sb in rig.backend.sandboxes)
    with pytest.raises(ServiceException):
        await rig.pool.acquire(rig.fn)
