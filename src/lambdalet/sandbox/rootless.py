"""The rootless runc backend: runc sandboxes for a server that does not run as root.

Each sandbox is the runc backend's container (same read-only root, ``/var/task``,
``/opt``, ``/var/runtime``, ``/var/lang``, seccomp filter, no capabilities) plus a user
namespace of its own (userns.py: the function runs as uid 993 inside, a subordinate uid
of the server's user outside, one per environment), and with what root would have done
on the host done differently:

* **Network**: runc makes the network namespace (owned by the sandbox's user namespace).
  Once ``runc run`` returned, :class:`RootlessNet` enters it through ``nsenter`` to give
  ``lo`` the Runtime API's address and hand back its listening socket (netns_helper.py),
  and starts slirp4netns inside the sandbox's user namespace as uid
  :data:`userns.HOST_ACCESS_INSIDE`, i.e. the first subordinate uid outside: the uid the
  server's guard refuses (peers.py), as uid 64993 is for the root backend.
* **/tmp**: a tmpfs capped at EphemeralStorage (a user namespace may mount one; a loop
  device needs root).  It counts against the host's memory, not the data disk.
* **Limits**: without a delegated cgroup subtree, the substitutes of
  limits_substitutes.py: ``RLIMIT_NPROC`` per environment uid, ``RLIMIT_DATA`` per
  process, SIGSTOP/SIGCONT freezing.  No spare sandboxes (their attach points are host
  mounts).
"""

from __future__ import annotations

import array
import asyncio
import contextlib
import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from lambdalet.config import ServerConfig

from . import cgroups, limits_substitutes, netns, peers, spawn, userns
from .base import (
    BackendInfo,
    Capability,
    ExitSink,
    LogSink,
    ProcessRole,
    SandboxError,
    SandboxSpec,
)
from .rootfs import RUNTIME_API_PORT, SANDBOX_ADDR
from .runc import BundlePlan, RuncBackend, RuncSandbox, oci_config
from .runc.host import SandboxHost
from .runc.state import SandboxState

HELPER = Path(__file__).with_name("netns_helper.py")
HELPER_TIMEOUT_S = 10.0


def rootless_config(
    config: dict[str, Any], mapping: userns.Mapping, *, nproc: int, data_bytes: int
) -> dict[str, Any]:
    """The runc backend's config.json made rootless (pure): a user namespace with
    ``mapping``, a network namespace of its own, no cgroup, rlimits in place of limits."""
    linux = dict(config["linux"])
    linux["namespaces"] = [
        *(ns for ns in linux["namespaces"] if ns["type"] not in ("network", "user")),
        {"type": "network"},
        {"type": "user"},
    ]
    linux.update(mapping.to_oci())
    linux.pop("cgroupsPath", None)
    linux.pop("resources", None)
    process = dict(config["process"])
    rlimits = [r for r in process["rlimits"] if r["type"] not in ("RLIMIT_NPROC", "RLIMIT_DATA")]
    rlimits += [
        {"type": "RLIMIT_NPROC", "hard": nproc, "soft": nproc},
        {"type": "RLIMIT_DATA", "hard": data_bytes, "soft": data_bytes},
    ]
    process["rlimits"] = rlimits
    # overlayfs in a user namespace reads its marks from user.* attributes (userxattr):
    # the language layer's opaque site-packages dirs (runtimes/python.py)
    mounts = [
        {**m, "options": [*m["options"], "userxattr"]} if m["type"] == "overlay" else m
        for m in config["mounts"]
    ]
    return {**config, "linux": linux, "process": process, "mounts": mounts}


#: V8 (Node.js 24) reserves about 0.5 GB of writable address space for its code at start,
#: which RLIMIT_DATA counts: Node.js runtimes get this much more (measured: Node 24 needs
#: ~600 MB to start, Node 22 less than 128 MB)
V8_RESERVE_MB = 1024


