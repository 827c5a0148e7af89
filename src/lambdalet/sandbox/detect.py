"""Which sandbox backend works on this host, and why (``lambdalet doctor``).

Fact gathering (:func:`gather_facts`) touches the OS; the decision
(:func:`decide`) is a pure function of those facts, unit-tested with
injected facts.
"""

from __future__ import annotations

import asyncio
import os
import shutil
from dataclasses import dataclass, field

from lambdalet.config import PYTHON_AGENT_ENV, ServerConfig

from . import cgroups, userns
from .base import BackendInfo, SandboxBackend, SandboxError

BACKENDS = ("auto", "runc", "process")


@dataclass(frozen=True)
class Facts:
    is_root: bool
    runc: str | None  # path of the runc binary
    cgroup_version: str | None  # "v1" | "v2" | None when unusable
    cgroup_problem: str | None
    netns_problem: str | None  # None when a network namespace can be made and entered
    slirp4netns: str | None  # path, for host access from inside
    mkfs_ext4: str | None
    #: not root: why rootless sandboxes cannot work for this user (empty: they can)
    rootless_blockers: tuple[str, ...] = ()
    #: not root: what a user with sudo runs once to enable them ("" when nothing)
    rootless_enable: str = ""


@dataclass(frozen=True)
class Decision:
    backend: str  # "runc" | "rootless" | "process"
    cgroup: str
    network: str
    host_network: bool
    reasons: tuple[str, ...]
    warnings: tuple[str, ...] = field(default_factory=tuple)
    #: why runc cannot work here (empty when it can)
    runc_blockers: tuple[str, ...] = field(default_factory=tuple)


def gather_facts() -> Facts:
    is_root = os.geteuid() == 0
    version: str | None = None
    problem: str | None = None
    try:
        cgsys = cgroups.detect()
        cgsys.check()
        version = cgsys.version
    except cgroups.CgroupError as e:
        problem = str(e)
    netns_problem: str | None = "not root" if not is_root else None
    if is_root:
        try:
            from . import netns

            netns_problem = netns.works()
        except Exception as e:  # pyroute2 missing or broken
            netns_problem = f"network namespaces unusable: {e}"
    rootless_blockers: tuple[str, ...] = ()
    rootless_enable = ""
    if not is_root:
        host = userns.gather()
        rootless_blockers = tuple(userns.blockers(host))
        rootless_enable = userns.enable_command(host)
    return Facts(
        rootless_blockers=rootless_blockers,
        rootless_enable=rootless_enable,
        is_root=is_root,
        runc=shutil.which("runc"),
        cgroup_version=version,
        cgroup_problem=problem,
        netns_problem=netns_problem,
        slirp4netns=shutil.which("slirp4netns"),
        mkfs_ext4=shutil.which("mkfs.ext4"),
    )


def decide(facts: Facts, requested: str = "auto") -> Decision:
    """Pick the backend for ``requested`` ("auto" | "runc" | "process")."""
    if requested not in BACKENDS:
        raise SandboxError(f"unknown sandbox backend {requested!r}; use one of {BACKENDS}")
    rootless_ok = not facts.is_root and facts.runc is not None and not facts.rootless_blockers
    if rootless_ok and requested != "process":
        return _rootless(facts, requested)
    blockers: list[str] = []
    if not facts.is_root:
        blockers.append("not root (runc sandboxes need root)")
        blockers += [f"rootless sandboxes: {b}" for b in facts.rootless_blockers]
        if facts.rootless_enable:
            blockers.append(f"to enable rootless sandboxes, run once: {facts.rootless_enable}")
    if facts.runc is None:
        blockers.append("runc not found: apt-get install runc")
    if facts.cgroup_version is None:
        blockers.append(f"cgroups unusable: {facts.cgroup_problem}")
    if facts.is_root and facts.netns_problem is not None:
        blockers.append(facts.netns_problem)
    if requested == "runc" and blockers:
        raise SandboxError("the runc backend cannot work here: " + "; ".join(blockers))
    if requested == "process" or blockers:
        reasons = ["forced by configuration"] if requested == "process" else blockers
        return Decision(
            backend="process",
            cgroup="none",
            network="host",
            host_network=True,
            reasons=tuple(reasons),
            runc_blockers=tuple(blockers),
        )
    reasons = [
        "forced by configuration" if requested == "runc" else "root, runc, cgroups and netns work",
        f"runc at {facts.runc}",
        f"cgroup {facts.cgroup_version}",
    ]
    warnings: list[str] = []
    host_network = _host_network(facts, reasons, warnings)
    if facts.mkfs_ext4 is None:
        warnings.append("mkfs.ext4 not found: /tmp is a tmpfs that counts against memory")
    return Decision(
        backend="runc",
        cgroup=facts.cgroup_version or "none",
        network="namespace",
        host_network=host_network,
        reasons=tuple(reasons),
        warnings=tuple(warnings),
    )


