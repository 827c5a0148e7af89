"""The sandbox contract: what an execution environment needs from the OS.

A *backend* makes sandboxes; a *sandbox* is one isolated place (namespaces,
cgroup, filesystem view) in which the platform starts and kills processes.
The lifecycle code talks to sandboxes only through this interface, so every
backend (runc, process) passes the same contract tests.

Paths in :class:`SandboxSpec` are host paths; :meth:`Sandbox.view` says where
the processes inside see them (``/var/task`` in a real sandbox, the host path
itself in the ``process`` backend).
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Protocol

#: Optional pre-start protocol of a runtime directory.  When the runtime dir shown at
#: ``view.runtime_dir`` holds an executable of this name, a backend that keeps spare
#: sandboxes may start it before any function is known, with the environment restricted
#: to :data:`PRESTART_ENV_KEYS` (values of the latest runtime started), cwd = task root
#: and a pipe on fd 3.  A later ``spawn`` of ``<runtime_dir>/bootstrap`` then writes
#: ``marshal.dumps((argv, env, cwd))`` to that pipe, closes it and returns the
#: pre-started process's pid: the process becomes exactly that runtime, or execs
#: ``argv`` with ``env`` in ``cwd`` when it cannot (same pid either way).
PRESTART_FILE = "lambdalet-prestart"
#: The only variables a pre-started runtime sees before it is told its environment:
#: the platform's defaults that shape an interpreter's start-up and the (fixed) address
#: of the Runtime API, which awslambdaric's C client reads once, when it is imported;
#: none of a function's own.
PRESTART_ENV_KEYS = (
    "AWS_LAMBDA_RUNTIME_API",
    "PATH",
    "LD_LIBRARY_PATH",
    "LANG",
    "TZ",
    "PWD",
    "PYTHONPATH",
    "LAMBDA_TASK_ROOT",
    "LAMBDA_RUNTIME_DIR",
)


class ProcessRole(StrEnum):
    RUNTIME = "runtime"
    EXTENSION = "extension"


@dataclass(frozen=True)
class SandboxSpec:
    """Everything a backend needs to build one sandbox."""

    env_id: str  # unique, [a-z0-9-], also used for cgroup / netns names
    memory_mb: int
    ephemeral_mb: int  # size cap of /tmp
    code_dir: Path  # unpacked function code, shown read-only at /var/task
    layer_dirs: Sequence[Path]  # unpacked layers, merged in order (later wins) at /opt
    runtime_dir: Path | None  # managed runtime files, shown read-only at /var/runtime
    lang_dir: Path | None  # a language prefix (e.g. a Python install), read-only at /var/lang
    pids_limit: int = 1024
    nofile_limit: int = 1024
    hostname: str = "sandbox"
    #: laid over ``lang_dir`` at /var/lang (later on top), e.g. one hiding the install's
    #: site-packages; only backends with mounts apply them
    lang_layers: Sequence[Path] = ()
    #: a container image function: this unpacked image is the whole root (read-only), in
    #: place of the shared base with the host's /usr and the code, layer and runtime dirs
    image_rootfs: Path | None = None


@dataclass(frozen=True)
class SandboxView:
    """Where processes inside the sandbox see the spec's directories."""

    task_root: str  # /var/task
    opt_dir: str  # /opt
    runtime_dir: str  # /var/runtime
    lang_dir: str  # /var/lang
    tmp_dir: str  # /tmp
    runtime_api: str  # host:port of the in-sandbox APIs, e.g. 169.254.100.1:9001


@dataclass(frozen=True)
class ProcessExit:
    pid: int
    role: ProcessRole
    name: str
    #: exit status when it exited normally, else None
    exit_code: int | None
    #: signal number when it was killed by a signal, else None
    signal: int | None

    def describe(self) -> str:
        """The phrase AWS uses in ``Runtime.ExitError`` messages."""
        if self.signal is not None:
            import signal as _signal

            try:
                name = _signal.Signals(self.signal).name
            except ValueError:
                return f"signal: {self.signal}"
            return "signal: " + _SIGNAL_WORDS.get(name, name.lower())
        return f"exit status {self.exit_code}"


_SIGNAL_WORDS = {
    "SIGKILL": "killed",
    "SIGTERM": "terminated",
    "SIGSEGV": "segmentation fault",
    "SIGABRT": "aborted",
    "SIGBUS": "bus error",
    "SIGILL": "illegal instruction",
    "SIGFPE": "floating point exception",
    "SIGPIPE": "broken pipe",
    "SIGINT": "interrupt",
    "SIGHUP": "hangup",
    "SIGQUIT": "quit",
}


