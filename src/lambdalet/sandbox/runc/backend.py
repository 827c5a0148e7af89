"""The runc backend: makes runc sandboxes, keeps spares, and holds what they share."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from lambdalet.config import ServerConfig

from .. import cgroups, netns, peers, rootfs, seccomp
from ..base import (
    BackendInfo,
    Capability,
    ExitSink,
    LogSink,
    Sandbox,
    SandboxError,
    SandboxSpec,
    SandboxView,
)
from .agentfiles import agent_interpreter, install_agent
from .command import Runc
from .host import BuildSettings
from .mounts import ReadOnlyMounts, TmpImages
from .oci import SANDBOX_VIEW, instance_tag
from .sandbox import RuncSandbox
from .spares import (
    REFILL_DELAY_S,
    SPARE_EPHEMERAL_MB,
    LikelyRuntime,
    SparePool,
    spare_spec,
)
from .sweep import sweep

#: what every runc sandbox enforces, whatever the host (seccomp depends on it)
RUNC_CAPABILITIES = frozenset(Capability) - {Capability.SECCOMP}


def capabilities(seccomp_on: bool) -> frozenset[Capability]:
    """What runc sandboxes enforce on a host where the seccomp filter is (not) available."""
    return RUNC_CAPABILITIES | ({Capability.SECCOMP} if seccomp_on else set())


def protections(seccomp_note: str, host_network: bool) -> tuple[str, ...]:
    """What ``lambdalet doctor`` lists for runc sandboxes (docs/security.md)."""
    if not host_network:
        control = "control plane: unreachable (sandboxes have no host access)"
    elif netns.slirp_prefix() is not None:
        control = (
            "control plane: refused to sandboxes (host access runs as uid "
            f"{peers.HOST_ACCESS_UID}"
            + (", under its own seccomp filter" if netns.slirp_seccomp() else "")
            + "; code URLs are presigned and expire)"
        )
    else:
        control = "control plane: REACHABLE from sandboxes (setpriv missing)"
    return (
        seccomp_note,
        control,
        "capabilities: none; no_new_privs; read-only root; PID, mount, IPC, UTS, network "
        "namespaces; no user namespace",
        "agent (PID 1): not traceable (non-dumpable), its output a bounded pipe",
    )


class RuncBackend:
    """Makes runc sandboxes.  Requires root, runc, usable cgroups and netns."""

    #: the sandboxes it makes (rootless.py makes its own)
    sandbox_class: type[RuncSandbox] = RuncSandbox
    #: /tmp as a loop-mounted ext4 image where it works (rootless: never, it needs root)
    try_loop_tmp = True

    def __init__(
        self,
        config: ServerConfig,
        *,
        cgsys: cgroups.CgroupSystem | None = None,
        host_network: bool = True,
        reasons: Sequence[str] = (),
        runc: str = "runc",
        spares: int = 0,
        spare_ephemeral_mb: int = SPARE_EPHEMERAL_MB,
    ) -> None:
        self.config = config
        #: the /tmp size of spares (a function asking for another size gets a new sandbox)
        self.spare_ephemeral_mb = spare_ephemeral_mb
        self.data_dir = config.data_dir.resolve()
        self.envs_dir = config.envs_dir.resolve()
        self.runc = Runc(runc, self.data_dir / "runc")
        self.tag = instance_tag(self.data_dir)
        self.cgsys = cgsys if cgsys is not None else cgroups.detect()
        self.host_network = host_network
        self._reasons = tuple(reasons)
        self._warnings: list[str] = []
        self.tmp_images = TmpImages(self.data_dir / "tmp-templates")
        self._agent_prefix, self._agent_python = agent_interpreter()
        self._settings: BuildSettings | None = None
        self._start_lock = asyncio.Lock()
        self._sandboxes: dict[str, RuncSandbox] = {}
        #: how many spare sandboxes to keep built and running (0: build on demand only)
        self.spares = SparePool(spares, self._build_spare)
        self.likely = LikelyRuntime(self._agent_prefix)
        self._readonly = ReadOnlyMounts(self.envs_dir / ".ro")
        #: runc's linux.seccomp for every sandbox (None: no filter), and what it is
        self.seccomp, seccomp_note = seccomp.for_this_host()
        self._protections = protections(seccomp_note, host_network)
        if self.seccomp is None:
            self._warnings.append(seccomp_note)
        if host_network and netns.slirp_prefix() is None:
            self._warnings.append(
                "setpriv not found (apt-get install util-linux): functions can reach the "
                "lambdalet API through host.lambdalet.internal"
            )

    def runc_cmd(self, *args: str) -> list[str]:
        return self.runc.cmd(*args)

    @property
    def settings(self) -> BuildSettings:
        """What sandboxes are built from; set once :meth:`start` is done."""
        assert self._settings is not None
        return self._settings

    def info(self) -> BackendInfo:
        warnings = list(self._warnings)
        if not self.host_network:
            warnings.append("sandboxes have no network access (host network access disabled)")
        s = self._settings
        return BackendInfo(
            backend="runc",
            isolation="full",
            cgroup=self.cgsys.version,
            network="namespace",
            reasons=self._reasons,
            warnings=tuple(warnings),
            agent=("compiled" if s.agent_compiled else "python") if s is not None else "",
            spares_ready=len(self.spares),
            spares_wanted=self.spares.wanted,
            protections=self._protections,
            capabilities=capabilities(self.seccomp is not None),
        )

    def add_warning(self, warning: str) -> None:
        self._warnings.append(warning)

    async def start(self) -> None:
        """Sweep leftovers of a crashed run, build the shared rootfs (once), start spares."""
        await self._ensure_started()
        self.spares.refill()

    async def _ensure_started(self) -> None:
        async with self._start_lock:
            if self._settings is not None:
                return
            await asyncio.to_thread(self.sweep)
            net = rootfs.NetworkNames(
                host_addr=netns.SLIRP_HOST if self.host_network else None,
                dns=netns.SLIRP_DNS if self.host_network else None,
            )
            base_rootfs = await asyncio.to_thread(
                rootfs.ensure_base_rootfs, self.data_dir / "rootfs", net
            )
            agent = await asyncio.to_thread(install_agent, self.data_dir, self.config.python_agent)
            if agent.warning is not None:
                self._warnings.append(agent.warning)
            loop_tmp = self.try_loop_tmp
            try:
                if loop_tmp:
                    await self.tmp_images.template(512)
            except (SandboxError, OSError) as e:
                loop_tmp = False
                self._warnings.append(
                    f"/tmp is a tmpfs (counts against memory), loop-mounted ext4 failed: {e}"
                )
            self._settings = BuildSettings(
                runc=self.runc,
                tag=self.tag,
                cgsys=self.cgsys,
                base_rootfs=base_rootfs,
                agent_dir=agent.dir,
                agent_compiled=agent.compiled,
                agent_python=self._agent_python,
                agent_prefix=self._agent_prefix,
                seccomp=self.seccomp,
                host_network=self.host_network,
                loop_tmp=loop_tmp,
            )

    async def create(self, spec: SandboxSpec, on_log: LogSink, on_exit: ExitSink) -> Sandbox:
        await self._ensure_started()
        if spec.env_id in self._sandboxes:
            raise SandboxError(f"sandbox {spec.env_id} exists")
        self.likely.learn_dirs(spec.runtime_dir, spec.lang_dir, spec.lang_layers)
        spare = self.spares.take(spec)
        if spare is not None:
            self._sandboxes[spec.env_id] = spare
            try:
                await spare.attach(spec, on_log, on_exit)
            except BaseException as e:
                with contextlib.suppress(Exception):
                    await spare.destroy()
                self._sandboxes.pop(spec.env_id, None)
                if isinstance(e, asyncio.CancelledError):
                    raise
                # a spare that cannot attach is not the function's fault: build one afresh
            else:
                # refilled once this cold start is done: building a spare (runc, the
                # agent's and the runtime's interpreters) would take CPU from its Init
                # and first invoke on a small machine
                self.spares.refill(REFILL_DELAY_S)
                return spare
        sb = self.sandbox_class(self, spec, self.envs_dir / spec.env_id, on_log, on_exit)
        self._sandboxes[spec.env_id] = sb
        try:
            await sb.build()
        except BaseException as e:
            with contextlib.suppress(Exception):
                await sb.destroy()
            if isinstance(e, (SandboxError, asyncio.CancelledError)):
                raise
            raise SandboxError(f"cannot create sandbox {spec.env_id}: {e}") from e
        finally:
            self.spares.refill()
        return sb

    async def _build_spare(self) -> RuncSandbox:
        """One spare, built and running (destroyed again if building it fails)."""
        sid = f"spare-{os.urandom(5).hex()}"
        env_dir = self.envs_dir / sid
        sb = RuncSandbox(
            self,
            spare_spec(sid, self.envs_dir, self.spare_ephemeral_mb),
            env_dir,
            _no_log,
            _no_exit,
            attach_dir=env_dir / "attach",
        )
        self._sandboxes[sid] = sb
        try:
            await sb.build()
        except BaseException:
            with contextlib.suppress(Exception):
                await sb.destroy()
            raise
        finally:
            self._sandboxes.pop(sid, None)
        return sb

    # -- spare sandboxes -------------------------------------------------

    @property
    def spares_wanted(self) -> int:
        return self.spares.wanted

    def spare_count(self) -> int:
        """Spare sandboxes built and waiting (for tests and the benchmark)."""
        return len(self.spares)

    async def wait_spares(self, timeout_s: float = 30.0) -> None:
        """Wait until the wanted number of spares is ready (tests, the benchmark)."""
        await self.spares.wait(timeout_s)

    def spare_view(self) -> SandboxView | None:
        return SANDBOX_VIEW if self.spares.wanted > 0 else None

    def expect_runtime(
        self,
        runtime_dir: Path | None,
        lang_dir: Path | None,
        env: Mapping[str, str],
        lang_layers: Sequence[Path] = (),
    ) -> None:
        """Before any function ran (server start): the runtime spares should pre-start."""
        if self.likely.known:
            return  # a function already told us
        self.likely.learn_dirs(runtime_dir, lang_dir, lang_layers)
        self.learn_runtime_env(env)

    # -- what sandboxes ask (SandboxHost) -----------------------------------

    def likely_mounts(self) -> dict[str, str | None]:
        return dict(self.likely.mounts)

    def learn_runtime_env(self, env: Mapping[str, str]) -> None:
        """Remember the start-up part of the latest runtime's environment (for spares).

        When it changes, the waiting spares get the likely runtime mounted and pre-started.
        """
        if self.likely.learn_env(env):
            self.spares.prepare_all()

    def prestart_env(self) -> dict[str, str] | None:
        return dict(self.likely.env) if self.likely.env is not None else None

    def is_waiting_spare(self, sb: RuncSandbox) -> bool:
        return self.spares.holds(sb)

    async def mount_readonly(self, source: str, target: str) -> None:
        """Mount ``source`` (a directory, or ``overlay:<lowerdirs>``) read-only at ``target``."""
        await self._readonly.mount(source, target)

    def forget(self, sb: RuncSandbox) -> None:
        if self._sandboxes.get(sb.spec.env_id) is sb:
            del self._sandboxes[sb.spec.env_id]
        self.spares.discard(sb)

    # -- the end, and the start after a crash --------------------------------

    async def close(self) -> None:
        spares = await self.spares.close()
        for sb in [*spares, *self._sandboxes.values()]:
            with contextlib.suppress(SandboxError):
                await sb.destroy()
        await self._readonly.close()

    def sweep(self) -> list[str]:
        """Remove what a crashed earlier run left: containers, netns, mounts, cgroups.

        Blocking; runs once before the first sandbox is made.  Returns what it removed.
        """
        return sweep(self.runc, self.envs_dir, self.tag, self.cgsys)


def _no_log(role: object, name: str, line: bytes) -> None:
    pass


def _no_exit(exit: object) -> None:
    pass
