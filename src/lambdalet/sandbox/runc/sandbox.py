"""One runc sandbox: a container whose PID 1 is our agent, and the processes it runs.

Its life is :class:`~.state.SandboxState`; it reaches its agent through
:class:`~.link.AgentLink` and asks its backend only what :class:`SandboxHost` offers.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import shutil
import signal
import socket
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from .. import cgroups, netns, spawn
from ..base import (
    PRESTART_FILE,
    ExitSink,
    LogSink,
    ProcessExit,
    ProcessRole,
    SandboxError,
    SandboxSpec,
    SandboxView,
    SpawnError,
)
from ..output import LogPipe
from ..output_tail import OutputTail
from .attach import AttachPoints
from .children import Child, Children
from .host import SandboxHost
from .link import AgentLink
from .mounts import mounts_under, run_tool
from .oci import (
    SANDBOX_VIEW,
    BundlePlan,
    attach_sources,
    cgroup_relpath,
    cpu_shares,
    oci_config,
)
from .prestart import Prestarted, PrestartSlot
from .state import SandboxState, advance
from .sweep import MARKER

logger = logging.getLogger(__name__)

AGENT_READY_TIMEOUT_S = 10.0
KILL_TIMEOUT_S = 5.0


class RuncSandbox:
    """One runc container; the host side of its agent connection.

    A *spare* (``attach_dir`` set) is built before any function needs it; :meth:`attach`
    later gives it the function's spec: mounts on the host side of the shared attach
    points propagate into the running container, and the cgroup limits are written.
    """

    def __init__(
        self,
        host: SandboxHost,
        spec: SandboxSpec,
        env_dir: Path,
        on_log: LogSink,
        on_exit: ExitSink,
        *,
        attach_dir: Path | None = None,
    ) -> None:
        self.host = host
        self.spec = spec
        #: container, cgroup and netns name: fixed at build time (a spare keeps its own)
        self.cid = spec.env_id
        self.env_dir = env_dir
        self.attach_dir = attach_dir
        #: a spare's attach points (None: built for its function, mounts fixed)
        self.points = (
            AttachPoints(attach_dir, host.mount_readonly) if attach_dir is not None else None
        )
        self._on_log = on_log
        self._on_exit = on_exit
        self.net = netns.NetNamespace(f"{host.settings.tag}-{spec.env_id}")
        self.cgroup: cgroups.Cgroup | None = None
        self._link: AgentLink | None = None
        self._agent_pid: int | None = None
        self._children = Children()
        self._state = SandboxState.BUILDING
        self._tmp_mounted = False
        #: the last output of runc and of the agent (bounded, see OutputTail)
        self._output: OutputTail | None = None
        #: a pre-started runtime waiting to be told what to become
        self._prestart = PrestartSlot()
        #: serialises changes of the attach points and pre-starts
        self._attach_lock = self.points.lock if self.points is not None else asyncio.Lock()
        self._view = SANDBOX_VIEW

    def __repr__(self) -> str:
        children = sorted(self._children.pids())
        return f"RuncSandbox({self.spec.env_id!r}, {self._state}, children={children})"

    @property
    def state(self) -> SandboxState:
        return self._state

    def _to(self, new: SandboxState) -> None:
        self._state = advance(self._state, new)

    # -- building ---------------------------------------------------------

    async def _network(self) -> None:
        """Before ``runc run``: the namespace, and host access (hook: rootless joins
        runc's namespace after the run instead)."""
        await asyncio.to_thread(self.net.create)
        if self.host.settings.host_network:
            await self.net.start_host_access(self.env_dir)

    def _config(self, plan: BundlePlan) -> dict[str, Any]:
        """config.json (hook: the rootless backend adds its user namespace)."""
        return oci_config(plan)

    async def _after_run(self) -> None:
        """Once ``runc run`` returned (hook: the rootless backend joins its network)."""

    async def build(self) -> None:
        """Make the container and start its agent (then pre-start a spare's runtime)."""
        b = self.host.settings
        spec = self.spec
        self.env_dir.mkdir(parents=True)
        (self.env_dir / MARKER).touch()
        bundle = self.env_dir / "bundle"
        bundle.mkdir()

        async def tmp() -> Path | None:
            if b.loop_tmp:
                await self.host.tmp_images.make(
                    spec.ephemeral_mb, self.env_dir / "tmp.img", self.env_dir / "tmp"
                )
                self._tmp_mounted = True
                return self.env_dir / "tmp"
            return None

        async def attach_points() -> None:
            if self.points is not None:
                await self.points.make()

        t0 = time.monotonic()
        _, tmp_source, _ = await asyncio.gather(self._network(), tmp(), attach_points())
        t1 = time.monotonic()
        plan = b.bundle_plan(spec, self.net.path, tmp_source, self.attach_dir, self.cid)
        (bundle / "config.json").write_text(json.dumps(self._config(plan), indent=1))

        host, agent = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        link = self._link = AgentLink(host, self._child_exited, self._agent_gone)
        link.open()
        pid_file = self.env_dir / "agent.pid"
        # runc's messages and the agent's stdout and stderr (which a function can open
        # as /proc/1/fd/1) go into a pipe of which only the last few KiB are kept
        out_r, out_w = os.pipe2(os.O_CLOEXEC)
        self._output = OutputTail(out_r)
        try:
            try:
                rc, _ = await spawn.run(
                    [
                        *b.runc.cmd("run", "--detach", "--pid-file", str(pid_file)),
                        *("--bundle", str(bundle), self.cid),
                    ],
                    AGENT_READY_TIMEOUT_S,
                    stdin=agent.fileno(),
                    stdout=out_w,
                    stderr=out_w,
                )
            except spawn.ToolTimeout as e:
                raise SandboxError(str(e)) from None
            finally:
                agent.close()
        finally:
            os.close(out_w)
        if rc != 0:
            raise SandboxError(f"runc run failed ({rc}): {self._log_tail()}")
        t2 = time.monotonic()
        self._agent_pid = int(pid_file.read_text().strip())
        self.cgroup = b.cgsys.group(cgroup_relpath(b.tag, self.cid))
        await self._after_run()
        try:
            await asyncio.wait_for(link.ready, AGENT_READY_TIMEOUT_S)
        except TimeoutError:
            raise SandboxError(f"sandbox agent did not start: {self._log_tail()}") from None
        if self._state is SandboxState.BUILDING:
            self._to(SandboxState.RUNNING)
        t3 = time.monotonic()
        if self.points is not None:
            try:
                # the directories most functions use, ready before any function asks.
                # Mounted once the container runs: its attach points are then slaves of
                # the empty shared dirs, so a later remount (another Python version, or
                # another language layer) propagates; a mount made before `runc run`
                # would be copied itself and the container would never see a remount.
                await self.points.sync(self.host.likely_mounts())
                await self.prestart_runtime()
            except (SpawnError, SandboxError) as e:
                logger.warning("pre-starting the runtime failed: %s", e)
        logger.debug(
            "built %s: network and /tmp %.1f ms, bundle and runc run %.1f ms, agent %.1f ms",
            self.cid,
            (t1 - t0) * 1000,
            (t2 - t1) * 1000,
            (t3 - t2) * 1000,
        )

    def fits(self, spec: SandboxSpec) -> bool:
        """True when this spare can become a sandbox of ``spec`` by :meth:`attach`."""
        return (
            self.points is not None
            and self._state.alive
            and spec.ephemeral_mb == self.spec.ephemeral_mb
            and spec.hostname == self.spec.hostname
            and spec.nofile_limit == self.spec.nofile_limit
            and spec.image_rootfs is None
            and not (self._prestart and self._runtime_differs(spec))
        )

    def _runtime_differs(self, spec: SandboxSpec) -> bool:
        # a runtime pre-started from the mounted dirs may still hold them when it is killed,
        # and an unmount that propagates into a container skips a busy mount: never remount
        assert self.points is not None
        return self.points.differs(attach_sources(spec), ("runtime", "lang"))

    async def prepare_likely(self) -> None:
        """A waiting spare: mount the likely runtime and pre-start it (best effort)."""
        async with self._attach_lock:
            if (
                self._state is SandboxState.DESTROYED
                or self._prestart
                or self.points is None
                or not self.host.is_waiting_spare(self)
            ):
                return
            try:
                await self.points.sync(self.host.likely_mounts())
                await self.prestart_runtime()
            except (SandboxError, SpawnError, OSError) as e:
                logger.warning("preparing a spare sandbox failed: %s", e)

    async def attach(self, spec: SandboxSpec, on_log: LogSink, on_exit: ExitSink) -> None:
        """Make this spare the sandbox of ``spec``: mounts, then the cgroup's limits."""
        async with self._attach_lock:
            await self._attach(spec, on_log, on_exit)

    async def _attach(self, spec: SandboxSpec, on_log: LogSink, on_exit: ExitSink) -> None:
        assert self.cgroup is not None and self.points is not None
        self.spec = spec
        self._on_log = on_log
        self._on_exit = on_exit
        want = attach_sources(spec)
        assert not self._prestart or not self._runtime_differs(spec)
        await self.points.sync(want)
        limit = spec.memory_mb * 1024 * 1024
        cg = self.cgroup
        cg.set_memory_limit(limit)
        cg.set_pids_limit(spec.pids_limit)
        cg.set_cpu_shares(cpu_shares(spec.memory_mb))
        cg.reset_memory_peak()

    def _log_tail(self) -> str:
        if self._output is None:
            return "(no output)"
        return self._output.text() or "(no output)"

    # -- agent connection -------------------------------------------------

    def _child_exited(self, pid: int, code: int | None, sig: int | None) -> None:
        if self._prestart.holds(pid):
            self._drop_prestart()
            return
        child = self._children.exited(pid, (code, sig))
        if child is None:
            return  # it exited before its spawn's answer was acted on: reported once watched
        if self.cgroup is not None:
            self.cgroup.sample()
        child.logs.drain()
        self._on_exit(ProcessExit(pid, child.role, child.name, code, sig))

    def _agent_gone(self) -> None:
        if not self._state.alive:
            return
        was_frozen = self._state is SandboxState.FROZEN
        self._to(SandboxState.AGENT_GONE)
        if was_frozen and self.cgroup is not None:
            with contextlib.suppress(OSError, cgroups.CgroupError):
                self.cgroup.thaw()
        assert self._link is not None
        self._link.stop_reading()
        # PID 1 of the namespace died: the kernel killed everything inside.
        for pid in self._children.pids():
            self._child_exited(pid, None, signal.SIGKILL)
        self._link.fail(SandboxError(f"sandbox agent exited: {self._log_tail()}"))

    def _live_link(self) -> AgentLink:
        if not self._state.alive or self._link is None:
            raise SandboxError(f"sandbox {self.spec.env_id} is not running")
        return self._link

    async def _send(self, msg: tuple[Any, ...], fds: Sequence[int] = ()) -> None:
        await self._live_link().send(msg, fds)

    async def _request(
        self, make: Callable[[int], tuple[Any, ...]], fds: Sequence[int] = ()
    ) -> tuple[str, int]:
        """Send the message ``make(seq)`` and await the agent's answer to it."""
        link = self._live_link()
        return await link.request(make(link.next_seq()), fds)

    # -- the Sandbox contract --------------------------------------------

    @property
    def view(self) -> SandboxView:
        return self._view

    @property
    def runtime_api_socket(self) -> socket.socket:
        sock = self.net.runtime_api_socket
        if sock is None:
            raise SandboxError("sandbox has no Runtime API socket")
        return sock

    def socket_inside(self, family: int = socket.AF_INET) -> socket.socket:
        return self.net.socket_inside(family)

    async def spawn(
        self,
        role: ProcessRole,
        name: str,
        argv: Sequence[str],
        env: Mapping[str, str],
        cwd: str,
    ) -> int:
        if not argv:
            raise SpawnError("empty argv")
        argv = [str(a) for a in argv]
        env = {str(k): str(v) for k, v in env.items()}
        if (
            role is ProcessRole.RUNTIME
            and argv == [self._bootstrap_path()]
            and self.spec.image_rootfs is None
        ):
            self.host.learn_runtime_env(env)
            if self._prestart and cwd == self._view.task_root:
                return self._activate_prestart(role, name, argv, env, cwd)
        pid, r = await self._spawn_raw(argv, env, cwd)
        self._watch(pid, role, name, r)
        return pid

    def _bootstrap_path(self) -> str:
        return f"{self._view.runtime_dir}/bootstrap"

    def _watch(self, pid: int, role: ProcessRole, name: str, r: int) -> None:
        def on_line(line: bytes) -> None:
            self._on_log(role, name, line)

        early = self._children.watch(Child(pid, role, name, LogPipe(r, on_line)))
        if early is not None:
            # after the spawn has returned its pid to the caller, who then expects the exit
            asyncio.get_running_loop().call_soon(self._child_exited, pid, *early)

    async def _spawn_raw(
        self, argv: list[str], env: dict[str, str], cwd: str, ctl: int | None = None
    ) -> tuple[int, int]:
        """Start a process through the agent; returns (pid, read end of its output)."""
        r, w = os.pipe2(os.O_CLOEXEC)
        try:
            kind, value = await self._request(
                lambda seq: ("spawn", seq, argv, env, cwd), [w] if ctl is None else [w, ctl]
            )
        except BaseException:
            os.close(r)
            raise
        finally:
            os.close(w)
        if kind == "E":
            os.close(r)
            reason = os.strerror(value) if value else "cannot execute"
            raise SpawnError(f"{argv[0]}: {reason}")
        return value, r

    # -- pre-started runtime (optional: spares, and sandboxes after a reset) ------

    async def prestart_runtime(self) -> None:
        """Start the runtime dir's pre-start entry point, if it has one and we know how.

        The process imports what it can before the function is known and waits on its
        fd 3; :meth:`spawn` of the runtime's bootstrap then hands it argv, environment
        and cwd (marshal) instead of starting a new process.  It decides itself whether
        it can become that runtime exactly, and execs the bootstrap when it cannot.
        """
        runtime = self.points.attached["runtime"] if self.points is not None else None
        if runtime is None and self.points is None and self.spec.runtime_dir is not None:
            runtime = str(self.spec.runtime_dir)  # built for its function: /var/runtime is it
        env = self.host.prestart_env()
        if runtime is None or env is None or self._prestart:
            return
        if not os.access(Path(runtime) / PRESTART_FILE, os.X_OK):
            return
        cr, cw = os.pipe2(os.O_CLOEXEC)
        try:
            pid, r = await self._spawn_raw(
                [f"{self._view.runtime_dir}/{PRESTART_FILE}"], env, self._view.task_root, cr
            )
        except BaseException:
            os.close(cw)
            raise
        finally:
            os.close(cr)
        self._prestart.hold(Prestarted(pid, cw, r))

    def _activate_prestart(
        self, role: ProcessRole, name: str, argv: list[str], env: dict[str, str], cwd: str
    ) -> int:
        started = self._prestart.activate(argv, env, cwd)
        pid = started.pid
        self._watch(pid, role, name, started.out)
        if self._prestart.was_dropped(pid):
            self._child_exited(pid, None, signal.SIGKILL)
        return pid

    def _drop_prestart(self) -> None:
        pid = self._prestart.drop()
        if pid is not None:
            self._children.forget_early(pid)

    async def signal(self, pid: int, sig: int) -> None:
        with contextlib.suppress(SandboxError):
            await self._send(("signal", int(pid), int(sig)))

    async def kill_all(self) -> None:
        if not self._state.alive:
            return
        self.thaw()
        try:
            await asyncio.wait_for(self._request(lambda seq: ("killall", seq)), KILL_TIMEOUT_S)
        except (TimeoutError, SandboxError):
            # the agent is stuck or gone: kill through the cgroup, spare the agent
            if self.cgroup is not None:
                keep = [self._agent_pid] if self._agent_pid else []
                await asyncio.to_thread(self.cgroup.kill_all, keep)
            for pid in self._children.pids():
                self._child_exited(pid, None, signal.SIGKILL)

    async def prepare_restart(self) -> None:
        """After a reset, pre-start the runtime again.

        The next Init then activates it instead of starting an interpreter: the first
        invoke after a crash or a timeout costs what a cold start on a spare costs.
        """
        if not self._state.alive:
            return
        try:
            async with self._attach_lock:
                await self.prestart_runtime()
        except (SandboxError, SpawnError, OSError) as e:
            logger.warning("pre-starting the runtime after a reset failed: %s", e)

    def freeze(self) -> None:
        if self.cgroup is None or self._state is SandboxState.DESTROYED:
            return
        self.cgroup.sample()
        if self._state is not SandboxState.RUNNING:
            return  # frozen already, or nothing left inside to freeze (the agent is gone)
        # no waiting for FROZEN: this runs on the invoke path, and a thaw cancels a freeze
        self.cgroup.freeze()
        self._to(SandboxState.FROZEN)

    def thaw(self) -> None:
        if self.cgroup is None or self._state is not SandboxState.FROZEN:
            return
        self.cgroup.thaw()
        self._to(SandboxState.RUNNING)

    def memory_peak_bytes(self) -> int:
        return self.cgroup.memory_peak() if self.cgroup is not None else 0

    def oom_kills(self) -> int:
        return self.cgroup.oom_kills() if self.cgroup is not None else 0

    async def destroy(self) -> None:
        if self._state is SandboxState.DESTROYED:
            return
        self._to(SandboxState.DESTROYED)
        self.host.forget(self)
        errors: list[str] = []
        if self.cgroup is not None:
            with contextlib.suppress(OSError, cgroups.CgroupError):
                await asyncio.to_thread(self.cgroup.kill_all)
        if self._link is not None:
            self._link.close()
        self._drop_prestart()
        for pid in self._children.pids():
            self._child_exited(pid, None, signal.SIGKILL)
        if self._link is not None:
            self._link.fail(SandboxError("sandbox destroyed"), cancel_ready=True)
        try:
            await self.host.settings.runc.delete(self.cid)
        except SandboxError as e:
            errors.append(str(e))
        self._reap_agent()
        if self._output is not None:
            self._output.close()
        await self.net.remove()
        tmp = self.env_dir / "tmp"
        if self._tmp_mounted or await asyncio.to_thread(os.path.ismount, tmp):
            try:
                await run_tool("umount", str(tmp))
            except SandboxError as e:
                errors.append(str(e))
                with contextlib.suppress(SandboxError):
                    await run_tool("umount", "-l", str(tmp))
        if self.points is not None:
            problem = await self.points.remove()
            if problem is not None:
                errors.append(problem)
        if self.cgroup is not None:
            try:
                await asyncio.to_thread(self.cgroup.remove)
            except cgroups.CgroupError as e:
                errors.append(str(e))
        # never recurse into a mount (an attached /var/task is the function's own code)
        left = await asyncio.to_thread(mounts_under, self.env_dir)
        if left:
            errors.append(f"still mounted, not removed: {', '.join(left)}")
        else:
            await asyncio.to_thread(shutil.rmtree, self.env_dir, True)
        if errors:
            raise SandboxError(f"destroy {self.spec.env_id}: " + "; ".join(errors))

    def _reap_agent(self) -> None:
        """If we are the agent's parent (a subreaper), collect its exit status."""
        if self._agent_pid is not None:
            with contextlib.suppress(ChildProcessError, OSError):
                os.waitpid(self._agent_pid, os.WNOHANG)
