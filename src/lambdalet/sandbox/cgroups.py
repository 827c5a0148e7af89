"""Cgroup v1 and v2 behind one interface, version detected at run time.

The runc backend lets runc create each sandbox's cgroup from ``cgroupsPath``
(``/lambdalet/<env_id>``) and then operates on the very same directories by
plain file writes: freezing and thawing are on the invoke hot path, so they
must cost one ``write(2)``, not a process spawn.

Kernel facts this relies on (Documentation/admin-guide/cgroup-v1/*.rst and
cgroup-v2.rst):

* v1 freezer: writing ``FROZEN`` to ``freezer.state`` starts freezing; the
  state reads ``FREEZING`` until every task is stopped.  v2: writing ``1`` to
  ``cgroup.freeze``; ``cgroup.events`` shows ``frozen 1`` once done.
* v2 ``cgroup.kill`` (5.14+) SIGKILLs every task and is safe against forks.
  v1 has no such file; a frozen cgroup cannot fork, so freeze, SIGKILL every
  pid in ``cgroup.procs``, thaw is race-free.
* Peak memory: v1 ``memory.max_usage_in_bytes``; v2 ``memory.peak`` (5.19+),
  else we sample ``memory.current``.
* OOM kills: v1 ``memory.oom_control`` line ``oom_kill`` (4.13+); v2
  ``memory.events`` line ``oom_kill``.
"""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import time
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")
#: the parent of every sandbox cgroup, relative to each hierarchy's root
PARENT = "lambdalet"
#: "not looked up yet" for a cached path that may also be None
_UNKNOWN = Path("/nonexistent/lambdalet-unknown")
#: v1 controllers a sandbox needs
V1_REQUIRED = ("memory", "pids", "freezer")
#: v2 controllers a sandbox needs (freezing is built into v2's core)
V2_REQUIRED = ("memory", "pids")


_V1_CONTROLLERS = frozenset(
    {
        "blkio",
        "cpu",
        "cpuacct",
        "cpuset",
        "devices",
        "freezer",
        "hugetlb",
        "memory",
        "misc",
        "net_cls",
        "net_prio",
        "perf_event",
        "pids",
        "rdma",
    }
)


class CgroupError(Exception):
    """Cgroups are missing or unusable here."""


@dataclass(frozen=True)
class CgroupSystem:
    """Which cgroup version this host uses and where its hierarchies are."""

    version: str  # "v1" | "v2"
    #: v2: {"": root}; v1: {controller: mount point}, one entry per controller
    mounts: Mapping[str, Path]

    def group(self, relpath: str) -> Cgroup:
        """The cgroup at ``relpath`` (e.g. ``lambdalet/abc``) in every hierarchy."""
        relpath = relpath.strip("/")
        if self.version == "v2":
            return CgroupV2(self.mounts[""] / relpath)
        return CgroupV1({c: m / relpath for c, m in self.mounts.items()})

    def children(self, relpath: str = PARENT) -> list[Cgroup]:
        """The child cgroups of ``relpath`` that exist in any hierarchy."""
        names: set[str] = set()
        for mount in set(self.mounts.values()):
            parent = mount / relpath
            with contextlib.suppress(OSError):
                names.update(p.name for p in parent.iterdir() if p.is_dir())
        return [self.group(f"{relpath}/{n}") for n in sorted(names)]

    def check(self) -> None:
        """Raise :class:`CgroupError` unless we can create sandboxes' cgroups here."""
        needed = V2_REQUIRED if self.version == "v2" else V1_REQUIRED
        if self.version == "v2":
            root = self.mounts[""]
            try:
                available = (root / "cgroup.controllers").read_text().split()
            except OSError as e:
                raise CgroupError(f"cannot read {root}/cgroup.controllers: {e}") from e
            missing = [c for c in needed if c not in available]
            if missing:
                raise CgroupError(f"cgroup v2 controllers not available: {', '.join(missing)}")
            if not os.access(root, os.W_OK):
                raise CgroupError(f"{root} is not writable (not root, or a read-only mount)")
        else:
            missing = [c for c in needed if c not in self.mounts]
            if missing:
                raise CgroupError(f"cgroup v1 controllers not mounted: {', '.join(missing)}")
            for c in needed:
                if not os.access(self.mounts[c], os.W_OK):
                    raise CgroupError(f"{self.mounts[c]} is not writable")


