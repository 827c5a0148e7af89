"""The OCI runtime config (``config.json``) of one runc sandbox: pure, unit-tested.

:func:`oci_config` turns a :class:`BundlePlan` (every host path it needs, resolved by
the backend) into the JSON runc reads: the mounts of the sandbox's view, its limits,
namespaces, seccomp filter and the agent as PID 1.
"""

from __future__ import annotations

import hashlib
import resource
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import cgroups, rootfs
from ..base import SandboxError, SandboxSpec, SandboxView


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


def attach_sources(spec: SandboxSpec) -> dict[str, str | None]:
    """The host source of each attach point of a spare that becomes ``spec``'s sandbox."""
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


#: where every runc sandbox shows its directories
SANDBOX_VIEW = SandboxView(
    task_root="/var/task",
    opt_dir="/opt",
    runtime_dir="/var/runtime",
    lang_dir="/var/lang",
    tmp_dir="/tmp",
    runtime_api=f"{rootfs.SANDBOX_ADDR}:{rootfs.RUNTIME_API_PORT}",
)