def data_limit(memory_mb: int, runtime_dir: Path | None = None) -> int:
    """RLIMIT_DATA for a function of ``memory_mb``: its memory size, per process (plus
    :data:`V8_RESERVE_MB` for a Node.js runtime)."""
    # runtimes/<runtime id>/runtime (runtimes/node.py)
    node = runtime_dir is not None and any(p.startswith("nodejs") for p in runtime_dir.parts)
    return (memory_mb + (V8_RESERVE_MB if node else 0)) * 1024 * 1024


def _receive_socket(ctl: socket.socket) -> socket.socket:
    fds = array.array("i")
    _, anc, _, _ = ctl.recvmsg(1, socket.CMSG_LEN(fds.itemsize))
    for level, kind, data in anc:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds.frombytes(data[: fds.itemsize])
    if not fds:
        raise SandboxError("the namespace helper ended without a socket")
    return socket.socket(fileno=fds[0])


class RootlessNet(netns.NetNamespace):
    """The network of one rootless sandbox: runc's namespace, joined after ``runc run``."""

    def __init__(self, env_id: str, host_network: bool) -> None:
        super().__init__(env_id)
        self.path = Path("/nonexistent")  # runc makes the namespace: no name on the host
        self.host_network = host_network
        self._helper: subprocess.Popen[bytes] | None = None
        self._ctl: socket.socket | None = None
        self._exit_w: int | None = None

    def create(self) -> socket.socket:
        raise NotImplementedError("a rootless sandbox's namespace is joined, see join()")

    async def join(self, pid: int, run_dir: Path) -> None:
        """Configure the namespace of the sandbox whose agent is host pid ``pid``."""
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self._ctl = ours
        try:
            self._helper = await spawn.start(
                [
                    *("nsenter", f"--target={pid}", "--user", "--net", "--"),
                    *("sh", "-c", 'ip addr add "$0/32" dev lo && exec "$@"', SANDBOX_ADDR),
                    *(sys.executable, "-I", "-S", str(HELPER), str(theirs.fileno())),
                    *(SANDBOX_ADDR, str(RUNTIME_API_PORT)),
                ],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                pass_fds=(theirs.fileno(),),
                start_new_session=True,
            )
        finally:
            theirs.close()
        ours.settimeout(HELPER_TIMEOUT_S)
        try:
            self.runtime_api_socket = await asyncio.to_thread(_receive_socket, ours)
        except (OSError, SandboxError) as e:
            err = b""
            if self._helper.stderr is not None:
                with contextlib.suppress(OSError):
                    self._helper.kill()
                    err = self._helper.stderr.read()
            raise SandboxError(
                f"cannot set up the sandbox's network: {e} {err.decode(errors='replace')}"
            ) from None
        self.runtime_api_socket.setblocking(False)
        if self.host_network:
            await self._start_slirp(pid, run_dir)

    async def _start_slirp(self, pid: int, run_dir: Path) -> None:
        inside = str(userns.HOST_ACCESS_INSIDE)
        caps = netns.SLIRP_CAPS
        ready_r, ready_w = os.pipe2(os.O_CLOEXEC)
        # slirp4netns exits when this pipe's write end (ours) closes: with the server (so
        # a crashed server's sweep finds none left)
        exit_r, self._exit_w = os.pipe2(os.O_CLOEXEC)
        net_fd = os.open(f"/proc/{pid}/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        log_path = run_dir / "slirp4netns.log"
        log = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        try:
            self._slirp = await spawn.start(
                [
                    *("nsenter", f"--target={pid}", "--user", "--"),
                    *("setpriv", f"--reuid={inside}", f"--regid={inside}", "--clear-groups"),
                    f"--inh-caps=-all,{caps}",
                    f"--ambient-caps=-all,{caps}",
                    f"--bounding-set=-all,{caps}",
                    *("--", "slirp4netns", *netns.slirp_seccomp()),
                    *("--configure", "--mtu=65520", f"--cidr={netns.SLIRP_CIDR}"),
                    f"--ready-fd={ready_w}",
                    f"--exit-fd={exit_r}",
                    *("--netns-type=path", f"/proc/self/fd/{net_fd}", "tap0"),
                ],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=log,
                pass_fds=(ready_w, exit_r, net_fd),
                start_new_session=True,
            )
        except BaseException:
            os.close(ready_r)
            raise
        finally:
            for fd in (ready_w, exit_r, net_fd, log):
                os.close(fd)
        (run_dir / "slirp4netns.pid").write_text(str(self._slirp.pid))
        try:
            await spawn.readable(ready_r, 5.0)
            ok = os.read(ready_r, 1)
        except (TimeoutError, OSError):
            ok = b""
        finally:
            os.close(ready_r)
        if ok != b"1":
            await self.stop_host_access()
            raise SandboxError(f"slirp4netns failed: {log_path.read_text(errors='replace')}")

    def socket_inside(self, family: int = socket.AF_INET) -> socket.socket:
        if self._ctl is None:
            raise SandboxError("the sandbox's network is not set up")
        self._ctl.send(b"6" if family == socket.AF_INET6 else b"4")
        return _receive_socket(self._ctl)

    async def stop_host_access(self) -> None:
        if self._exit_w is not None:
            os.close(self._exit_w)
            self._exit_w = None
        await super().stop_host_access()

    def remove_sync(self) -> None:
        if self.runtime_api_socket is not None:
            self.runtime_api_socket.close()
            self.runtime_api_socket = None
        if self._ctl is not None:
            self._ctl.close()  # the helper reads EOF and ends
            self._ctl = None

    async def remove(self) -> None:
        await self.stop_host_access()
        self.remove_sync()
        helper, self._helper = self._helper, None
        if helper is not None:
            await spawn.stop(helper, 1.0)
            if helper.stderr is not None:
                helper.stderr.close()


class RootlessSandbox(RuncSandbox):
    """A runc sandbox in a user namespace of its own (see the module's docstring)."""

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
        if attach_dir is not None:
            raise SandboxError("rootless sandboxes have no spares")
        super().__init__(host, spec, env_dir, on_log, on_exit)
        assert isinstance(host, RootlessBackend)
        self.rootless = host
        self.slot = host.slots.take()
        self.mapping = userns.mapping(
            host.user.uid, host.user.gid, host.subuids, host.subgids, self.slot
        )
        self.net = RootlessNet(f"{host.tag}-{spec.env_id}", host.host_network)
        self._stopped: set[int] = set()
        self._limits_logged = False
        self._peak = 0

    async def _network(self) -> None:
        pass  # runc makes the namespace; joined in _after_run

    def _config(self, plan: BundlePlan) -> dict[str, Any]:
        return rootless_config(
            oci_config(plan),
            self.mapping,
            nproc=self.spec.pids_limit,
            data_bytes=data_limit(self.spec.memory_mb, self.spec.runtime_dir),
        )

    async def _after_run(self) -> None:
        self.cgroup = None
        assert self._agent_pid is not None
        net = self.net
        assert isinstance(net, RootlessNet)
        await net.join(self._agent_pid, self.env_dir)

    async def spawn(
        self,
        role: ProcessRole,
        name: str,
        argv: Sequence[str],
        env: Mapping[str, str],
        cwd: str,
    ) -> int:
        pid = await super().spawn(role, name, argv, env, cwd)
        if not self._limits_logged:
            # once per environment, in the function's own log: what is weaker than Lambda
            self._limits_logged = True
            for warning in LIMIT_WARNINGS:
                self._on_log(role, "lambdalet", f"lambdalet: WARNING: {warning}\n".encode())
        return pid

    def freeze(self) -> None:
        if self._state is not SandboxState.RUNNING or self._agent_pid is None:
            return
        self._sample()
        self._stopped = limits_substitutes.stop_tree(self._agent_pid)
        self._to(SandboxState.FROZEN)

    def _sample(self) -> int:
        if self._agent_pid is not None and self._state.alive:
            tree = limits_substitutes.descendants(self._agent_pid, limits_substitutes.parents())
            self._peak = max(self._peak, limits_substitutes.rss_bytes(tree))
        return self._peak

    def memory_peak_bytes(self) -> int:
        """Approximate: sampled (limits_substitutes.py), not a cgroup's exact peak."""
        return self._sample()

    def thaw(self) -> None:
        if self._state is not SandboxState.FROZEN or self._agent_pid is None:
            return
        limits_substitutes.continue_tree(self._agent_pid, self._stopped)
        self._stopped = set()
        self._to(SandboxState.RUNNING)

    async def destroy(self) -> None:
        if self._state is SandboxState.DESTROYED:
            return
        try:
            await super().destroy()
        finally:
            self.rootless.slots.give_back(self.slot)


def protections(seccomp_note: str, host_network: bool, host_access_uid: int) -> tuple[str, ...]:
    """What ``lambdalet doctor`` lists for rootless sandboxes (docs/security.md)."""
    control = (
        f"control plane: refused to sandboxes (host access runs as subordinate uid "
        f"{host_access_uid}; code URLs are presigned and expire)"
        if host_network
        else "control plane: unreachable (sandboxes have no host access)"
    )
    return (
        seccomp_note,
        control,
        "capabilities: none; no_new_privs; read-only root; user, PID, mount, IPC, UTS, "
        "network namespaces; the function's uid is a subordinate uid of its own",
        "agent (PID 1): not traceable (non-dumpable), its output a bounded pipe",
        "pids: RLIMIT_NPROC of the environment's own uid (enforced)",
        "/tmp: tmpfs capped at EphemeralStorage (enforced; counts against host memory)",
        "memory: NOT enforced as a sandbox total (no delegated cgroup v2 subtree); "
        "RLIMIT_DATA per process at the function's memory size (Node.js: 1 GB more, for "
        "V8's reservations); Max Memory Used is sampled from /proc (approximate)",
        "freezing: SIGSTOP/SIGCONT of the sandbox's processes (no cgroup freezer)",
        "cpu: NOT weighted (no cgroup)",
    )


#: what the server logs once at start and each function's log once at init
LIMIT_WARNINGS = (
    "rootless sandbox without a delegated cgroup: memory is bounded per process "
    "(RLIMIT_DATA), not for the sandbox; CPU is not weighted; freezing is SIGSTOP",
)


def capabilities(seccomp_on: bool) -> frozenset[Capability]:
    """What rootless sandboxes enforce without a delegated cgroup: no memory limit or
    accounting, no cgroup freezer (SIGSTOP stands in), no container images."""
    lacks = {
        Capability.MEMORY_LIMIT,
        Capability.MEMORY_ACCOUNTING,
        Capability.FREEZER,
        Capability.CONTAINER_IMAGES,
    }
    if not seccomp_on:
        lacks.add(Capability.SECCOMP)
    return frozenset(Capability) - lacks


class RootlessBackend(RuncBackend):
    """Makes rootless runc sandboxes (see the module's docstring)."""

    sandbox_class = RootlessSandbox
    try_loop_tmp = False

    def __init__(self, config: ServerConfig, host: userns.Host, **kw: Any) -> None:
        kw["spares"] = 0
        if "cgsys" not in kw:
            try:
                kw["cgsys"] = cgroups.detect()
            except cgroups.CgroupError:  # none mounted: nothing of it is used rootless
                kw["cgsys"] = cgroups.CgroupSystem("v2", {"": Path("/nonexistent")})
        super().__init__(config, **kw)
        #: the server's user and its subordinate ids
        self.user = host
        self.subuids = userns.largest(host.subuids)
        self.subgids = userns.largest(host.subgids)
        self.slots = userns.SlotPool(userns.slots(self.subuids, self.subgids))
        peers.add_host_access_uid(self.subuids.start)
        self._protections = protections(self._protections[0], self.host_network, self.subuids.start)
        self._warnings.extend(LIMIT_WARNINGS)
        if shutil.which("nsenter") is None:
            raise SandboxError("nsenter not found (apt-get install util-linux)")

    def info(self) -> BackendInfo:
        base = super().info()
        return BackendInfo(
            backend="rootless",
            isolation=base.isolation,
            cgroup="none",
            network=base.network,
            reasons=base.reasons,
            warnings=base.warnings,
            agent=base.agent,
            protections=base.protections,
            capabilities=capabilities(self.seccomp is not None),
        )
