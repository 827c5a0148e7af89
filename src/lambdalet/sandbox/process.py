"""The ``process`` backend: no isolation at all, for hosts without root or namespaces.

Processes run directly on the host, each in its own process group, as the
user running lambdalet.  There is no memory limit, no pids limit, no private
network (the Runtime API is on 127.0.0.1 with an ephemeral port) and no
filesystem view: ``SandboxView`` holds host paths.  Freezing is SIGSTOP /
SIGCONT to each process group.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import subprocess
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from lambdalet.config import ServerConfig

from . import spawn
from .base import (
    BackendInfo,
    Capability,
    ExitSink,
    LogSink,
    ProcessExit,
    ProcessRole,
    Sandbox,
    SandboxError,
    SandboxSpec,
    SandboxView,
    SpawnError,
)
from .output import LogPipe


def merge_layers(layer_dirs: Sequence[Path], dest: Path) -> None:
    """Merge layers into ``dest`` with symlinks, later layers winning."""
    dest.mkdir(parents=True, exist_ok=True)
    for layer in layer_dirs:
        for dirpath, dirnames, filenames in os.walk(layer):
            rel = Path(dirpath).relative_to(layer)
            target_dir = dest / rel
            if target_dir.is_symlink():
                target_dir.unlink()
            target_dir.mkdir(parents=True, exist_ok=True)
            for name in filenames + [d for d in dirnames if Path(dirpath, d).is_symlink()]:
                target = target_dir / name
                if target.is_symlink() or target.is_file():
                    target.unlink()
                elif target.is_dir():
                    shutil.rmtree(target)
                os.symlink(Path(dirpath, name), target)


@dataclass
class _Child:
    pid: int
    role: ProcessRole
    name: str
    proc: subprocess.Popen[bytes]
    logs: LogPipe
    waiter: asyncio.Task[None] | None = None


class ProcessSandbox:
    """A directory and a set of process groups on the host."""

    def __init__(
        self,
        spec: SandboxSpec,
        env_dir: Path,
        on_log: LogSink,
        on_exit: ExitSink,
        on_destroyed: Callable[[str], None] | None = None,
    ) -> None:
        self.spec = spec
        self._on_destroyed = on_destroyed
        self.env_dir = env_dir
        self._on_log = on_log
        self._on_exit = on_exit
        self._children: dict[int, _Child] = {}
        self._frozen = False
        self._peak = 0
        self._destroyed = False
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        sock.listen(128)
        sock.setblocking(False)
        self._api_sock = sock
        port = sock.getsockname()[1]
        opt = env_dir / "opt"
        tmp = env_dir / "tmp"
        self._view = SandboxView(
            task_root=str(spec.code_dir),
            opt_dir=str(opt),
            runtime_dir=str(spec.runtime_dir) if spec.runtime_dir else "",
            lang_dir=str(spec.lang_dir) if spec.lang_dir else "",
            tmp_dir=str(tmp),
            runtime_api=f"127.0.0.1:{port}",
        )

    def __repr__(self) -> str:
        return f"ProcessSandbox({self.spec.env_id!r}, children={sorted(self._children)})"

    @property
    def view(self) -> SandboxView:
        return self._view

    @property
    def runtime_api_socket(self) -> socket.socket:
        return self._api_sock

    def socket_inside(self, family: int = socket.AF_INET) -> socket.socket:
        return socket.socket(family, socket.SOCK_STREAM)

    async def spawn(
        self,
        role: ProcessRole,
        name: str,
        argv: Sequence[str],
        env: Mapping[str, str],
        cwd: str,
    ) -> int:
        if self._destroyed:
            raise SandboxError("sandbox destroyed")
        if not argv:
            raise SpawnError("empty argv")
        r, w = os.pipe2(os.O_CLOEXEC)
        try:
            proc = await spawn.start(
                list(argv),
                env=dict(env),
                cwd=cwd,
                stdin=subprocess.DEVNULL,
                stdout=w,
                stderr=w,
                process_group=0,
            )
        except OSError as e:
            os.close(r)
            raise SpawnError(f"{argv[0]}: {e.strerror or e}") from e
        finally:
            os.close(w)

        def on_line(line: bytes) -> None:
            self._on_log(role, name, line)

        child = _Child(proc.pid, role, name, proc, LogPipe(r, on_line))
        self._children[proc.pid] = child
        child.waiter = asyncio.create_task(self._wait(child), name=f"wait-{name}-{proc.pid}")
        if self._frozen:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGSTOP)
        return proc.pid

    async def _wait(self, child: _Child) -> None:
        rc = await spawn.wait(child.proc)
        self._sample(child.pid)
        child.logs.drain()
        self._children.pop(child.pid, None)
        code, sig = (None, -rc) if rc < 0 else (rc, None)
        self._on_exit(ProcessExit(child.pid, child.role, child.name, code, sig))

    async def signal(self, pid: int, sig: int) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, sig)

    async def prepare_restart(self) -> None:
        pass  # no pre-started runtimes on this backend

    async def kill_all(self) -> None:
        children = list(self._children.values())
        for c in children:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(c.pid, signal.SIGKILL)
        self._frozen = False
        waiters = [c.waiter for c in children if c.waiter is not None]
        if waiters:
            await asyncio.gather(*waiters, return_exceptions=True)

    def freeze(self) -> None:
        for pid in list(self._children):
            self._sample(pid)
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGSTOP)
        self._frozen = True

    def thaw(self) -> None:
        self._frozen = False
        for pid in list(self._children):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGCONT)

    def _sample(self, pid: int | None = None) -> None:
        total = 0
        for p in [pid] if pid is not None else list(self._children):
            with contextlib.suppress(OSError, ValueError):
                for line in Path(f"/proc/{p}/status").read_text().splitlines():
                    if line.startswith("VmHWM:"):
                        total += int(line.split()[1]) * 1024
        self._peak = max(self._peak, total)

    def memory_peak_bytes(self) -> int:
        """Approximate: the largest VmHWM sum of the spawned processes seen so far."""
        self._sample()
        return self._peak

    def oom_kills(self) -> int:
        return 0

    async def destroy(self) -> None:
        if self._destroyed:
            return
        self._destroyed = True
        if self._on_destroyed is not None:
            self._on_destroyed(self.spec.env_id)
        await self.kill_all()
        self._api_sock.close()
        await asyncio.to_thread(shutil.rmtree, self.env_dir, True)


#: none of Lambda's limits or protections: see the warnings of :meth:`ProcessBackend.info`
CAPABILITIES: frozenset[Capability] = frozenset()


class ProcessBackend:
    """Runs processes on the host, with no isolation."""

    def __init__(self, config: ServerConfig, reasons: Sequence[str] = ()) -> None:
        self.config = config
        self._reasons = tuple(reasons)
        self._sandboxes: dict[str, ProcessSandbox] = {}

    def spare_view(self) -> SandboxView | None:
        return None  # no spares: every sandbox is made on demand

    def expect_runtime(
        self,
        runtime_dir: Path | None,
        lang_dir: Path | None,
        env: Mapping[str, str],
        lang_layers: Sequence[Path] = (),
    ) -> None:
        pass

    def info(self) -> BackendInfo:
        return BackendInfo(
            backend="process",
            isolation="none",
            cgroup="none",
            network="host",
            reasons=self._reasons,
            warnings=(
                "NO ISOLATION: function code runs directly on this host as the lambdalet user",
                "no memory limit: MemorySize is not enforced and OOM is never detected",
                "no pids limit, no read-only /var/task, no private /tmp size cap",
                "no private network: sandbox.localdomain does not resolve; "
                "the Runtime API is on 127.0.0.1 with an ephemeral port",
                "Max Memory Used is approximate (sum of the processes' VmHWM)",
                "functions can reach the lambdalet API on 127.0.0.1 and read its data "
                "directory (configure credentials to make the API require SigV4)",
            ),
            protections=(
                "none: no seccomp, no namespaces, no control-plane isolation "
                "(code URLs are still presigned and expire)",
            ),
            capabilities=CAPABILITIES,
        )

    async def create(self, spec: SandboxSpec, on_log: LogSink, on_exit: ExitSink) -> Sandbox:
        if spec.env_id in self._sandboxes:
            raise SandboxError(f"sandbox {spec.env_id} exists")
        if spec.image_rootfs is not None:
            raise SandboxError(
                "container image functions need the runc backend (an image is a whole root "
                "file system; the process backend runs host processes)"
            )
        env_dir = self.config.envs_dir / spec.env_id
        layers = list(spec.layer_dirs)

        def prepare() -> None:
            shutil.rmtree(env_dir, ignore_errors=True)
            (env_dir / "tmp").mkdir(parents=True)
            merge_layers(layers, env_dir / "opt")

        await asyncio.to_thread(prepare)
        sb = ProcessSandbox(spec, env_dir, on_log, on_exit, self._forget)
        self._sandboxes[spec.env_id] = sb
        return sb

    def _forget(self, env_id: str) -> None:
        self._sandboxes.pop(env_id, None)

    async def close(self) -> None:
        for sb in list(self._sandboxes.values()):
            await sb.destroy()
        self._sandboxes.clear()