class Capability(StrEnum):
    """One protection or limit of Lambda's that a backend enforces.

    Each backend declares the set it has (:attr:`BackendInfo.capabilities`); what is not
    in it, the backend lacks (and says why in its warnings).  ``lambdalet doctor``, the
    admin ``backend`` endpoint and the contract tests read this set.
    """

    #: MemorySize is the sandbox's memory limit; the OOM killer's kills are counted
    MEMORY_LIMIT = "memory-limit"
    #: Max Memory Used is the whole sandbox's peak (not an approximation)
    MEMORY_ACCOUNTING = "memory-accounting"
    #: a cap on processes and threads (a fork bomb stops there)
    PIDS_LIMIT = "pids-limit"
    #: freezing suspends every process inside at once (cgroup freezer)
    FREEZER = "freezer"
    #: its own network namespace: sandbox.localdomain, ports of its own
    PRIVATE_NETWORK = "private-network"
    #: /tmp holds at most EphemeralStorage
    TMP_CAP = "tmp-cap"
    #: the root, /var/task, /opt and /var/runtime are read-only
    READ_ONLY_ROOT = "read-only-root"
    #: the host's files are out of sight (a root of its own)
    PRIVATE_FILESYSTEM = "private-filesystem"
    #: functions run as Lambda's sandbox user, with no capabilities
    SANDBOX_USER = "sandbox-user"
    #: a seccomp filter refuses the system calls Lambda refuses
    SECCOMP = "seccomp"
    #: container image functions (a whole root file system) can run
    CONTAINER_IMAGES = "container-images"


@dataclass(frozen=True)
class BackendInfo:
    """What ``lambdalet doctor`` prints, and what the server logs at start."""

    backend: str  # "runc" | "process"
    isolation: str  # "full" | "none"
    cgroup: str  # "v1" | "v2" | "none"
    network: str  # "namespace" | "host"
    reasons: Sequence[str] = field(default_factory=tuple)  # why this backend and mode were chosen
    warnings: Sequence[str] = field(default_factory=tuple)  # what is weaker than Lambda
    agent: str = ""  # PID 1 of a sandbox: "compiled" | "python" ("" where there is none)
    spares_ready: int = 0  # spare sandboxes built and waiting
    spares_wanted: int = 0
    #: the protections in force, one sentence each (docs/security.md)
    protections: Sequence[str] = field(default_factory=tuple)
    #: what it enforces as Lambda does (see :class:`Capability`)
    capabilities: frozenset[Capability] = frozenset()


#: Called with (role, process name, one line of output including its newline).
LogSink = Callable[[ProcessRole, str, bytes], None]
#: Called once per process that ended.
ExitSink = Callable[[ProcessExit], None]


class Sandbox(Protocol):
    """One isolated execution environment's OS side.  Not thread-safe; one owner."""

    @property
    def view(self) -> SandboxView: ...

    @property
    def runtime_api_socket(self) -> socket.socket:
        """A listening TCP socket on which the platform serves the in-sandbox APIs.

        Processes inside reach it at ``view.runtime_api``.
        """
        ...

    def socket_inside(self, family: int = socket.AF_INET) -> socket.socket:
        """A new, unconnected TCP socket living in the sandbox's network namespace.

        The platform uses it to reach listeners inside (telemetry subscribers on
        ``sandbox.localdomain``).  In the ``process`` backend it is a plain socket.
        """
        ...

    async def spawn(
        self,
        role: ProcessRole,
        name: str,
        argv: Sequence[str],
        env: Mapping[str, str],
        cwd: str,
    ) -> int:
        """Start a process inside, in its own process group; returns its pid.

        Raises ``SpawnError`` when the file cannot be executed.
        """
        ...

    async def signal(self, pid: int, sig: int) -> None:
        """Send ``sig`` to the process group of ``pid`` (no error if gone)."""
        ...

    async def kill_all(self) -> None:
        """SIGKILL every process inside except the sandbox's own supervisor, and wait for them."""
        ...

    async def prepare_restart(self) -> None:
        """After a reset: get ready to start the runtime again (e.g. pre-start it)."""
        ...

    def freeze(self) -> None:
        """Suspend every process inside (cgroup freezer).  Must be cheap."""
        ...

    def thaw(self) -> None:
        """Resume every process inside.  Must be cheap."""
        ...

    def memory_peak_bytes(self) -> int:
        """Highest memory use of the whole sandbox so far."""
        ...

    def oom_kills(self) -> int:
        """How many processes the kernel's OOM killer has killed in this sandbox."""
        ...

    async def destroy(self) -> None:
        """Kill everything, release cgroup, mounts, /tmp and network; idempotent."""
        ...


class SpawnError(Exception):
    """The sandbox could not execute a file (missing, not executable, bad interpreter)."""


class SandboxError(Exception):
    """The backend failed to build or operate a sandbox."""


class SandboxBackend(Protocol):
    def info(self) -> BackendInfo: ...

    async def create(self, spec: SandboxSpec, on_log: LogSink, on_exit: ExitSink) -> Sandbox:
        """Build and start a sandbox; it holds no function processes yet."""
        ...

    async def close(self) -> None:
        """Destroy every sandbox this backend made and release shared resources."""
        ...

    def spare_view(self) -> SandboxView | None:
        """How a spare sandbox will show its directories; None: this backend keeps none."""
        ...

    def expect_runtime(
        self,
        runtime_dir: Path | None,
        lang_dir: Path | None,
        env: Mapping[str, str],
        lang_layers: Sequence[Path] = (),
    ) -> None:
        """A runtime the next functions will likely use: spares mount and pre-start it."""
        ...