def parse_mounts(mounts_text: str, root: Path = CGROUP_ROOT) -> CgroupSystem:
    """Work out the cgroup layout from ``/proc/mounts`` text.

    Same rule as runc: v2 only when ``root`` itself is a cgroup2 mount (pure
    v2); a hybrid host (v1 controllers plus an empty ``unified``) is v1.
    """
    v1: dict[str, Path] = {}
    v2_root: Path | None = None
    for line in mounts_text.splitlines():
        fields = line.split()
        if len(fields) < 4:
            continue
        mnt, fstype, opts = Path(_unescape(fields[1])), fields[2], fields[3].split(",")
        if fstype == "cgroup2" and mnt == root:
            v2_root = mnt
        elif fstype == "cgroup":
            for opt in opts:
                if opt.startswith("name="):
                    v1.setdefault(opt, mnt)  # a named hierarchy (runc joins it too)
                elif opt in _V1_CONTROLLERS:
                    v1.setdefault(opt, mnt)
    if v2_root is not None:
        return CgroupSystem("v2", {"": v2_root})
    if v1:
        return CgroupSystem("v1", v1)
    raise CgroupError("no cgroup file system is mounted")


def detect() -> CgroupSystem:
    """The layout of this host (reads ``/proc/self/mounts``)."""
    try:
        text = Path("/proc/self/mounts").read_text()
    except OSError as e:
        raise CgroupError(f"cannot read /proc/self/mounts: {e}") from e
    return parse_mounts(text)


def _unescape(field: str) -> str:
    return field.replace("\\040", " ").replace("\\011", "\t").replace("\\012", "\n")


def _read_int(path: Path) -> int:
    return int(path.read_text().strip())


def _read_key(path: Path, key: str) -> int:
    """The value of ``key`` in a flat-keyed file such as ``memory.events``."""
    for line in path.read_text().splitlines():
        k, _, v = line.partition(" ")
        if k == key:
            return int(v)
    return 0


def _write(path: Path, value: str) -> None:
    with open(path, "w") as f:
        f.write(value)


