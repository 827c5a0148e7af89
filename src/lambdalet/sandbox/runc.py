"""The ``runc`` backend: one OCI container per sandbox, with our agent as PID 1.

Layout per sandbox under ``config.envs_dir/<env_id>/``::

    bundle/config.json   the OCI config (built by :func:`oci_config`, pure)
    tmp.img, tmp/        sparse ext4 image of ephemeral_mb, loop-mounted, = /tmp
    agent.pid            host pid of the agent (runc --pid-file)
    slirp4netns.*        host-access helper's pid and messages

Shared under ``config.data_dir``: ``runc/`` (our own ``runc --root``),
``rootfs/<hash>/`` (read-only base, see rootfs.py), ``rapid/<hash>/`` (agent.py,
agent.c and the agent compiled from it) and ``tmp-templates/<mb>.img``.

runc's and the agent's stdout/stderr are a pipe the server drains, keeping the last
4 KiB for error messages (:class:`OutputTail`): never a file a function could fill.

The host talks to the agent over a SOCK_SEQPACKET socketpair that is the
agent's stdin (runc passes stdio through to a detached container).  Each
spawned process writes stdout+stderr into a pipe the host created and passed
over that socket, so output reaches the event loop without being copied by
the agent.  Cgroups are created by runc from ``cgroupsPath`` and operated on
by file writes (cgroups.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import hashlib
import json
import logging
import marshal
import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePath
from typing import Any

from lambdalet.config import ServerConfig

from . import cgroups, netns, peers, rootfs, seccomp, spawn
from .base import (
    PRESTART_ENV_KEYS,
    PRESTART_FILE,
    BackendInfo,
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
from .output_tail import OutputTail
from .process import LogPipe

logger = logging.getLogger(__name__)

MARKER = ".lambdalet-runc"
AGENT_READY_TIMEOUT_S = 10.0
KILL_TIMEOUT_S = 5.0


#: RLIMIT_NPROC counts every process of the uid on the whole host, and all
#: sandboxes share uid 993, so Lambda's 1024 would cap the *host* at 1024
#: sandbox processes.  The per-sandbox pids cgroup limit is the real bound;
#: RLIMIT_NPROC is left at our own hard limit (raising it needs CAP_SYS_RESOURCE).
def nproc_limit() -> int:
    hard = resource.getrlimit(resource.RLIMIT_NPROC)[1]
    return 4194304 if hard == resource.RLIM_INFINITY else hard


DEV_SHM_MB = 64
#: what a spare sandbox's directories are attached through (host subdir -> inside path)
ATTACH_POINTS = {"task": "var/task", "opt": "opt", "runtime": "var/runtime", "lang": "var/lang"}
ATTACH_OPTIONS = ("rbind", "ro", "nosuid", "nodev", "rslave")
#: the memory limit of a spare until create() gives it the function's (Lambda's maximum)
SPARE_MEMORY_MB = 10240
SPARE_EPHEMERAL_MB = 512
#: seconds between taking a spare and starting to build its replacement
REFILL_DELAY_S = 0.1
#: cpu.shares of a spare until it is attached (the kernel's minimum)
SPARE_CPU_SHARES = 2


def cpu_shares(memory_mb: int) -> int:
    """CPU weight proportional to memory, as Lambda (1769 MB = 1 vCPU)."""
    return max(2, memory_mb * 1024 // 1769)


_DEFAULT_PATH = "/usr/local/bin:/usr/bin:/bin"


@dataclass(frozen=True)
class Mount:
    destination: str
    source: str
    type: str = "bind"
    options: tuple[str, ...] = ("rbind", "ro", "nosuid", "nodev")

    def to_json(self) -> dict[str, Any]:
        return {
            "destination": self.destination,
            "type": self.type,
            "source": self.source,
            "options": list(self.options),
        }


@dataclass(frozen=True)
class BundlePlan:
    """Everything :func:`oci_config` needs, all host paths absolute."""

    spec: SandboxSpec
    rootfs: Path
    netns_path: Path
    cgroup_version: str
    agent_python: str  # path inside the sandbox of the agent's interpreter
    agent_python_prefix: Path  # host prefix mounted at rootfs.AGENT_PYTHON_PREFIX
    agent_dir: Path  # host directory holding agent.py (and agent, compiled from agent.c)
    tmp_source: Path | None  # host dir mounted at /tmp, or None for a tmpfs
    nproc: int = 4194304  # RLIMIT_NPROC, see nproc_limit()
    #: run the compiled agent instead of agent.py (no interpreter mounted then)
    agent_compiled: bool = False
    #: the server instance's tag: keeps two servers on one host out of each other's cgroups
    instance: str = ""
    #: a spare sandbox: /var/task, /opt, /var/runtime and /var/lang are slave binds of
    #: ``attach_dir/{task,opt,runtime,lang}`` (a shared tmpfs on the host), so that the
    #: function's directories mounted there later appear inside the running container
    attach_dir: Path | None = None
    #: the container's name: the spare's own for a spare, else ``spec.env_id``
    container_id: str = ""
    #: runc's ``linux.seccomp`` (seccomp.py), or None to run without a filter
    seccomp: Mapping[str, Any] | None = None
    extra_warnings: list[str] = field(default_factory=list)
    #: the shared base rootfs, whose /etc files an image sandbox borrows
    base_rootfs: Path = Path("/nonexistent")


def cgroup_relpath(instance: str, env_id: str) -> str:
    """``lambdalet/<instance>/<env>``: one parent per server instance."""
    return "/".join(p for p in (cgroups.PARENT, instance, env_id) if p)


def instance_tag(data_dir: Path) -> str:
    """A short name for one server instance, stable for its data directory."""
    return hashlib.sha256(str(data_dir.resolve()).encode()).hexdigest()[:8]


def opt_mount(layer_dirs: Sequence[Path]) -> Mount | None:
    """/opt: nothing (the base's empty dir), one bind, or a lowerdir-only overlay."""
    if not layer_dirs:
        return None
    if len(layer_dirs) == 1:
        return Mount("/opt", str(layer_dirs[0]))
    # overlayfs: the first lowerdir is the top one, so the last layer goes first
    lower = ":".join(str(p) for p in reversed(layer_dirs))
    return Mount("/opt", "overlay", "overlay", (f"lowerdir={lower}", "ro", "nosuid", "nodev"))


def lang_source(lang_dir: Path | None, lang_layers: Sequence[Path]) -> str | None:
    """/var/lang's host source: the prefix, or ``overlay:<lowerdirs>`` with the layers on
    top (the last layer first, as overlayfs wants its top lowerdir first)."""
    if lang_dir is None:
        return None
    if not lang_layers:
        return str(lang_dir.resolve())
    dirs = [str(p.resolve()) for p in reversed(lang_layers)] + [str(lang_dir.resolve())]
    return "overlay:" + ":".join(dirs)


def source_mount(destination: str, source: str) -> Mount:
    """A read-only mount of a host dir or of an ``overlay:<lowerdirs>`` source."""
    if source.startswith("overlay:"):
        lower = source.removeprefix("overlay:")
        return Mount(
            destination, "overlay", "overlay", (f"lowerdir={lower}", "ro", "nosuid", "nodev")
        )
    return Mount(destination, source)


#: files of the base rootfs's /etc bound over an image's own (names of this sandbox)
IMAGE_ETC_FILES = ("hosts", "resolv.conf", "hostname")


def image_mounts(plan: BundlePlan) -> list[Mount]:
    """The mounts of an image sandbox beyond the kernel file systems: the compiled agent
    and the sandbox's name files.  The image brings everything else (no host /usr)."""
    if not plan.agent_compiled:
        raise SandboxError(
            "container image functions need the compiled sandbox agent (agent.c built "
            "statically with cc); it is not available on this host"
        )
    return [
        Mount(rootfs.AGENT_DIR, str(plan.agent_dir)),
        *(Mount(f"/etc/{name}", str(plan.base_rootfs / "etc" / name)) for name in IMAGE_ETC_FILES),
    ]


def oci_config(plan: BundlePlan) -> dict[str, Any]:
    """The OCI runtime config.json of one sandbox (pure)."""
    spec = plan.spec
    mounts = [
        Mount("/proc", "proc", "proc", ("nosuid", "noexec", "nodev")),
        Mount("/dev", "tmpfs", "tmpfs", ("nosuid", "strictatime", "mode=755", "size=65536k")),
        Mount(
            "/dev/pts",
            "devpts",
            "devpts",
            ("nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"),
        ),
        Mount(
            "/dev/shm",
            "shm",
            "tmpfs",
            ("nosuid", "noexec", "nodev", "mode=1777", f"size={DEV_SHM_MB}m"),
        ),
        Mount("/dev/mqueue", "mqueue", "mqueue", ("nosuid", "noexec", "nodev")),
        Mount("/sys", "sysfs", "sysfs", ("nosuid", "noexec", "nodev", "ro")),
    ]
    if spec.image_rootfs is not None:
        mounts += image_mounts(plan)
    else:
        mounts += [Mount("/usr", "/usr"), Mount(rootfs.AGENT_DIR, str(plan.agent_dir))]
        if not plan.agent_compiled:
            mounts.append(Mount(rootfs.AGENT_PYTHON_PREFIX, str(plan.agent_python_prefix)))
    if spec.image_rootfs is not None:
        pass
    elif plan.attach_dir is not None:
        mounts += [
            Mount(f"/{ATTACH_POINTS[name]}", str(plan.attach_dir / name), options=ATTACH_OPTIONS)
            for name in ATTACH_POINTS
        ]
    else:
        mounts.append(Mount("/var/task", str(spec.code_dir)))
        opt = opt_mount(spec.layer_dirs)
        if opt is not None:
            mounts.append(opt)
        if spec.runtime_dir is not None:
            mounts.append(Mount("/var/runtime", str(spec.runtime_dir)))
        lang = lang_source(spec.lang_dir, spec.lang_layers)
        if lang is not None:
            mounts.append(source_mount("/var/lang", lang))
    if plan.tmp_source is not None:
        mounts.append(
            Mount("/tmp", str(plan.tmp_source), options=("rbind", "rw", "nosuid", "nodev"))
        )
    else:
        mounts.append(
            Mount(
                "/tmp",
                "tmpfs",
                "tmpfs",
                ("nosuid", "nodev", "mode=1777", f"size={spec.ephemeral_mb}m"),
            )
        )
    memory: dict[str, int] = {"limit": spec.memory_mb * 1024 * 1024}
    if plan.cgroup_version == "v2":
        memory["swap"] = memory["limit"]  # runc: swap = memory+swap, so no swap
    no_caps: list[str] = []
    linux_extra: dict[str, Any] = {}
    if plan.seccomp is not None:
        linux_extra["seccomp"] = dict(plan.seccomp)
    return {
        "ociVersion": "1.0.2",
        "process": {
            "terminal": False,
            "user": {"uid": rootfs.SANDBOX_UID, "gid": rootfs.SANDBOX_GID},
            "args": [rootfs.AGENT_BINARY]
            if plan.agent_compiled
            else [plan.agent_python, "-I", "-S", "-B", rootfs.AGENT_SCRIPT],
            "env": [
                f"PATH={_DEFAULT_PATH}",
                *(
                    []
                    if plan.agent_compiled
                    else [f"LD_LIBRARY_PATH={rootfs.AGENT_PYTHON_PREFIX}/lib"]
                ),
                "LANG=C.UTF-8",
            ],
            "cwd": "/",
            "capabilities": {
                k: no_caps for k in ("bounding", "effective", "inheritable", "permitted", "ambient")
            },
            "rlimits": [
                {"type": "RLIMIT_NOFILE", "hard": spec.nofile_limit, "soft": spec.nofile_limit},
                {"type": "RLIMIT_NPROC", "hard": plan.nproc, "soft": plan.nproc},
            ],
            "noNewPrivileges": True,
            "oomScoreAdj": 500,
        },
        "root": {"path": str(spec.image_rootfs or plan.rootfs), "readonly": True},
        "hostname": spec.hostname,
        "mounts": [m.to_json() for m in mounts],
        "linux": {
            "namespaces": [
                {"type": "pid"},
                {"type": "mount"},
                {"type": "ipc"},
                {"type": "uts"},
                {"type": "network", "path": str(plan.netns_path)},
            ],
            "cgroupsPath": "/" + cgroup_relpath(plan.instance, plan.container_id or spec.env_id),
            "resources": {
                "devices": [{"allow": False, "access": "rwm"}],
                "memory": memory,
                "pids": {"limit": spec.pids_limit},
                # CPU weight proportional to memory, as Lambda (1769 MB = 1 vCPU); a
                # spare is built at the lowest weight so that it does not compete with the
                # cold starts and invokes in progress (attach sets the function's weight)
                "cpu": {
                    "shares": SPARE_CPU_SHARES
                    if plan.attach_dir is not None
                    else cpu_shares(spec.memory_mb)
                },
            },
            "maskedPaths": [
                "/proc/acpi",
                "/proc/asound",
                "/proc/kcore",
                "/proc/keys",
                "/proc/latency_stats",
                "/proc/timer_list",
                "/proc/timer_stats",
                "/proc/sched_debug",
                "/proc/scsi",
                "/sys/firmware",
            ],
            "readonlyPaths": [
                "/proc/bus",
                "/proc/fs",
                "/proc/irq",
                "/proc/sys",
                "/proc/sysrq-trigger",
            ],
            **linux_extra,
        },
    }


def agent_interpreter() -> tuple[Path, str]:
    """(host prefix to mount, interpreter path inside) for running the agent."""
    exe = Path(os.path.realpath(sys.executable))
    prefix = Path(os.path.realpath(sys.base_prefix))
    try:
        rel = exe.relative_to(prefix)
    except ValueError:
        raise SandboxError(f"python {exe} is not under its prefix {prefix}") from None
    return prefix, f"{rootfs.AGENT_PYTHON_PREFIX}/{rel}"


#: set (to anything) to run agent.py even where the compiled agent could be built
PYTHON_AGENT_ENV = "LAMBDALET_PYTHON_AGENT"

#: where every runc sandbox shows its directories
SANDBOX_VIEW = SandboxView(
    task_root="/var/task",
    opt_dir="/opt",
    runtime_dir="/var/runtime",
    lang_dir="/var/lang",
    tmp_dir="/tmp",
    runtime_api=f"{rootfs.SANDBOX_ADDR}:{rootfs.RUNTIME_API_PORT}",
)


def compile_agent(source: Path, binary: Path) -> str | None:
    """Build the compiled agent (static when the C library allows); None, or why not."""
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        return "no C compiler (cc) found"
    tmp = binary.with_name(f".{binary.name}.{os.getpid()}")
    flags = ["-O2", "-Wall", "-Werror", "-o", str(tmp), str(source)]
    err = ""
    for link in (["-static"], []):
        done = subprocess.run(
            [cc, *link, *flags], capture_output=True, text=True, timeout=60, check=False
        )
        if done.returncode == 0:
            tmp.chmod(0o755)
            tmp.rename(binary)
            return None
        err = done.stderr.strip().splitlines()[-1] if done.stderr.strip() else str(done.returncode)
    with contextlib.suppress(OSError):
        tmp.unlink()
    return f"{cc} failed: {err}"


def agent_message(msg: Sequence[Any]) -> bytes:
    """One host -> agent message (agent.py, agent.c): its fields joined by NUL bytes.

    A list is its length then its items; a dict its length then ``key=value`` items.
    """
    parts: list[str] = []
    for item in msg:
        if isinstance(item, (list, tuple)):
            parts += [str(len(item)), *map(str, item)]
        elif isinstance(item, dict):
            parts += [str(len(item)), *(f"{k}={v}" for k, v in item.items())]
        else:
            parts.append(str(item))
    if any("\0" in p for p in parts):
        raise SpawnError("a NUL byte in an argument, variable or directory")
    return b"\0".join(os.fsencode(p) for p in parts)


# ---------------------------------------------------------------------------
# /tmp images


async def _run(*argv: str, limit_s: float = 30.0) -> str:
    try:
        rc, out = await spawn.run(argv, limit_s)
    except spawn.ToolTimeout as e:
        raise SandboxError(str(e)) from None
    text = out.decode(errors="replace").strip()
    if rc != 0:
        raise SandboxError(f"{' '.join(argv[:3])}… failed ({rc}): {text}")
    return text


def mounts_under(directory: Path) -> list[str]:
    """Mount points at or below ``directory`` (from /proc/self/mounts)."""
    prefix = str(directory).rstrip("/") + "/"
    out = []
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/mounts").read_text().splitlines():
            mnt = line.split()[1].replace("\\040", " ")
            if mnt == prefix[:-1] or mnt.startswith(prefix):
                out.append(mnt)
    return out


def mount_point_of(path: str) -> str:
    """The mount point of the file system holding ``path`` (longest match)."""
    best = "/"
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/mounts").read_text().splitlines():
            mnt = line.split()[1].replace("\\040", " ")
            if (path == mnt or path.startswith(mnt.rstrip("/") + "/")) and len(mnt) > len(best):
                best = mnt
    return best


def _allocate(path: Path, size: int) -> None:
    """Allocate every block of ``path`` (contents kept: unwritten extents read as before)."""
    fd = os.open(path, os.O_WRONLY)
    try:
        os.posix_fallocate(fd, 0, size)
    finally:
        os.close(fd)


def _sparse_file(path: Path, size: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        f.truncate(size)


class TmpImages:
    """Per-size templates of an empty ext4 /tmp, copied sparsely per sandbox."""

    def __init__(self, templates_dir: Path) -> None:
        self.dir = templates_dir
        self._locks: dict[int, asyncio.Lock] = {}

    async def template(self, size_mb: int) -> Path:
        path = self.dir / f"ext4-{size_mb}m.img"
        lock = self._locks.setdefault(size_mb, asyncio.Lock())
        async with lock:
            if path.exists():
                return path
            tmp = path.with_suffix(f".{os.getpid()}.tmp")
            await asyncio.to_thread(_sparse_file, tmp, size_mb * 1024 * 1024)
            await _run(
                "mkfs.ext4",
                "-q",
                "-F",
                "-m",
                "0",
                "-O",
                "^has_journal",
                "-E",
                f"root_owner={rootfs.SANDBOX_UID}:{rootfs.SANDBOX_GID},"
                "lazy_itable_init=1,nodiscard",
                str(tmp),
            )
            mnt = self.dir / f"mnt-{os.getpid()}"
            mnt.mkdir(exist_ok=True)
            await _run("mount", "-o", "loop", str(tmp), str(mnt))
            try:
                with contextlib.suppress(OSError):
                    (mnt / "lost+found").rmdir()
                mnt.chmod(0o1777)
            finally:
                await _run("umount", str(mnt))
                mnt.rmdir()
            tmp.rename(path)
            return path

    async def make(self, size_mb: int, image: Path, mountpoint: Path) -> None:
        template = await self.template(size_mb)
        await _run("cp", "--sparse=always", str(template), str(image))
        # a sparse image would accept writes the data disk cannot hold (the loop device then
        # fails them, and an acknowledged write is lost): its blocks are allocated up front
        try:
            await asyncio.to_thread(_allocate, image, size_mb * 1024 * 1024)
        except OSError as e:
            with contextlib.suppress(OSError):
                os.unlink(image)
            if e.errno in (errno.ENOSPC, errno.EDQUOT):
                raise SandboxError(
                    f"no space left on the data disk to reserve {size_mb} MB for /tmp "
                    "(EphemeralStorage)"
                ) from e
            raise
        os.mkdir(mountpoint)
        await _run("mount", "-o", "loop,nosuid,nodev,noatime", str(image), str(mountpoint))


# ---------------------------------------------------------------------------
# the sandbox


def _no_log(role: ProcessRole, name: str, line: bytes) -> None:
    pass


def _no_exit(exit: ProcessExit) -> None:
    pass


def _set_done(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


@dataclass
class _Child:
    pid: int
    role: ProcessRole
    name: str
    logs: LogPipe


class RuncSandbox:
    """One runc container; the host side of its agent connection.

    A *spare* (``attach_dir`` set) is built before any function needs it; :meth:`attach`
    later gives it the function's spec: mounts on the host side of the shared attach
    points propagate into the running container, and the cgroup limits are written.
    """

    def __init__(
        self,
        backend: RuncBackend,
        spec: SandboxSpec,
        env_dir: Path,
        on_log: LogSink,
        on_exit: ExitSink,
        *,
        attach_dir: Path | None = None,
    ) -> None:
        self.backend = backend
        self.spec = spec
        #: container, cgroup and netns name: fixed at build time (a spare keeps its own)
        self.cid = spec.env_id
        self.env_dir = env_dir
        self.attach_dir = attach_dir
        #: what is mounted at each attach point now (host source), for spares
        self.attached: dict[str, str | None] = dict.fromkeys(ATTACH_POINTS)
        self._on_log = on_log
        self._on_exit = on_exit
        self.net = netns.NetNamespace(f"{backend.tag}-{spec.env_id}")
        self.cgroup: cgroups.Cgroup | None = None
        self._ctl: socket.socket | None = None
        self._agent_pid: int | None = None
        self._seq = 0
        self._pending: dict[int, asyncio.Future[tuple[str, int]]] = {}
        self._ready: asyncio.Future[None] | None = None
        self._children: dict[int, _Child] = {}
        self._frozen = False
        self._destroyed = False
        self._agent_dead = False
        self._tmp_mounted = False
        #: the last output of runc and of the agent (bounded, see OutputTail)
        self._output: OutputTail | None = None
        #: a pre-started runtime waiting to be told what to become: (pid, ctl fd, log fd)
        self._prestart: tuple[int, int, int] | None = None
        self._dead_prestarts: set[int] = set()
        #: exits the agent reported before the spawn that started the process returned
        self._early_exits: dict[int, tuple[int | None, int | None]] = {}
        #: serialises changes of the attach points (attach vs. preparing a waiting spare)
        self._attach_lock = asyncio.Lock()
        self._view = SANDBOX_VIEW

    def __repr__(self) -> str:
        state = "destroyed" if self._destroyed else "frozen" if self._frozen else "running"
        return f"RuncSandbox({self.spec.env_id!r}, {state}, children={sorted(self._children)})"

    # -- building ---------------------------------------------------------

    async def _start(self) -> None:
        b = self.backend
        spec = self.spec
        self.env_dir.mkdir(parents=True)
        (self.env_dir / MARKER).touch()
        bundle = self.env_dir / "bundle"
        bundle.mkdir()

        async def tmp() -> Path | None:
            if b.loop_tmp:
                await b.tmp_images.make(
                    spec.ephemeral_mb, self.env_dir / "tmp.img", self.env_dir / "tmp"
                )
                self._tmp_mounted = True
                return self.env_dir / "tmp"
            return None

        async def attach_points() -> None:
            if self.attach_dir is not None:
                await b.make_attach_points(self.attach_dir)

        t0 = time.monotonic()
        _, tmp_source, _ = await asyncio.gather(self._network(), tmp(), attach_points())
        t1 = time.monotonic()
        plan = BundlePlan(
            spec=spec,
            rootfs=b.base_rootfs,
            netns_path=self.net.path,
            cgroup_version=b.cgsys.version,
            agent_python=b.agent_python,
            agent_python_prefix=b.agent_prefix,
            agent_dir=b.agent_dir,
            agent_compiled=b.agent_compiled,
            tmp_source=tmp_source,
            nproc=nproc_limit(),
            instance=b.tag,
            attach_dir=self.attach_dir,
            container_id=self.cid,
            seccomp=b.seccomp,
            base_rootfs=b.base_rootfs,
        )
        (bundle / "config.json").write_text(json.dumps(self._config(plan), indent=1))

        host, agent = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self._ctl = host
        pid_file = self.env_dir / "agent.pid"
        loop = asyncio.get_running_loop()
        self._ready = loop.create_future()
        host.setblocking(False)
        loop.add_reader(host.fileno(), self._on_ctl)
        # runc's messages and the agent's stdout and stderr (which a function can open
        # as /proc/1/fd/1) go into a pipe of which only the last few KiB are kept
        out_r, out_w = os.pipe2(os.O_CLOEXEC)
        self._output = OutputTail(out_r)
        try:
            try:
                rc, _ = await spawn.run(
                    [
                        *b.runc_cmd("run", "--detach", "--pid-file", str(pid_file)),
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
            await asyncio.wait_for(self._ready, AGENT_READY_TIMEOUT_S)
        except TimeoutError:
            raise SandboxError(f"sandbox agent did not start: {self._log_tail()}") from None
        t3 = time.monotonic()
        if self.attach_dir is not None:
            try:
                # the directories most functions use, ready before any function asks.
                # Mounted once the container runs: its attach points are then slaves of
                # the empty shared dirs, so a later remount (another Python version, or
                # another language layer) propagates; a mount made before `runc run`
                # would be copied itself and the container would never see a remount.
                await self._mount_attached(b.likely_mounts())
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

    async def _network(self) -> None:
        """Before ``runc run``: the namespace, and host access (hook: rootless joins
        runc's namespace after the run instead)."""
        await asyncio.to_thread(self.net.create)
        if self.backend.host_network:
            await self.net.start_host_access(self.env_dir)

    def _config(self, plan: BundlePlan) -> dict[str, Any]:
        """config.json (hook: the rootless backend adds its user namespace)."""
        return oci_config(plan)

    async def _after_run(self) -> None:
        """Once ``runc run`` returned (hook: the rootless backend joins its network)."""

    def fits(self, spec: SandboxSpec) -> bool:
        """True when this spare can become a sandbox of ``spec`` by :meth:`attach`."""
        return (
            self.attach_dir is not None
            and not self._destroyed
            and not self._agent_dead
            and spec.ephemeral_mb == self.spec.ephemeral_mb
            and spec.hostname == self.spec.hostname
            and spec.nofile_limit == self.spec.nofile_limit
            and spec.image_rootfs is None
            and not (self._prestart is not None and self._runtime_differs(spec))
        )

    def _runtime_differs(self, spec: SandboxSpec) -> bool:
        # a runtime pre-started from the mounted dirs may still hold them when it is killed,
        # and an unmount that propagates into a container skips a busy mount: never remount
        want = self.backend.mounts_for(spec)
        return any(want[k] != self.attached[k] for k in ("runtime", "lang"))

    async def prepare_likely(self) -> None:
        """A waiting spare: mount the likely runtime and pre-start it (best effort)."""
        async with self._attach_lock:
            if self._destroyed or self._prestart is not None or not self.backend.owns_spare(self):
                return
            try:
                await self._mount_attached(self.backend.likely_mounts())
                await self.prestart_runtime()
            except (SandboxError, SpawnError, OSError) as e:
                logger.warning("preparing a spare sandbox failed: %s", e)

    async def attach(self, spec: SandboxSpec, on_log: LogSink, on_exit: ExitSink) -> None:
        """Make this spare the sandbox of ``spec``: mounts, then the cgroup's limits."""
        async with self._attach_lock:
            await self._attach(spec, on_log, on_exit)

    async def _attach(self, spec: SandboxSpec, on_log: LogSink, on_exit: ExitSink) -> None:
        assert self.cgroup is not None and self.attach_dir is not None
        self.spec = spec
        self._on_log = on_log
        self._on_exit = on_exit
        want = self.backend.mounts_for(spec)
        assert self._prestart is None or not self._runtime_differs(spec)
        await self._mount_attached(want)
        limit = spec.memory_mb * 1024 * 1024
        cg = self.cgroup
        cg.set_memory_limit(limit)
        cg.set_pids_limit(spec.pids_limit)
        cg.set_cpu_shares(cpu_shares(spec.memory_mb))
        cg.reset_memory_peak()

    async def _mount_attached(self, want: Mapping[str, str | None]) -> None:
        """Bring the attach points to ``want`` (host source per point; None = empty)."""
        assert self.attach_dir is not None
        jobs = []
        for name, source in want.items():
            if self.attached[name] != source:
                jobs.append(self._remount(name, source))
        await asyncio.gather(*jobs)

    async def _remount(self, name: str, source: str | None) -> None:
        assert self.attach_dir is not None
        point = str(self.attach_dir / name)
        if self.attached[name] is not None:
            await _run("umount", point)
            self.attached[name] = None
        if source is not None:
            await self.backend.mount_readonly(source, point)
            self.attached[name] = source

    def _log_tail(self) -> str:
        if self._output is None:
            return "(no output)"
        return self._output.text() or "(no output)"

    # -- agent connection -------------------------------------------------

    def _on_ctl(self) -> None:
        assert self._ctl is not None
        while True:
            try:
                data = self._ctl.recv(256)
            except BlockingIOError:
                return
            except OSError:
                data = b""
            if not data:
                self._agent_gone()
                return
            self._handle(data)

    def _handle(self, data: bytes) -> None:
        try:
            words = data.decode("ascii").split()
            kind, nums = words[0], [int(w) for w in words[1:]]
        except (UnicodeDecodeError, ValueError, IndexError):
            return  # the agent is not trusted; ignore garbage
        if kind == "R" and self._ready is not None and not self._ready.done():
            self._ready.set_result(None)
        elif kind in ("S", "E", "K") and nums:
            fut = self._pending.pop(nums[0], None)
            if fut is not None and not fut.done():
                fut.set_result((kind, nums[1] if len(nums) > 1 else 0))
        elif kind == "X" and len(nums) == 3:
            pid, code, sig = nums
            self._child_exited(pid, None if code < 0 else code, None if sig < 0 else sig)

    def _child_exited(self, pid: int, code: int | None, sig: int | None) -> None:
        if self._prestart is not None and pid == self._prestart[0]:
            self._drop_prestart()
            return
        child = self._children.pop(pid, None)
        if child is None:
            # it exited before its spawn's answer was acted on (the agent's "spawned" and
            # "exited" messages were read together): reported once it is watched
            self._early_exits[pid] = (code, sig)
            return
        if self.cgroup is not None:
            self.cgroup.sample()
        child.logs.drain()
        self._on_exit(ProcessExit(pid, child.role, child.name, code, sig))

    def _agent_gone(self) -> None:
        if self._agent_dead:
            return
        self._agent_dead = True
        if self._ctl is not None:
            asyncio.get_running_loop().remove_reader(self._ctl.fileno())
        # PID 1 of the namespace died: the kernel killed everything inside.
        for pid in list(self._children):
            self._child_exited(pid, None, signal.SIGKILL)
        err = SandboxError(f"sandbox agent exited: {self._log_tail()}")
        for fut in self._pending.values():
            if not fut.done():
                fut.set_exception(err)
        self._pending.clear()
        if self._ready is not None and not self._ready.done():
            self._ready.set_exception(err)

    async def _send(self, msg: tuple[Any, ...], fds: Sequence[int] = ()) -> None:
        if self._destroyed or self._agent_dead or self._ctl is None:
            raise SandboxError(f"sandbox {self.spec.env_id} is not running")
        data = agent_message(msg)
        loop = asyncio.get_running_loop()
        while True:
            try:
                socket.send_fds(self._ctl, [data], list(fds))
                return
            except BlockingIOError:
                writable: asyncio.Future[None] = loop.create_future()
                loop.add_writer(self._ctl.fileno(), _set_done, writable)
                try:
                    await writable
                finally:
                    loop.remove_writer(self._ctl.fileno())
            except OSError as e:
                raise SandboxError(f"sandbox agent unreachable: {e}") from e

    async def _request(self, msg: tuple[Any, ...], fds: Sequence[int] = ()) -> tuple[str, int]:
        fut: asyncio.Future[tuple[str, int]] = asyncio.get_running_loop().create_future()
        self._pending[msg[1]] = fut
        try:
            await self._send(msg, fds)
        except BaseException:
            self._pending.pop(msg[1], None)
            raise
        return await fut

    def _next_seq(self) -> int:
        self._seq += 1
        return self._seq

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
            self.backend.learn_runtime_env(env)
            if self._prestart is not None and cwd == self._view.task_root:
                return self._activate_prestart(role, name, argv, env, cwd)
        pid, r = await self._spawn_raw(argv, env, cwd)
        self._watch(pid, role, name, r)
        return pid

    def _bootstrap_path(self) -> str:
        return f"{self._view.runtime_dir}/bootstrap"

    def _watch(self, pid: int, role: ProcessRole, name: str, r: int) -> None:
        def on_line(line: bytes) -> None:
            self._on_log(role, name, line)

        self._children[pid] = _Child(pid, role, name, LogPipe(r, on_line))
        early = self._early_exits.pop(pid, None)
        if early is not None:
            # after the spawn has returned its pid to the caller, who then expects the exit
            asyncio.get_running_loop().call_soon(self._child_exited, pid, *early)

    async def _spawn_raw(
        self, argv: list[str], env: dict[str, str], cwd: str, ctl: int | None = None
    ) -> tuple[int, int]:
        """Start a process through the agent; returns (pid, read end of its output)."""
        r, w = os.pipe2(os.O_CLOEXEC)
        seq = self._next_seq()
        try:
            kind, value = await self._request(
                ("spawn", seq, argv, env, cwd), [w] if ctl is None else [w, ctl]
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
        runtime = self.attached.get("runtime")
        if runtime is None and self.attach_dir is None and self.spec.runtime_dir is not None:
            runtime = str(self.spec.runtime_dir)  # built for its function: /var/runtime is it
        env = self.backend.prestart_env()
        if runtime is None or env is None or self._prestart is not None:
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
        self._prestart = (pid, cw, r)

    def _activate_prestart(
        self, role: ProcessRole, name: str, argv: list[str], env: dict[str, str], cwd: str
    ) -> int:
        assert self._prestart is not None
        pid, cw, r = self._prestart
        self._prestart = None
        try:
            os.write(cw, marshal.dumps((argv, env, cwd)))  # small: fits in the pipe
        except OSError:
            pass  # it died meanwhile: its exit is reported as the runtime's
        finally:
            os.close(cw)
        self._watch(pid, role, name, r)
        if pid in self._dead_prestarts:
            self._dead_prestarts.discard(pid)
            self._child_exited(pid, None, signal.SIGKILL)
        return pid

    def _drop_prestart(self) -> None:
        if self._prestart is not None:
            pid, cw, r = self._prestart
            self._prestart = None
            os.close(cw)
            os.close(r)
            self._dead_prestarts.add(pid)
            self._early_exits.pop(pid, None)

    async def signal(self, pid: int, sig: int) -> None:
        with contextlib.suppress(SandboxError):
            await self._send(("signal", int(pid), int(sig)))

    async def kill_all(self) -> None:
        if self._destroyed or self._agent_dead:
            return
        self.thaw()
        seq = self._next_seq()
        try:
            await asyncio.wait_for(self._request(("killall", seq)), KILL_TIMEOUT_S)
        except (TimeoutError, SandboxError):
            # the agent is stuck or gone: kill through the cgroup, spare the agent
            if self.cgroup is not None:
                keep = [self._agent_pid] if self._agent_pid else []
                await asyncio.to_thread(self.cgroup.kill_all, keep)
            for pid in list(self._children):
                self._child_exited(pid, None, signal.SIGKILL)

    async def prepare_restart(self) -> None:
        """After a reset, pre-start the runtime again.

        The next Init then activates it instead of starting an interpreter: the first
        invoke after a crash or a timeout costs what a cold start on a spare costs.
        """
        if self._destroyed or self._agent_dead:
            return
        try:
            async with self._attach_lock:
                await self.prestart_runtime()
        except (SandboxError, SpawnError, OSError) as e:
            logger.warning("pre-starting the runtime after a reset failed: %s", e)

    def freeze(self) -> None:
        if self.cgroup is None or self._destroyed:
            return
        self.cgroup.sample()
        # no waiting for FROZEN: this runs on the invoke path, and a thaw cancels a freeze
        self.cgroup.freeze()
        self._frozen = True

    def thaw(self) -> None:
        if self.cgroup is None or self._destroyed or not self._frozen:
            return
        self.cgroup.thaw()
        self._frozen = False

    def memory_peak_bytes(self) -> int:
        return self.cgroup.memory_peak() if self.cgroup is not None else 0

    def oom_kills(self) -> int:
        return self.cgroup.oom_kills() if self.cgroup is not None else 0

    async def destroy(self) -> None:
        if self._destroyed:
            return
        self._destroyed = True
        self.backend._forget(self)
        errors: list[str] = []
        loop = asyncio.get_running_loop()
        if self.cgroup is not None:
            with contextlib.suppress(OSError, cgroups.CgroupError):
                await asyncio.to_thread(self.cgroup.kill_all)
        if self._ctl is not None:
            with contextlib.suppress(ValueError, OSError):
                loop.remove_reader(self._ctl.fileno())
            self._ctl.close()
        self._drop_prestart()
        for pid in list(self._children):
            self._child_exited(pid, None, signal.SIGKILL)
        for fut in self._pending.values():
            if not fut.done():
                fut.set_exception(SandboxError("sandbox destroyed"))
        self._pending.clear()
        if self._ready is not None and not self._ready.done():
            self._ready.cancel()
        try:
            await self.backend.delete_container(self.cid)
        except SandboxError as e:
            errors.append(str(e))
        self._reap_agent()
        if self._output is not None:
            self._output.close()
        await self.net.remove()
        if self._tmp_mounted or await asyncio.to_thread(os.path.ismount, self.env_dir / "tmp"):
            try:
                await _run("umount", str(self.env_dir / "tmp"))
            except SandboxError as e:
                errors.append(str(e))
                with contextlib.suppress(SandboxError):
                    await _run("umount", "-l", str(self.env_dir / "tmp"))
        if self.attach_dir is not None and await asyncio.to_thread(
            os.path.ismount, self.attach_dir
        ):
            try:
                await _run("umount", "-R", str(self.attach_dir))
            except SandboxError as e:
                errors.append(str(e))
                with contextlib.suppress(SandboxError):
                    await _run("umount", "-R", "-l", str(self.attach_dir))
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


# ---------------------------------------------------------------------------
# the backend


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
        #: how many spare sandboxes to keep built and running (0: build on demand only)
        self.spares_wanted = spares
        #: the /tmp size of spares (a function asking for another size gets a new sandbox)
        self.spare_ephemeral_mb = spare_ephemeral_mb
        self.data_dir = config.data_dir.resolve()
        self.envs_dir = config.envs_dir.resolve()
        self.state_dir = self.data_dir / "runc"
        self.tag = instance_tag(self.data_dir)
        self.cgsys = cgsys if cgsys is not None else cgroups.detect()
        self.host_network = host_network
        self.runc = runc
        self._reasons = tuple(reasons)
        self._warnings: list[str] = []
        self.loop_tmp = True
        self.tmp_images = TmpImages(self.data_dir / "tmp-templates")
        self.agent_prefix, self.agent_python = agent_interpreter()
        #: set by _install_agent: sandboxes run the compiled agent (agent.c)
        self.agent_compiled = False
        self._base_rootfs: Path | None = None
        self._agent_dir: Path | None = None
        self._started = False
        self._start_lock = asyncio.Lock()
        self._sandboxes: dict[str, RuncSandbox] = {}
        self._spares: list[RuncSandbox] = []
        self._spares_building = 0
        self._refill_task: asyncio.Task[None] | None = None
        self._closing = False
        #: the runtime and language dirs of the latest sandbox: spares mount them in advance
        self._likely: dict[str, str | None] = {"runtime": None, "lang": str(self.agent_prefix)}
        self._likely_env: dict[str, str] | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._ro_views: dict[str, Path] = {}
        self._ro_lock = asyncio.Lock()
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
        return [self.runc, "--root", str(self.state_dir), *args]

    @property
    def base_rootfs(self) -> Path:
        assert self._base_rootfs is not None
        return self._base_rootfs

    @property
    def agent_dir(self) -> Path:
        assert self._agent_dir is not None
        return self._agent_dir

    def info(self) -> BackendInfo:
        warnings = list(self._warnings)
        if not self.host_network:
            warnings.append("sandboxes have no network access (host network access disabled)")
        return BackendInfo(
            backend="runc",
            isolation="full",
            cgroup=self.cgsys.version,
            network="namespace",
            reasons=self._reasons,
            warnings=tuple(warnings),
            agent=("compiled" if self.agent_compiled else "python") if self._started else "",
            spares_ready=len(self._spares),
            spares_wanted=self.spares_wanted,
            protections=self._protections,
        )

    def add_warning(self, warning: str) -> None:
        self._warnings.append(warning)

    async def start(self) -> None:
        """Sweep leftovers of a crashed run, build the shared rootfs (once), start spares."""
        await self._ensure_started()
        self._refill()

    async def _ensure_started(self) -> None:
        async with self._start_lock:
            if self._started:
                return
            await asyncio.to_thread(self.sweep)
            net = rootfs.NetworkNames(
                host_addr=netns.SLIRP_HOST if self.host_network else None,
                dns=netns.SLIRP_DNS if self.host_network else None,
            )
            self._base_rootfs = await asyncio.to_thread(
                rootfs.ensure_base_rootfs, self.data_dir / "rootfs", net
            )
            self._agent_dir = await asyncio.to_thread(self._install_agent)
            try:
                if self.loop_tmp:
                    await self.tmp_images.template(512)
            except (SandboxError, OSError) as e:
                self.loop_tmp = False
                self._warnings.append(
                    f"/tmp is a tmpfs (counts against memory), loop-mounted ext4 failed: {e}"
                )
            self._started = True

    def _install_agent(self) -> Path:
        """``rapid/<hash>/``: agent.py, agent.c and, when the host has a C compiler, the
        compiled agent (``agent``), which every sandbox then runs as PID 1 instead."""
        here = Path(__file__).parent
        sources = {name: (here / name).read_bytes() for name in ("agent.py", "agent.c")}
        digest = hashlib.sha256(b"".join(sources.values())).hexdigest()[:16]
        d = self.data_dir / "rapid" / digest
        if not (d / "agent.py").exists():
            d.mkdir(parents=True, exist_ok=True)
            for name, text in sources.items():
                tmp = d / f".{name}.{os.getpid()}"
                tmp.write_bytes(text)
                tmp.chmod(0o644)
                tmp.rename(d / name)
            d.chmod(0o755)
        binary = d / "agent"
        if os.environ.get(PYTHON_AGENT_ENV):
            # the fallback on purpose (troubleshooting, comparisons)
            self._warnings.append(
                "the sandbox agent runs on Python (3.3 MB more per sandbox): "
                f"{PYTHON_AGENT_ENV} is set"
            )
            self.agent_compiled = False
            return d
        if not binary.exists():
            problem = compile_agent(d / "agent.c", binary)
            if problem is not None:
                self._warnings.append(
                    f"the sandbox agent runs on Python (3.3 MB more per sandbox): {problem}"
                )
        self.agent_compiled = binary.exists()
        return d

    async def create(self, spec: SandboxSpec, on_log: LogSink, on_exit: ExitSink) -> Sandbox:
        await self._ensure_started()
        if spec.env_id in self._sandboxes:
            raise SandboxError(f"sandbox {spec.env_id} exists")
        self._learn(spec)
        spare = self._take_spare(spec)
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
                self._refill(REFILL_DELAY_S)
                return spare
        sb = self.sandbox_class(self, spec, self.envs_dir / spec.env_id, on_log, on_exit)
        self._sandboxes[spec.env_id] = sb
        try:
            await sb._start()
        except BaseException as e:
            with contextlib.suppress(Exception):
                await sb.destroy()
            if isinstance(e, (SandboxError, asyncio.CancelledError)):
                raise
            raise SandboxError(f"cannot create sandbox {spec.env_id}: {e}") from e
        finally:
            self._refill()
        return sb

    # -- spare sandboxes -------------------------------------------------

    def spare_count(self) -> int:
        """Spare sandboxes built and waiting (for tests and the benchmark)."""
        return len(self._spares)

    async def wait_spares(self, timeout_s: float = 30.0) -> None:
        """Wait until the wanted number of spares is ready (tests, the benchmark)."""
        self._refill()
        deadline = asyncio.get_running_loop().time() + timeout_s
        while len(self._spares) < self.spares_wanted:
            if asyncio.get_running_loop().time() > deadline:
                raise SandboxError("spare sandboxes were not built in time")
            await asyncio.sleep(0.01)

    def _learn(self, spec: SandboxSpec) -> None:
        self._learn_dirs(spec.runtime_dir, spec.lang_dir, spec.lang_layers)

    def _learn_dirs(
        self, runtime_dir: Path | None, lang_dir: Path | None, lang_layers: Sequence[Path] = ()
    ) -> None:
        if runtime_dir is not None:
            self._likely["runtime"] = str(runtime_dir.resolve())
        if lang_dir is not None:
            self._likely["lang"] = lang_source(lang_dir, lang_layers)

    def likely_mounts(self) -> dict[str, str | None]:
        return dict(self._likely)

    def spare_view(self) -> SandboxView | None:
        return SANDBOX_VIEW if self.spares_wanted > 0 else None

    def expect_runtime(
        self,
        runtime_dir: Path | None,
        lang_dir: Path | None,
        env: Mapping[str, str],
        lang_layers: Sequence[Path] = (),
    ) -> None:
        """Before any function ran (server start): the runtime spares should pre-start."""
        if self._likely["runtime"] is not None:
            return  # a function already told us
        self._learn_dirs(runtime_dir, lang_dir, lang_layers)
        self.learn_runtime_env(env)

    def learn_runtime_env(self, env: Mapping[str, str]) -> None:
        """Remember the start-up part of the latest runtime's environment (for spares).

        When it changes, the waiting spares get the likely runtime mounted and pre-started.
        """
        learned = {k: env[k] for k in PRESTART_ENV_KEYS if k in env}
        if learned == self._likely_env:
            return
        self._likely_env = learned
        for sb in self._spares:
            task = asyncio.get_running_loop().create_task(sb.prepare_likely())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    def prestart_env(self) -> dict[str, str] | None:
        return dict(self._likely_env) if self._likely_env is not None else None

    def mounts_for(self, spec: SandboxSpec) -> dict[str, str | None]:
        """The host source of each attach point for ``spec``."""
        layers = [str(p.resolve()) for p in spec.layer_dirs]
        opt: str | None = None
        if len(layers) == 1:
            opt = layers[0]
        elif layers:
            opt = "overlay:" + ":".join(reversed(layers))
        return {
            "task": str(spec.code_dir.resolve()),
            "opt": opt,
            "runtime": str(spec.runtime_dir.resolve()) if spec.runtime_dir else None,
            "lang": lang_source(spec.lang_dir, spec.lang_layers),
        }

    def owns_spare(self, sb: RuncSandbox) -> bool:
        return sb in self._spares

    def _take_spare(self, spec: SandboxSpec) -> RuncSandbox | None:
        for i, sb in enumerate(self._spares):
            if sb.fits(spec):
                del self._spares[i]
                return sb
        return None

    def _refill(self, delay_s: float = 0.0) -> None:
        if self._closing or self.spares_wanted <= 0:
            return
        if self._refill_task is None or self._refill_task.done():
            self._refill_task = asyncio.get_running_loop().create_task(self._refill_loop(delay_s))

    async def _refill_loop(self, delay_s: float = 0.0) -> None:
        if delay_s > 0:
            await asyncio.sleep(delay_s)
        failures = 0
        while not self._closing and len(self._spares) < self.spares_wanted and failures < 3:
            sid = f"spare-{os.urandom(5).hex()}"
            spec = SandboxSpec(
                env_id=sid,
                memory_mb=SPARE_MEMORY_MB,
                ephemeral_mb=self.spare_ephemeral_mb,
                code_dir=self.envs_dir,  # not mounted: the attach points stand in
                layer_dirs=(),
                runtime_dir=None,
                lang_dir=None,
            )
            env_dir = self.envs_dir / sid
            sb = RuncSandbox(self, spec, env_dir, _no_log, _no_exit, attach_dir=env_dir / "attach")
            self._sandboxes[sid] = sb
            try:
                await sb._start()
            except BaseException as e:  # a spare is an optimisation: log, retry a little
                with contextlib.suppress(Exception):
                    await sb.destroy()
                self._sandboxes.pop(sid, None)
                if not isinstance(e, Exception):
                    raise
                failures += 1
                logger.warning("building a spare sandbox failed: %s", e)
                continue
            self._sandboxes.pop(sid, None)
            if self._closing:
                with contextlib.suppress(Exception):
                    await sb.destroy()
                return
            self._spares.append(sb)

    async def make_attach_points(self, attach_dir: Path) -> None:
        """A small shared tmpfs holding one empty directory per attach point."""
        await asyncio.to_thread(attach_dir.mkdir)
        await _run(
            "mount",
            "--make-shared",
            "-t",
            "tmpfs",
            "-o",
            "size=64k,mode=755,nosuid,nodev",
            "lambdalet-attach",
            str(attach_dir),
        )
        for name in ATTACH_POINTS:
            (attach_dir / name).mkdir(mode=0o755)

    async def _ro_view(self, mount_point: str) -> Path:
        """A private, read-only bind of one host mount, made once.

        Binding *from* a read-only mount gives a read-only mount in a single step, so
        the copy that propagates into a container is read-only from its first moment.
        """
        async with self._ro_lock:
            view = self._ro_views.get(mount_point)
            if view is not None:
                return view
            view = self.envs_dir / ".ro" / hashlib.sha256(mount_point.encode()).hexdigest()[:12]
            await asyncio.to_thread(view.mkdir, 0o700, True, True)
            if not await asyncio.to_thread(os.path.ismount, view):
                await _run("mount", "--bind", "--make-private", mount_point, str(view))
                await _run("mount", "-o", "remount,bind,ro,nosuid,nodev", str(view))
            self._ro_views[mount_point] = view
            return view

    async def mount_readonly(self, source: str, target: str) -> None:
        """Mount ``source`` (a directory, or ``overlay:<lowerdirs>``) read-only at ``target``."""
        if source.startswith("overlay:"):
            lower = source.removeprefix("overlay:")
            await _run(
                "mount",
                "-t",
                "overlay",
                "overlay",
                "-o",
                f"lowerdir={lower},ro,nosuid,nodev",
                target,
            )
            return
        mp = mount_point_of(source)
        view = await self._ro_view(mp)
        rel = PurePath(source).relative_to(mp)
        await _run("mount", "--bind", str(view / rel), target)

    def _forget(self, sb: RuncSandbox) -> None:
        if self._sandboxes.get(sb.spec.env_id) is sb:
            del self._sandboxes[sb.spec.env_id]
        if sb in self._spares:
            self._spares.remove(sb)

    async def delete_container(self, container_id: str) -> None:
        rc, err = await spawn.run(
            self.runc_cmd("delete", "--force", container_id),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        text = err.decode(errors="replace")
        if rc != 0 and "does not exist" not in text:
            raise SandboxError(f"runc delete {container_id}: {text.strip()}")

    async def close(self) -> None:
        self._closing = True
        if self._refill_task is not None:
            # not cancelled: the spare being built is finished, then destroyed, by the loop
            with contextlib.suppress(Exception):
                await self._refill_task
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        spares, self._spares = self._spares, []
        for sb in [*spares, *self._sandboxes.values()]:
            with contextlib.suppress(SandboxError):
                await sb.destroy()
        for view in self._ro_views.values():
            with contextlib.suppress(SandboxError, OSError):
                await _run("umount", str(view))
                view.rmdir()
        self._ro_views.clear()
        with contextlib.suppress(OSError):
            (self.envs_dir / ".ro").rmdir()

    def sweep(self) -> list[str]:
        """Remove what a crashed earlier run left: containers, netns, mounts, cgroups.

        Blocking; runs once before the first sandbox is made.  Returns what it removed.
        """
        removed: list[str] = []
        if self.state_dir.is_dir():
            out = subprocess.run(
                self.runc_cmd("list", "-q"), capture_output=True, text=True, check=False
            )
            for cid in out.stdout.split():
                subprocess.run(self.runc_cmd("delete", "--force", cid), capture_output=True)
                removed.append(f"container {cid}")
        if self.envs_dir.is_dir():
            for env_dir in self.envs_dir.iterdir():
                if not (env_dir / MARKER).exists():
                    continue
                pid_file = env_dir / "slirp4netns.pid"
                with contextlib.suppress(OSError, ValueError):
                    pid = int(pid_file.read_text())
                    cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
                    if b"slirp4netns" in cmdline and env_dir.name.encode() in cmdline:
                        os.kill(pid, signal.SIGKILL)
                        removed.append(f"slirp4netns {pid}")
        for name in netns.list_ours():
            # only this instance's: another server on this host keeps its own
            if not name.startswith(f"{netns.PREFIX}{self.tag}-"):
                continue
            netns.remove_netns(name)
            removed.append(f"netns {name}")
        prefix = str(self.envs_dir) + "/"
        with contextlib.suppress(OSError):
            mounts = [
                line.split()[1].replace("\\040", " ")
                for line in Path("/proc/self/mounts").read_text().splitlines()
            ]
            for mnt in sorted((m for m in mounts if m.startswith(prefix)), reverse=True):
                subprocess.run(["umount", "-l", mnt], capture_output=True)
                removed.append(f"mount {mnt}")
        for cg in self.cgsys.children(cgroup_relpath(self.tag, "")):
            with contextlib.suppress(cgroups.CgroupError, OSError):
                cg.remove()
                removed.append(f"cgroup {cg!r}")
        if self.envs_dir.is_dir():
            for env_dir in self.envs_dir.iterdir():
                # never recurse into a mount that survived: it may be a function's code
                if (env_dir / MARKER).exists() and not mounts_under(env_dir):
                    shutil.rmtree(env_dir, ignore_errors=True)
        return removed
