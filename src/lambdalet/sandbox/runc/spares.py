"""Spare sandboxes: built and running before any function needs them, so that a cold
start only attaches the function (mounts and cgroup limits) to one of them.

:class:`LikelyRuntime` is what spares prepare for (the latest runtime's directories and
start-up environment); :class:`SparePool` keeps the wanted number of spares built.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from pathlib import Path

from ..base import PRESTART_ENV_KEYS, SandboxError, SandboxSpec
from .oci import lang_source
from .sandbox import RuncSandbox

logger = logging.getLogger(__name__)

#: the memory limit of a spare until create() gives it the function's (Lambda's maximum)
SPARE_MEMORY_MB = 10240
SPARE_EPHEMERAL_MB = 512
#: seconds between taking a spare and starting to build its replacement
REFILL_DELAY_S = 0.1
#: failed builds in a row after which a refill gives up (until the next one is asked)
MAX_FAILURES = 3


def spare_spec(spare_id: str, envs_dir: Path, ephemeral_mb: int) -> SandboxSpec:
    """A spare's own spec: no function's directories (the attach points stand in)."""
    return SandboxSpec(
        env_id=spare_id,
        memory_mb=SPARE_MEMORY_MB,
        ephemeral_mb=ephemeral_mb,
        code_dir=envs_dir,  # not mounted: the attach points stand in
        layer_dirs=(),
        runtime_dir=None,
        lang_dir=None,
    )


class LikelyRuntime:
    """The runtime and language dirs of the latest sandbox, and the start-up part of its
    environment: what spares mount and pre-start in advance."""

    def __init__(self, default_lang: Path) -> None:
        self.mounts: dict[str, str | None] = {"runtime": None, "lang": str(default_lang)}
        self.env: dict[str, str] | None = None

    @property
    def known(self) -> bool:
        """A function (or the server's start-up guess) said which runtime."""
        return self.mounts["runtime"] is not None

    def learn_dirs(
        self, runtime_dir: Path | None, lang_dir: Path | None, lang_layers: Sequence[Path] = ()
    ) -> None:
        if runtime_dir is not None:
            self.mounts["runtime"] = str(runtime_dir.resolve())
        if lang_dir is not None:
            self.mounts["lang"] = lang_source(lang_dir, lang_layers)

    def learn_env(self, env: Mapping[str, str]) -> bool:
        """Remember the start-up variables of ``env``; True when they changed."""
        learned = {k: env[k] for k in PRESTART_ENV_KEYS if k in env}
        if learned == self.env:
            return False
        self.env = learned
        return True


class SparePool:
    """Keeps ``wanted`` spares built; ``build`` makes one (and cleans up if it fails)."""

    def __init__(self, wanted: int, build: Callable[[], Awaitable[RuncSandbox]]) -> None:
        self.wanted = wanted
        self._build = build
        self._spares: list[RuncSandbox] = []
        self._refill_task: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.closing = False

    def __len__(self) -> int:
        return len(self._spares)

    def __iter__(self) -> Iterator[RuncSandbox]:
        return iter(self._spares)

    def holds(self, sb: RuncSandbox) -> bool:
        return sb in self._spares

    def discard(self, sb: RuncSandbox) -> None:
        if sb in self._spares:
            self._spares.remove(sb)

    def take(self, spec: SandboxSpec) -> RuncSandbox | None:
        """A waiting spare that can become a sandbox of ``spec``, no longer waiting."""
        for i, sb in enumerate(self._spares):
            if sb.fits(spec):
                del self._spares[i]
                return sb
        return None

    def prepare_all(self) -> None:
        """The likely runtime changed: every waiting spare mounts and pre-starts it."""
        for sb in self._spares:
            task = asyncio.get_running_loop().create_task(sb.prepare_likely())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    def refill(self, delay_s: float = 0.0) -> None:
        if self.closing or self.wanted <= 0:
            return
        if self._refill_task is None or self._refill_task.done():
            self._refill_task = asyncio.get_running_loop().create_task(self._refill_loop(delay_s))

    async def _refill_loop(self, delay_s: float = 0.0) -> None:
        if delay_s > 0:
            await asyncio.sleep(delay_s)
        failures = 0
        while not self.closing and len(self._spares) < self.wanted and failures < MAX_FAILURES:
            try:
                sb = await self._build()
            except Exception as e:  # a spare is an optimisation: log, retry a little
                failures += 1
                logger.warning("building a spare sandbox failed: %s", e)
                continue
            if self.closing:
                with contextlib.suppress(Exception):
                    await sb.destroy()
                return
            self._spares.append(sb)

    async def wait(self, timeout_s: float = 30.0) -> None:
        """Wait until the wanted number of spares is ready (tests, the benchmark)."""
        self.refill()
        deadline = asyncio.get_running_loop().time() + timeout_s
        while len(self._spares) < self.wanted:
            if asyncio.get_running_loop().time() > deadline:
                raise SandboxError("spare sandboxes were not built in time")
            await asyncio.sleep(0.01)

    async def close(self) -> list[RuncSandbox]:
        """Stop refilling; the spares that were waiting, for the caller to destroy."""
        self.closing = True
        if self._refill_task is not None:
            # not cancelled: the spare being built is finished, then destroyed, by the loop
            with contextlib.suppress(Exception):
                await self._refill_task
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        spares, self._spares = self._spares, []
        return spares