class Cgroup(ABC):
    """One sandbox's cgroup, in whatever hierarchies this host has."""

    version: str

    def __init__(self) -> None:
        self._sampled_peak = 0
        #: control files the invoke path touches, kept open: (path, mode) -> fd
        self._fds: dict[tuple[Path, int], int] = {}
        self._peak_file: Path | None = _UNKNOWN

    def _fd(self, path: Path, mode: int) -> int:
        fd = self._fds.get((path, mode))
        if fd is None:
            fd = os.open(path, mode | os.O_CLOEXEC)
            self._fds[(path, mode)] = fd
        return fd

    def write_hot(self, path: Path, value: bytes) -> None:
        """Write a control file through a kept-open descriptor (freeze and thaw)."""
        try:
            os.pwrite(self._fd(path, os.O_WRONLY), value, 0)
        except OSError:
            # e.g. the descriptor went stale: drop it and write the ordinary way once
            self.close_files()
            _write(path, value.decode())

    def read_int_hot(self, path: Path) -> int:
        """Read an integer control file through a kept-open descriptor (memory peak)."""
        return int(os.pread(self._fd(path, os.O_RDONLY), 64, 0).strip())

    def close_files(self) -> None:
        fds, self._fds = list(self._fds.values()), {}
        for fd in fds:
            with contextlib.suppress(OSError):
                os.close(fd)

    @property
    @abstractmethod
    def paths(self) -> list[Path]:
        """Every directory of this cgroup (one in v2, one per hierarchy in v1)."""

    def exists(self) -> bool:
        return any(p.is_dir() for p in self.paths)

    @abstractmethod
    def create(self) -> None: ...

    @abstractmethod
    def set_memory_limit(self, limit_bytes: int) -> None: ...

    @abstractmethod
    def set_pids_limit(self, limit: int) -> None: ...

    @abstractmethod
    def set_cpu_shares(self, shares: int) -> None:
        """CPU weight in v1 ``cpu.shares`` units (converted for v2); no-op without cpu."""

    @abstractmethod
    def reset_memory_peak(self) -> None:
        """Start "highest use so far" again from now (a spare becoming a function's)."""

    @abstractmethod
    def _write_freeze(self, frozen: bool) -> None: ...

    @abstractmethod
    def is_frozen(self) -> bool:
        """True once every task is stopped (not merely being frozen)."""

    def freeze(self, wait_s: float = 0.0) -> None:
        """Freeze; with ``wait_s`` also wait (spin) until the kernel says frozen."""
        self._write_freeze(True)
        if wait_s > 0:
            deadline = time.monotonic() + wait_s
            while not self.is_frozen() and time.monotonic() < deadline:
                time.sleep(0.0002)

    def thaw(self) -> None:
        self._write_freeze(False)

    @abstractmethod
    def memory_current(self) -> int: ...

    @abstractmethod
    def _memory_peak_file(self) -> Path | None: ...

    def memory_peak(self) -> int:
        """Highest memory use so far (sampled ``memory.current`` if the kernel has no peak)."""
        # read for every REPORT: the file's path is worked out once
        if self._peak_file is _UNKNOWN:
            self._peak_file = self._memory_peak_file()
        peak_file = self._peak_file
        if peak_file is not None:
            with contextlib.suppress(OSError, ValueError):
                return self.read_int_hot(peak_file)
        with contextlib.suppress(OSError, ValueError):
            self._sampled_peak = max(self._sampled_peak, self.memory_current())
        return self._sampled_peak

    def sample(self) -> None:
        """Record the current use for the sampling fallback of :meth:`memory_peak`."""
        if self._memory_peak_file() is None:
            with contextlib.suppress(OSError, ValueError):
                self._sampled_peak = max(self._sampled_peak, self.memory_current())

    @abstractmethod
    def oom_kills(self) -> int: ...

    @abstractmethod
    def procs(self) -> list[int]:
        """Host pids of every process in the cgroup."""

    def kill_all(self, keep: Iterable[int] = ()) -> None:
        """SIGKILL every process except ``keep``: freeze, kill, thaw (fork-safe)."""
        keep_set = set(keep)
        self.freeze(wait_s=1.0)
        try:
            for pid in self.procs():
                if pid not in keep_set:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
        finally:
            self.thaw()

    def remove(self, timeout_s: float = 2.0) -> None:
        """Kill what is left and remove the directories (idempotent)."""
        self.close_files()
        if not self.exists():
            return
        with contextlib.suppress(OSError):
            self.kill_all()
        deadline = time.monotonic() + timeout_s
        for path in self.paths:
            while True:
                try:
                    path.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError as e:
                    if e.errno != errno.EBUSY or time.monotonic() > deadline:
                        raise CgroupError(f"cannot remove cgroup {path}: {e}") from e
                    time.sleep(0.005)


