"""Execution environments per function version: warm reuse, cold creation, spin-down.

The pool decides *which* environment serves an invoke and when idle ones go
away; what happens inside an environment is ``env.environment``'s business.
An environment serves one invoke at a time; concurrent invokes of a function
get separate environments; a settled environment (idle, or reset and waiting
for its suppressed init) goes back to the warm list of its function revision.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import defaultdict
from collections.abc import Coroutine, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from lambdalet.clock import Clock
from lambdalet.env.environment import Environment, EnvSettings, env_id_for
from lambdalet.env.launch import Launcher
from lambdalet.env.lifecycle import EnvState
from lambdalet.env.log_sink import FunctionLog, function_log_path
from lambdalet.errors import ServiceException, TooManyRequestsException
from lambdalet.model import FunctionRecord
from lambdalet.sandbox.base import SandboxBackend, SandboxError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PoolSettings:
    idle_timeout_s: float = 300.0
    account_concurrency: int = 1000
    env: EnvSettings = field(default_factory=EnvSettings)


_Key = tuple[str, str, str]  # function name, version, revision id


def _key(fn: FunctionRecord) -> _Key:
    return (fn.name, fn.version, fn.revision_id)


class Pool:
    def __init__(
        self,
        *,
        backend: SandboxBackend,
        launcher: Launcher,
        clock: Clock,
        logs_dir: Path,
        settings: PoolSettings,
    ) -> None:
        self._backend = backend
        self._launcher = launcher
        self._clock = clock
        self._logs_dir = logs_dir
        self._settings = settings
        self._idle: dict[_Key, list[Environment]] = defaultdict(list)
        self._all: dict[str, Environment] = {}
        self._busy = 0
        self._logs: dict[str, FunctionLog] = {}
        self._idle_timers: dict[str, asyncio.TimerHandle] = {}
        self._retired: set[_Key] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._closing = False

    # ------------------------------------------------------------------ queries

    def environments(self) -> Iterable[Environment]:
        return list(self._all.values())

    @property
    def busy(self) -> int:
        return self._busy

    def function_log(self, name: str) -> FunctionLog:
        flog = self._logs.get(name)
        if flog is None:
            flog = FunctionLog(function_log_path(self._logs_dir, name))
            self._logs[name] = flog
        return flog

    # ------------------------------------------------------------------ acquire / release

    async def acquire(self, fn: FunctionRecord) -> Environment:
        """A warm environment of this function revision, else a new one (cold start)."""
        if self._closing:
            raise ServiceException("The server is shutting down.")
        warm = self._idle.get(_key(fn))
        while warm:
            env = warm.pop()  # most recently used first: warmest caches
            self._cancel_idle_timer(env)
            if env.state in (EnvState.IDLE, EnvState.NEEDS_INIT):
                self._busy += 1
                return env
        if self._busy >= self._settings.account_concurrency:
            raise TooManyRequestsException("ConcurrentInvocationLimitExceeded")
        self._busy += 1
        env = Environment(
            env_id=env_id_for(fn.name),
            function=fn,
            backend=self._backend,
            launcher=self._launcher,
            function_log=self.function_log(fn.name),
            clock=self._clock,
            settings=self._settings.env,
            on_settled=self._settled,
        )
        self._all[env.env_id] = env
        try:
            await env.start()
        except SandboxError as e:
            self._busy -= 1
            self._all.pop(env.env_id, None)
            log.error("could not build a sandbox for %s: %s", fn.name, e)
            raise ServiceException(f"Could not create the execution environment: {e}") from e
        except BaseException:
            self._busy -= 1
            self._all.pop(env.env_id, None)
            self._spawn(env.shutdown("failure"))
            raise
        return env

    def _settled(self, env: Environment) -> None:
        """Called by an environment when its invoke phase is over."""
        self._busy -= 1
        key = _key(env.function)
        if (
            self._closing
            or key in self._retired
            or env.state not in (EnvState.IDLE, EnvState.NEEDS_INIT)
        ):
            self._stop(env, "spindown")
            return
        self._idle[key].append(env)
        self._idle_timers[env.env_id] = asyncio.get_running_loop().call_later(
            self._settings.idle_timeout_s, self._idle_expired, env
        )

    def release_unused(self, env: Environment) -> None:
        """Give back an environment that was acquired but not invoked."""
        self._settled(env)

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

    def _stop(self, env: Environment, reason: str) -> None:
        self._cancel_idle_timer(env)
        self._spawn(self._shutdown(env, reason))

    async def _shutdown(self, env: Environment, reason: str) -> None:
        try:
            await env.shutdown(reason)
        finally:
            self._all.pop(env.env_id, None)

    def _spawn(self, coro: Coroutine[object, object, None]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def retire(self, function_name: str) -> None:
        """Stop every idle environment of a function; busy ones stop when they settle."""
        for key in list(self._idle):
            if key[0] == function_name:
                self._retired.add(key)
                for env in self._idle.pop(key):
                    self._stop(env, "spindown")
        for env in self._all.values():
            if env.function.name == function_name:
                self._retired.add(_key(env.function))
        await self._drain()

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
        envs = list(self._all.values())
        await asyncio.gather(*(self._shutdown(e, "spindown") for e in envs), return_exceptions=True)
        await self._drain()
        for flog in self._logs.values():
            with contextlib.suppress(OSError):
                flog.close()
        self._logs.clear()
