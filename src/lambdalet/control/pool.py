"""Execution environments per function version: warm reuse, cold creation, spin-down.

The pool decides *which* environment serves an invoke and when idle ones go
away; what happens inside an environment is ``env.environment``'s business.
An environment serves one invoke at a time; concurrent invokes of a function
get separate environments; a settled environment (idle, or reset and waiting
for its suppressed init) goes back to the warm list of its function revision.

Provisioned environments (per provisioned-concurrency config) are started ahead
of time with ``AWS_LAMBDA_INITIALIZATION_TYPE=provisioned-concurrency`` and no
10 s Init cap, are never spun down for idleness, are replaced when one fails,
and serve invokes of their version first; overflow runs on demand, counted
against the concurrency limits (``control.concurrency``).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections import Counter, defaultdict, deque
from collections.abc import Callable, Coroutine, Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path

from lambdalet.clock import Clock, Handle
from lambdalet.control.concurrency import ConcurrencyLimits
from lambdalet.env.debug import DEBUG_TIMEOUT_S, port_setting
from lambdalet.env.environment import Environment, EnvSettings, env_id_for
from lambdalet.env.launch import Launcher
from lambdalet.env.lifecycle import EnvState
from lambdalet.env.log_files import FunctionLog, LogLimits, remove_logs
from lambdalet.env.observer import EnvObserver
from lambdalet.errors import ServiceException, is_disk_full
from lambdalet.model import FunctionRecord, ProvisionResult
from lambdalet.sandbox.base import SandboxBackend, SandboxError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PoolSettings:
    idle_timeout_s: float = 300.0
    account_concurrency: int = 1000
    env: EnvSettings = field(default_factory=EnvSettings)
    log_limits: LogLimits = field(default_factory=LogLimits)


#: how many shut-down environments the admin API still shows
ENDED_KEPT = 20
#: how long an invoke waits for an environment that answered and is about to be free
FINISHING_WAIT_S = 0.05

_Key = tuple[str, str, str]  # function name, version, revision id

#: Init limit of provisioned environments: max(130 s, function timeout) (contract §4.1).
PC_MIN_INIT_TIMEOUT_S = 130.0
PC_INIT_TYPE = "provisioned-concurrency"


def _key(fn: FunctionRecord) -> _Key:
    return (fn.name, fn.version, fn.revision_id)


@dataclass
class _Provisioned:
    """The environments of one provisioned-concurrency config."""

    config_key: str  # "name:qualifier"
    function: FunctionRecord
    target: int
    idle: list[Environment] = field(default_factory=list)
    members: set[str] = field(default_factory=set)  # env ids, idle or busy


class Pool:
    def __init__(
        self,
        *,
        backend: SandboxBackend,
        launcher: Launcher,
        clock: Clock,
        logs_dir: Path,
        settings: PoolSettings,
        limits: ConcurrencyLimits | None = None,
    ) -> None:
        self._backend = backend
        self.limits = limits or ConcurrencyLimits(settings.account_concurrency)
        self._launcher = launcher
        self._clock = clock
        self._logs_dir = logs_dir
        self._settings = settings
        self._idle: dict[_Key, list[Environment]] = defaultdict(list)
        #: told about every Init and REPORT (metrics); set by the composition root
        self.observer: EnvObserver | None = None
        #: the last environments that were shut down, newest first (for the dashboard)
        self.ended: deque[Environment] = deque(maxlen=ENDED_KEPT)
        #: acquirers waiting for an environment of this key that has answered to settle
        self._settle_waiters: dict[_Key, asyncio.Event] = {}
        self._all: dict[str, Environment] = {}
        self._busy = 0
        self._logs: dict[str, FunctionLog] = {}
        self._idle_timers: dict[str, Handle] = {}
        self._retired: set[_Key] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._closing = False
        #: config key → its provisioned environments; env id → config key
        self._provisioned: dict[str, _Provisioned] = {}
        self._pc_of: dict[str, str] = {}
        #: env ids of busy on-demand executions (counted in ``limits``)
        self._on_demand: set[str] = set()
        #: code folders of functions between ``acquire`` and their environment's creation
        self._acquiring: Counter[Path] = Counter()
        #: called whenever an environment is gone (its code may no longer be in use)
        self.on_env_gone: Callable[[], None] | None = None
        #: function name -> port: its next environment waits for a debugger there
        self._debug_next: dict[str, int] = {}
        #: environments stopped after their one invoke (a requested debugging session)
        self._one_shot: set[str] = set()

    # ------------------------------------------------------------------ queries

    def environments(self) -> Iterable[Environment]:
        return list(self._all.values())

    @property
    def busy(self) -> int:
        return self._busy

    def function_log(self, name: str) -> FunctionLog:
        flog = self._logs.get(name)
        if flog is None:
            flog = FunctionLog(self._logs_dir, name, self._settings.log_limits)
            self._logs[name] = flog
        return flog

    def code_in_use(self) -> set[Path]:
        """Code and layer folders that live (or starting) environments run from: the store's
        garbage collection must leave them until those environments are gone."""
        out = {p for p, n in self._acquiring.items() if n > 0}
        for env in self._all.values():
            out.add(env.function.code_dir)
            out.update(ref.code_dir for ref in env.function.layers)
        return out

    # ------------------------------------------------------------------ acquire / release

    async def acquire(self, fn: FunctionRecord) -> Environment:
        """A provisioned environment of this version, else a warm one, else a cold start.

        On-demand executions count against the concurrency limits: over them, 429.
        """
        if self._closing:
            raise ServiceException("The server is shutting down.")
        dirs = [fn.code_dir, *(ref.code_dir for ref in fn.layers)]
        self._acquiring.update(dirs)
        try:
            return await self._acquire(fn)
        finally:
            self._acquiring.subtract(dirs)
            self._acquiring = +self._acquiring

    async def _acquire(self, fn: FunctionRecord) -> Environment:
        await self._await_finishing(fn)
        for group in self._provisioned.values():
            if _key(group.function) == _key(fn):
                while group.idle:
                    env = group.idle.pop()
                    if env.state in (EnvState.IDLE, EnvState.NEEDS_INIT):
                        self._busy += 1
                        return env
        self.limits.take(fn.name)
        try:
            env = await self._on_demand_env(fn)
        except BaseException:
            self.limits.give(fn.name)
            raise
        self._on_demand.add(env.env_id)
        return env

    async def _on_demand_env(self, fn: FunctionRecord) -> Environment:
        requested = self._debug_next.pop(fn.name, None)
        warm = self._idle.get(_key(fn)) if requested is None else None
        while warm:
            env = warm.pop()  # most recently used first: warmest caches
            self._cancel_idle_timer(env)
            if env.state in (EnvState.IDLE, EnvState.NEEDS_INIT):
                self._busy += 1
                return env
        port = requested if requested is not None else port_setting(fn.environment)
        settings = self._settings.env
        if port is not None:
            settings = replace(settings, debug_port=port, init_timeout_s=DEBUG_TIMEOUT_S)
        self._busy += 1
        try:
            env = await self._new_env(fn, settings)
        except BaseException:
            self._busy -= 1
            raise
        if requested is not None:
            self._one_shot.add(env.env_id)
        return env

    def request_debug(self, function_name: str, port: int) -> None:
        """The function's next invoke starts a new environment whose runtime waits for a
        debugger on ``port`` (env/debug.py); it is stopped after that invoke."""
        self._debug_next[function_name] = port
        for key in list(self._idle):
            if key[0] == function_name:
                for env in self._idle.pop(key):
                    self._stop(env, "spindown")

    async def _new_env(self, fn: FunctionRecord, settings: EnvSettings) -> Environment:
        env = Environment(
            env_id=env_id_for(fn.name),
            function=fn,
            backend=self._backend,
            launcher=self._launcher,
            function_log=self.function_log(fn.name),
            clock=self._clock,
            settings=settings,
            on_settled=self._settled,
            observer=self.observer,
        )
        self._all[env.env_id] = env
        try:
            await env.start()
        except SandboxError as e:
            self._all.pop(env.env_id, None)
            log.error("could not build a sandbox for %s: %s", fn.name, e)
            reason = str(e)
            if is_disk_full(e) and "no space left on the data disk" not in reason:
                reason = f"no space left on the data disk ({reason})"
            raise ServiceException(f"Could not create the execution environment: {reason}") from e
        except BaseException:
            self._all.pop(env.env_id, None)
            self._spawn(env.shutdown("failure"))
            raise
        return env

    def _has_idle(self, key: _Key) -> bool:
        if self._idle.get(key):
            return True
        return any(g.idle and _key(g.function) == key for g in self._provisioned.values())

    async def _await_finishing(self, fn: FunctionRecord) -> None:
        """With no idle environment, wait briefly for one that has already answered.

        An environment stays busy from its runtime's answer until the runtime's
        next ``next``, usually well under a millisecond later: a caller that sends
        its next invoke at once would otherwise pay a cold start for that gap.
        Environments whose extensions are still working after the answer are not
        waited for.
        """
        key = _key(fn)
        if self._has_idle(key):
            return
        finishing = any(
            e.state is EnvState.RESPONDED
            and _key(e.function) == key
            and not e.extensions.registered()
            for e in self._all.values()
        )
        if not finishing:
            return
        event = self._settle_waiters.setdefault(key, asyncio.Event())
        with contextlib.suppress(TimeoutError):
            async with self._clock.timeout(FINISHING_WAIT_S):
                await event.wait()

    def _wake(self, key: _Key) -> None:
        event = self._settle_waiters.pop(key, None)
        if event is not None:
            event.set()

    def _settled(self, env: Environment) -> None:
        """Called by an environment when its invoke phase is over."""
        try:
            self._settle(env)
        finally:
            self._wake(_key(env.function))

    def _settle(self, env: Environment) -> None:
        self._busy -= 1
        if env.env_id in self._on_demand:
            self._on_demand.discard(env.env_id)
            self.limits.give(env.function.name)
        pc = self._pc_of.get(env.env_id)
        if pc is not None:
            self._settled_provisioned(env, pc)
            return
        key = _key(env.function)
        if (
            self._closing
            or key in self._retired
            or env.env_id in self._one_shot
            or env.state not in (EnvState.IDLE, EnvState.NEEDS_INIT)
        ):
            self._one_shot.discard(env.env_id)
            self._stop(env, "spindown")
            return
        self._idle[key].append(env)
        self._idle_timers[env.env_id] = self._clock.call_later(
            self._settings.idle_timeout_s, functools.partial(self._idle_expired, env)
        )

    # ------------------------------------------------------------------ spin-down

    def _idle_expired(self, env: Environment) -> None:
        self._idle_timers.pop(env.env_id, None)
        warm = self._idle.get(_key(env.function))
        if warm and env in warm:
            warm.remove(env)
            self._stop(env, "spindown")

    def _cancel_idle_timer(self, env: Environment) -> None:
        timer = self._idle_timers.pop(env.env_id, None)
        if timer is not None:
            timer.cancel()

    def _stop(self, env: Environment, reason: str) -> asyncio.Future[None]:
        self._cancel_idle_timer(env)
        return self._spawn(self._shutdown(env, reason))

    async def _shutdown(self, env: Environment, reason: str) -> None:
        try:
            await env.shutdown(reason)
        finally:
            self._all.pop(env.env_id, None)
            self.ended.appendleft(env)
            self._env_gone()

    def _env_gone(self) -> None:
        if self.on_env_gone is not None:
            try:
                self.on_env_gone()
            except Exception:
                log.exception("after an environment ended")

    def _spawn(self, coro: Coroutine[object, object, None]) -> asyncio.Future[None]:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def retire(self, function_name: str, version: str | None = None) -> None:
        """Stop every idle on-demand environment of a function (of one version if given);
        busy ones stop when they settle.  Provisioned ones go with ``unprovision``.

        Without a version the function is gone: its log files go too (what its busy
        environments still print is dropped)."""

        def matches(fn: FunctionRecord) -> bool:
            return fn.name == function_name and version in (None, fn.version)

        for key in list(self._idle):
            if key[0] == function_name and version in (None, key[1]):
                self._retired.add(key)
                for env in self._idle.pop(key):
                    self._stop(env, "spindown")
        for env in self._all.values():
            if matches(env.function) and env.env_id not in self._pc_of:
                self._retired.add(_key(env.function))
        if version is None:
            for config_key in [k for k, g in self._provisioned.items() if matches(g.function)]:
                self._drop_provisioned(config_key)
            flog = self._logs.pop(function_name, None)
            if flog is not None:
                flog.close()
            remove_logs(self._logs_dir, function_name)
        await self._drain()

    # ------------------------------------------------------------------ provisioned

    async def provision(self, config_key: str, fn: FunctionRecord, count: int) -> ProvisionResult:
        """Keep ``count`` initialized environments of ``fn`` for ``config_key``.

        Returns once the new ones have run their Init phase: how many are ready.
        """
        group = self._provisioned.get(config_key)
        if group is not None and _key(group.function) != _key(fn):
            self._drop_provisioned(config_key)
            group = None
        if group is None:
            group = _Provisioned(config_key, fn, count)
            self._provisioned[config_key] = group
        group.target = count
        log.debug("provision %s: %d of %s", config_key, count, fn.qualified_arn)
        while len(group.members) > count and group.idle:
            self._leave_group(group.idle.pop(), "spindown")
        missing = count - len(group.members)
        results = await asyncio.gather(
            *(self._add_provisioned(group) for _ in range(max(0, missing))),
            return_exceptions=True,
        )
        failures = [r for r in results if r is not True]
        for r in failures:
            if isinstance(r, BaseException):
                log.error("provisioning %s failed: %s", config_key, r)
        if self._provisioned.get(config_key) is not group:
            return ProvisionResult(0, "The provisioned concurrency configuration was removed.")
        ready = sum(
            1
            for env_id in group.members
            if (env := self._all.get(env_id)) is not None and env.state is not EnvState.NEEDS_INIT
        )
        reason = None
        if failures:
            reason = "FUNCTION_ERROR_INIT_FAILURE: the function's Init phase failed."
        return ProvisionResult(ready, reason)

    async def _add_provisioned(self, group: _Provisioned) -> bool:
        fn = group.function
        settings = replace(
            self._settings.env,
            init_type=PC_INIT_TYPE,
            init_timeout_s=max(PC_MIN_INIT_TIMEOUT_S, float(fn.timeout_s)),
        )
        # its Init is billed apart: the environment leaves Init Duration off its REPORTs
        env = await self._new_env(fn, settings)
        if self._provisioned.get(group.config_key) is not group or self._closing:
            self._all.pop(env.env_id, None)
            self._spawn(env.shutdown("spindown"))
            return False
        group.members.add(env.env_id)
        self._pc_of[env.env_id] = group.config_key
        group.idle.append(env)
        return env.state is EnvState.IDLE

    def _settled_provisioned(self, env: Environment, config_key: str) -> None:
        group = self._provisioned.get(config_key)
        if group is None or self._closing:
            self._pc_of.pop(env.env_id, None)
            self._stop(env, "spindown")
            return
        if env.state is EnvState.IDLE and len(group.members) <= group.target:
            group.idle.append(env)
            return
        # failed (reset) or surplus: replace it with a fresh, fully initialized one
        self._leave_group(env, "spindown")
        if len(group.members) < group.target:
            self._spawn(self._replace_provisioned(group))

    async def _replace_provisioned(self, group: _Provisioned) -> None:
        try:
            await self._add_provisioned(group)
        except Exception:
            log.exception("replacing a provisioned environment of %s", group.config_key)

    def _leave_group(self, env: Environment, reason: str) -> None:
        pc = self._pc_of.pop(env.env_id, None)
        group = self._provisioned.get(pc) if pc is not None else None
        if group is not None:
            group.members.discard(env.env_id)
            if env in group.idle:
                group.idle.remove(env)
        self._stop(env, reason)

    def _drop_provisioned(self, config_key: str) -> list[asyncio.Future[None]]:
        """Forget a config and stop its idle environments (the shutdowns are returned).
        Busy members stop when they settle (their config is gone)."""
        group = self._provisioned.pop(config_key, None)
        if group is None:
            return []
        stopping = []
        for env in group.idle:
            self._pc_of.pop(env.env_id, None)
            stopping.append(self._stop(env, "spindown"))
        return stopping

    async def unprovision(self, config_key: str) -> None:
        """Stop a config's idle environments and wait for exactly those shutdowns."""
        log.debug("unprovision %s", config_key)
        await asyncio.gather(*self._drop_provisioned(config_key), return_exceptions=True)

    def provisioned_ready(self, config_key: str) -> int:
        group = self._provisioned.get(config_key)
        if group is None:
            return 0
        return sum(
            1
            for env_id in group.members
            if (env := self._all.get(env_id)) is not None and env.state is not EnvState.NEEDS_INIT
        )

    async def _drain(self) -> None:
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def close(self) -> None:
        """Shut every environment down and wait until all are gone."""
        self._closing = True
        for timer in self._idle_timers.values():
            timer.cancel()
        self._idle_timers.clear()
        self._idle.clear()
        self._provisioned.clear()
        self._pc_of.clear()
        envs = list(self._all.values())
        await asyncio.gather(*(self._shutdown(e, "spindown") for e in envs), return_exceptions=True)
        await self._drain()
        for flog in self._logs.values():
            with contextlib.suppress(OSError):
                flog.close()
        self._logs.clear()