class CgroupV2(Cgroup):
    version = "v2"

    def __init__(self, path: Path) -> None:
        super().__init__()
        self.path = path
        self._has_peak: bool | None = None

    def __repr__(self) -> str:
        return f"CgroupV2({str(self.path)!r})"

    @property
    def paths(self) -> list[Path]:
        return [self.path]

    def create(self) -> None:
        parent = self.path.parent
        parent.mkdir(exist_ok=True)
        # Controllers must be enabled in every ancestor's subtree_control.
        ancestors = []
        p = parent
        while (p / "cgroup.subtree_control").exists() and p not in ancestors:
            ancestors.append(p)
            if p.parent == p or not (p.parent / "cgroup.controllers").exists():
                break
            p = p.parent
        for anc in reversed(ancestors):
            enabled = (anc / "cgroup.subtree_control").read_text().split()
            for c in V2_REQUIRED:
                if c not in enabled:
                    _write(anc / "cgroup.subtree_control", f"+{c}")
        self.path.mkdir(exist_ok=True)

    def set_memory_limit(self, limit_bytes: int) -> None:
        _write(self.path / "memory.max", str(limit_bytes))
        with contextlib.suppress(FileNotFoundError):
            _write(self.path / "memory.swap.max", "0")

    def set_pids_limit(self, limit: int) -> None:
        _write(self.path / "pids.max", str(limit))

    def set_cpu_shares(self, shares: int) -> None:
        # runc's conversion of shares [2, 262144] to weight [1, 10000]
        weight = 1 + ((shares - 2) * 9999) // 262142
        with contextlib.suppress(FileNotFoundError):
            _write(self.path / "cpu.weight", str(weight))

    def reset_memory_peak(self) -> None:
        # memory.peak is reset per open file only (6.12+): fall back to sampling from now
        self._sampled_peak = 0

    def _write_freeze(self, frozen: bool) -> None:
        self.write_hot(self.path / "cgroup.freeze", b"1" if frozen else b"0")

    def is_frozen(self) -> bool:
        return _read_key(self.path / "cgroup.events", "frozen") == 1

    def memory_current(self) -> int:
        return _read_int(self.path / "memory.current")

    def _memory_peak_file(self) -> Path | None:
        if self._has_peak is None:
            self._has_peak = (self.path / "memory.peak").exists()
        return self.path / "memory.peak" if self._has_peak else None

    def oom_kills(self) -> int:
        try:
            return _read_key(self.path / "memory.events", "oom_kill")
        except OSError:
            return 0

    def procs(self) -> list[int]:
        return [int(x) for x in (self.path / "cgroup.procs").read_text().split()]

    def kill_all(self, keep: Iterable[int] = ()) -> None:
        keep_set = set(keep)
        kill_file = self.path / "cgroup.kill"
        if not keep_set and kill_file.exists():
            _write(kill_file, "1")
            return
        super().kill_all(keep_set)


class CgroupV1(Cgroup):
    version = "v1"

    def __init__(self, paths: Mapping[str, Path]) -> None:
        super().__init__()
        self._by_controller = dict(paths)
        missing = [c for c in V1_REQUIRED if c not in self._by_controller]
        if missing:
            raise CgroupError(f"cgroup v1 controllers not mounted: {', '.join(missing)}")
        self.memory = self._by_controller["memory"]
        self.pids = self._by_controller["pids"]
        self.freezer = self._by_controller["freezer"]

    def __repr__(self) -> str:
        return f"CgroupV1({str(self.memory)!r})"

    @property
    def paths(self) -> list[Path]:
        # several controllers may share one hierarchy (e.g. cpu,cpuacct)
        return sorted(set(self._by_controller.values()))

    def create(self) -> None:
        for p in (self.memory, self.pids, self.freezer):
            p.mkdir(parents=True, exist_ok=True)

    def set_memory_limit(self, limit_bytes: int) -> None:
        _write(self.memory / "memory.limit_in_bytes", str(limit_bytes))
        with contextlib.suppress(OSError):  # only with swap accounting
            _write(self.memory / "memory.memsw.limit_in_bytes", str(limit_bytes))

    def set_pids_limit(self, limit: int) -> None:
        _write(self.pids / "pids.max", str(limit))

    def set_cpu_shares(self, shares: int) -> None:
        cpu = self._by_controller.get("cpu")
        if cpu is not None:
            _write(cpu / "cpu.shares", str(shares))

    def reset_memory_peak(self) -> None:
        self._sampled_peak = 0
        _write(self.memory / "memory.max_usage_in_bytes", "0")

    def _write_freeze(self, frozen: bool) -> None:
        self.write_hot(self.freezer / "freezer.state", b"FROZEN" if frozen else b"THAWED")

    def is_frozen(self) -> bool:
        return (self.freezer / "freezer.state").read_text().strip() == "FROZEN"

    def memory_current(self) -> int:
        return _read_int(self.memory / "memory.usage_in_bytes")

    def _memory_peak_file(self) -> Path | None:
        return self.memory / "memory.max_usage_in_bytes"

    def oom_kills(self) -> int:
        try:
            return _read_key(self.memory / "memory.oom_control", "oom_kill")
        except OSError:
            return 0

    def procs(self) -> list[int]:
        return [int(x) for x in (self.freezer / "cgroup.procs").read_text().split()]