def _host_network(facts: Facts, reasons: list[str], warnings: list[str]) -> bool:
    """Whether sandboxes reach the host (slirp4netns), said in ``reasons`` or ``warnings``."""
    if facts.slirp4netns is not None:
        reasons.append("host access through slirp4netns (host.lambdalet.internal)")
        return True
    warnings.append(
        "slirp4netns not found (apt-get install slirp4netns): sandboxes have no "
        "network access beyond their own namespace"
    )
    return False


def _rootless(facts: Facts, requested: str) -> Decision:
    reasons = [
        "forced by configuration (not root: rootless)"
        if requested == "runc"
        else "not root; user namespaces, newuidmap and subordinate ids work: rootless runc",
        f"runc at {facts.runc}",
        "no delegated cgroup v2 subtree: rlimits stand in for cgroup limits",
    ]
    warnings: list[str] = []
    host_network = _host_network(facts, reasons, warnings)
    return Decision(
        backend="rootless",
        cgroup="none",
        network="namespace",
        host_network=host_network,
        reasons=tuple(reasons),
        warnings=tuple(warnings),
    )


def describe(config: ServerConfig) -> BackendInfo:
    """What ``lambdalet doctor`` prints; never raises for a forced runc, says why instead."""
    facts = gather_facts()
    try:
        d = decide(facts, config.backend)
    except SandboxError as e:
        return BackendInfo(
            backend="none",
            isolation="none",
            cgroup=facts.cgroup_version or "none",
            network="none",
            reasons=(str(e),),
        )
    if d.backend == "process":
        from .process import ProcessBackend

        return ProcessBackend(config, d.reasons).info()
    agent, agent_note = _agent_kind(config)
    from . import seccomp
    from .runc import capabilities, protections

    seccomp_config, seccomp_note = seccomp.for_this_host()
    warnings = list(d.warnings)
    if seccomp_config is None:
        warnings.append(seccomp_note)
    if d.backend == "rootless":
        from . import rootless

        subuids = userns.largest(userns.gather().subuids)
        return BackendInfo(
            backend="rootless",
            isolation="full",
            cgroup="none",
            network=d.network,
            reasons=(*d.reasons, agent_note),
            warnings=(*warnings, *rootless.LIMIT_WARNINGS),
            agent=agent,
            protections=rootless.protections(seccomp_note, d.host_network, subuids.start),
            capabilities=rootless.capabilities(seccomp_config is not None),
        )
    return BackendInfo(
        backend="runc",
        isolation="full",
        cgroup=d.cgroup,
        network=d.network,
        reasons=(*d.reasons, agent_note),
        warnings=tuple(warnings),
        agent=agent,
        spares_wanted=max(0, config.spare_sandboxes),
        protections=protections(seccomp_note, d.host_network),
        capabilities=capabilities(seccomp_config is not None),
    )


def _agent_kind(config: ServerConfig) -> tuple[str, str]:
    """Which sandbox agent a runc server here would run, and why."""
    if config.python_agent:
        return "python", f"sandbox agent: Python ({PYTHON_AGENT_ENV} is set)"
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        return "python", "sandbox agent: Python (no C compiler: apt-get install gcc libc6-dev)"
    return "compiled", f"sandbox agent: compiled from agent.c with {cc}"


async def choose_backend(config: ServerConfig) -> SandboxBackend:
    """Build the backend ``config.backend`` asks for (runc: after sweeping leftovers)."""
    facts = await asyncio.to_thread(gather_facts)
    d = decide(facts, config.backend)
    if d.backend == "process":
        from .process import ProcessBackend

        return ProcessBackend(config, d.reasons)
    if d.backend == "rootless":
        from .rootless import RootlessBackend

        rootless = RootlessBackend(
            config, userns.gather(), host_network=d.host_network, reasons=d.reasons
        )
        for w in d.warnings:
            rootless.add_warning(w)
        await rootless.start()
        return rootless
    from .runc import RuncBackend

    backend = RuncBackend(
        config,
        host_network=d.host_network,
        reasons=d.reasons,
        spares=max(0, config.spare_sandboxes),
    )
    for w in d.warnings:
        backend.add_warning(w)
    await backend.start()
    return backend
