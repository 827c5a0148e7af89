"""The sandbox's seccomp filter: the containers project's default profile, tightened.

The source is ``/usr/share/containers/seccomp.json`` from Debian's
``golang-github-containers-common`` (the default profile of podman, CRI-O and
buildah; Docker's default profile is the same lineage), read when the backend
starts so that Debian's updates of it apply.  :func:`oci_seccomp` turns it into
runc's ``linux.seccomp`` for a process with no capabilities on this machine's
architecture and kernel, as the container engines do: a rule that ``includes``
capabilities, architectures or a newer kernel than ours is left out, one that
``excludes`` what we have is left out.

That profile lets an unprivileged process make user namespaces (and, inside one,
network and mount namespaces), ptrace, and use keyrings.  Lambda allows none of
these, so on top of it (:data:`DENIED`):

* ``unshare``, ``setns``: refused (EPERM);
* ``clone``: allowed only without namespace flags (Docker's rule), ``clone3``
  answers ENOSYS so that the C library falls back to ``clone``;
* ``ptrace``, ``process_vm_readv``, ``process_vm_writev``: refused, so no process
  can trace or read another (the agent, PID 1, nor the runtime);
* ``keyctl``, ``add_key``, ``request_key``, ``bpf``, ``perf_event_open``: refused
  (the last two the profile already gives only to CAP_SYS_ADMIN).

Pure apart from :func:`load_profile`.
"""

from __future__ import annotations

import json
import os
import platform
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any

PROFILE_PATH = Path("/usr/share/containers/seccomp.json")
PROFILE_PACKAGE = "golang-github-containers-common"
EPERM = 1
#: every CLONE_NEW* flag (namespaces): clone is allowed only with none of them
CLONE_NAMESPACE_FLAGS = 0x7E020000
#: syscalls refused on top of the profile, and why (docs/security.md)
DENIED: Mapping[str, str] = {
    "unshare": "no new namespaces (a user namespace would give back every capability)",
    "setns": "no joining other namespaces",
    "clone3": "namespace flags cannot be filtered (struct argument): ENOSYS, libc falls back",
    "ptrace": "no tracing of the agent (PID 1) or of the runtime",
    "process_vm_readv": "no reading another process's memory",
    "process_vm_writev": "no writing another process's memory",
    "keyctl": "the kernel keyrings are not namespaced",
    "add_key": "the kernel keyrings are not namespaced",
    "request_key": "the kernel keyrings are not namespaced",
    "bpf": "no eBPF programs",
    "perf_event_open": "no performance counters (side channels, kernel attack surface)",
}
#: Go's architecture names (the profile's ``arches``) and libseccomp's, by machine
_ARCHES = {
    "x86_64": ("amd64", "SCMP_ARCH_X86_64"),
    "aarch64": ("arm64", "SCMP_ARCH_AARCH64"),
}


def load_profile(path: Path = PROFILE_PATH) -> dict[str, Any] | None:
    """The profile as JSON, or None when it is not installed."""
    try:
        loaded: dict[str, Any] = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    return loaded


def host_target() -> tuple[str, tuple[int, int]]:
    """This machine's architecture (``platform.machine()``) and kernel (major, minor)."""
    release = os.uname().release.split("-", 1)[0].split(".")
    return platform.machine(), (int(release[0]), int(release[1]))


def _kernel(text: str) -> tuple[int, int]:
    major, _, minor = text.partition(".")
    return int(major), int(minor or 0)


def _applies(
    rule: Mapping[str, Any], caps: Collection[str], go_arch: str, kernel: tuple[int, int]
) -> bool:
    inc = rule.get("includes") or {}
    exc = rule.get("excludes") or {}
    if any(c not in caps for c in inc.get("caps") or ()):
        return False
    if inc.get("arches") and go_arch not in inc["arches"]:
        return False
    if inc.get("minKernel") and kernel < _kernel(inc["minKernel"]):
        return False
    if any(c in caps for c in exc.get("caps") or ()):
        return False
    return not (exc.get("arches") and go_arch in exc["arches"])


def oci_seccomp(
    profile: Mapping[str, Any],
    *,
    machine: str,
    kernel: tuple[int, int],
    caps: Collection[str] = (),
) -> dict[str, Any]:
    """runc's ``linux.seccomp`` from a containers-format ``profile`` (pure)."""
    if machine not in _ARCHES:
        raise ValueError(f"no seccomp architecture known for {machine!r}")
    go_arch, scmp_arch = _ARCHES[machine]
    architectures = [scmp_arch]
    for entry in profile.get("archMap") or ():
        if entry.get("architecture") == scmp_arch:
            architectures += list(entry.get("subArchitectures") or ())
    syscalls: list[dict[str, Any]] = []
    for rule in profile.get("syscalls") or ():
        if not _applies(rule, caps, go_arch, kernel):
            continue
        names = [n for n in rule["names"] if n not in DENIED and n != "clone"]
        if "clone" in rule["names"] and not rule.get("args"):
            # only without namespace flags ((flags & mask) == 0); otherwise the default
            syscalls.append(
                {
                    "names": ["clone"],
                    "action": rule["action"],
                    "args": [
                        {
                            "index": 0,
                            "value": CLONE_NAMESPACE_FLAGS,
                            "valueTwo": 0,
                            "op": "SCMP_CMP_MASKED_EQ",
                        }
                    ],
                }
            )
        if not names:
            continue
        out: dict[str, Any] = {"names": names, "action": rule["action"]}
        if rule.get("errnoRet") is not None:
            out["errnoRet"] = rule["errnoRet"]
        if rule.get("args"):
            out["args"] = [
                {k: a[k] for k in ("index", "value", "valueTwo", "op")} for a in rule["args"]
            ]
        syscalls.append(out)
    refused = sorted(n for n in DENIED if n != "clone3")
    syscalls.append({"names": refused, "action": "SCMP_ACT_ERRNO", "errnoRet": EPERM})
    seccomp: dict[str, Any] = {
        "defaultAction": profile.get("defaultAction", "SCMP_ACT_ERRNO"),
        "architectures": architectures,
        "syscalls": syscalls,
    }
    if profile.get("defaultErrnoRet") is not None:
        seccomp["defaultErrnoRet"] = profile["defaultErrnoRet"]
    return seccomp


def for_this_host(path: Path = PROFILE_PATH) -> tuple[dict[str, Any] | None, str]:
    """(``linux.seccomp`` for this host or None, a sentence saying which or why not)."""
    try:
        profile = load_profile(path)
    except (OSError, ValueError) as e:
        return None, f"seccomp: off, {path} is unreadable: {e}"
    if profile is None:
        return None, f"seccomp: off, {path} is missing (apt-get install {PROFILE_PACKAGE})"
    machine, kernel = host_target()
    try:
        config = oci_seccomp(profile, machine=machine, kernel=kernel)
    except (ValueError, KeyError, TypeError) as e:
        return None, f"seccomp: off, {path} cannot be used here: {e}"
    return config, (
        f"seccomp: the containers default profile ({path}), plus refused: "
        + ", ".join(sorted(DENIED))
    )
