"""What an ordinary user needs for rootless sandboxes, and the id mappings they get.

A rootless sandbox is a runc container in a user namespace of its own.  Inside it,
uid 0 is the server's user (runc's set-up runs as it), the function's user
(:data:`rootfs.SANDBOX_UID`, Lambda's ``sbx_user1051``) is one *subordinate* uid of
the server's user, a different one per environment (so that ``RLIMIT_NPROC``, counted
per uid, bounds each environment's forks), and the host-access helper (slirp4netns) is
:data:`HOST_ACCESS_INSIDE` mapped to the first subordinate uid, which is how the server
tells a sandbox's connections apart (peers.py).  ``newuidmap``/``newgidmap`` (Debian's
``uidmap``) write such mappings for an unprivileged user, within its ``/etc/subuid`` and
``/etc/subgid`` ranges.

Parsing and planning are pure; :func:`gather` reads the host.
"""

from __future__ import annotations

import os
import pwd
import shutil
from dataclasses import dataclass
from pathlib import Path

from .peers import HOST_ACCESS_UID
from .rootfs import SANDBOX_GID, SANDBOX_UID

#: the host-access helper's uid inside a rootless sandbox's user namespace
HOST_ACCESS_INSIDE = HOST_ACCESS_UID
#: fewest subordinate ids worth using: the helper plus a few environments
MIN_RANGE = 64
USERNS_SYSCTLS = (
    Path("/proc/sys/kernel/unprivileged_userns_clone"),  # Debian's patch; absent upstream
    Path("/proc/sys/user/max_user_namespaces"),
)


@dataclass(frozen=True)
class IdRange:
    start: int
    count: int


def parse_subids(text: str, user: str, uid: int) -> list[IdRange]:
    """The ranges of ``/etc/subuid`` (or subgid) text given to ``user`` (by name or id)."""
    out: list[IdRange] = []
    for line in text.splitlines():
        fields = line.strip().split(":")
        if len(fields) != 3 or fields[0] not in (user, str(uid)):
            continue
        try:
            start, count = int(fields[1]), int(fields[2])
        except ValueError:
            continue
        if count > 0:
            out.append(IdRange(start, count))
    return out


@dataclass(frozen=True)
class Host:
    """The facts rootless sandboxes depend on (:func:`gather`)."""

    user: str
    uid: int
    gid: int
    newuidmap: str | None
    newgidmap: str | None
    subuids: tuple[IdRange, ...]
    subgids: tuple[IdRange, ...]
    #: None when user namespaces may be created by this user, else why not
    userns_problem: str | None


def gather() -> Host:
    uid, gid = os.getuid(), os.getgid()
    try:
        user = pwd.getpwuid(uid).pw_name
    except KeyError:
        user = str(uid)

    def ranges(path: str) -> tuple[IdRange, ...]:
        try:
            return tuple(parse_subids(Path(path).read_text(), user, uid))
        except OSError:
            return ()

    return Host(
        user=user,
        uid=uid,
        gid=gid,
        newuidmap=shutil.which("newuidmap"),
        newgidmap=shutil.which("newgidmap"),
        subuids=ranges("/etc/subuid"),
        subgids=ranges("/etc/subgid"),
        userns_problem=userns_problem(),
    )


def userns_problem() -> str | None:
    """None when this user may create user namespaces (sysctls), else why not."""
    for path in USERNS_SYSCTLS:
        try:
            value = path.read_text().strip()
        except OSError:
            continue
        if value == "0":
            return f"user namespaces are disabled ({path} is 0)"
    return None


def blockers(host: Host) -> list[str]:
    """Why rootless sandboxes cannot work for this user (empty: they can)."""
    out: list[str] = []
    if host.userns_problem is not None:
        out.append(host.userns_problem)
    if host.newuidmap is None or host.newgidmap is None:
        out.append("newuidmap/newgidmap not found (Debian: apt-get install uidmap)")
    for name, ranges in (("subuid", host.subuids), ("subgid", host.subgids)):
        if not any(r.count >= MIN_RANGE for r in ranges):
            out.append(
                f"no /etc/{name} range of at least {MIN_RANGE} ids for {host.user} "
                f"(usermod --add-subuids 100000-165535 --add-subgids 100000-165535 {host.user})"
            )
    return out


def enable_command(host: Host) -> str:
    """The one command a user with sudo runs once so that rootless sandboxes work."""
    parts = []
    if host.newuidmap is None or host.newgidmap is None:
        parts.append("apt-get install -y uidmap")
    if not host.subuids or not host.subgids:
        parts.append(f"usermod --add-subuids 100000-165535 --add-subgids 100000-165535 {host.user}")
    if host.userns_problem is not None:
        parts.append("sysctl -w kernel.unprivileged_userns_clone=1 user.max_user_namespaces=28633")
    if not parts:
        return ""
    return "sudo sh -c '" + " && ".join(parts) + "'"


def largest(ranges: tuple[IdRange, ...]) -> IdRange:
    return max(ranges, key=lambda r: r.count)


@dataclass(frozen=True)
class Mapping:
    """One rootless sandbox's uid and gid maps (runc's ``uidMappings``/``gidMappings``)."""

    uid_map: tuple[tuple[int, int, int], ...]  # (inside, outside, count)
    gid_map: tuple[tuple[int, int, int], ...]
    #: the outside uid the function runs as
    sandbox_uid: int
    #: the outside uid of the host-access helper
    host_access_uid: int

    def to_oci(self) -> dict[str, list[dict[str, int]]]:
        def rows(m: tuple[tuple[int, int, int], ...]) -> list[dict[str, int]]:
            return [{"containerID": i, "hostID": o, "size": n} for i, o, n in m]

        return {"uidMappings": rows(self.uid_map), "gidMappings": rows(self.gid_map)}


def slots(subuids: IdRange, subgids: IdRange) -> int:
    """How many environments can have an id of their own (the first id is the helper's)."""
    return min(subuids.count, subgids.count) - 1


def mapping(host_uid: int, host_gid: int, subuids: IdRange, subgids: IdRange, slot: int) -> Mapping:
    """The maps of the environment in ``slot`` (1 .. :func:`slots`), pure."""
    if not 1 <= slot <= slots(subuids, subgids):
        raise ValueError(f"slot {slot} is outside the subordinate id ranges")
    uid, gid = subuids.start + slot, subgids.start + slot
    return Mapping(
        uid_map=(
            (0, host_uid, 1),
            (SANDBOX_UID, uid, 1),
            (HOST_ACCESS_INSIDE, subuids.start, 1),
        ),
        gid_map=(
            (0, host_gid, 1),
            (SANDBOX_GID, gid, 1),
            (HOST_ACCESS_INSIDE, subgids.start, 1),
        ),
        sandbox_uid=uid,
        host_access_uid=subuids.start,
    )


class SlotPool:
    """Hands out environment slots; a slot is in use from build to destroy."""

    def __init__(self, count: int) -> None:
        self._free = list(range(count, 0, -1))

    def take(self) -> int:
        if not self._free:
            raise RuntimeError("every subordinate uid is in use by an environment")
        return self._free.pop()

    def give_back(self, slot: int) -> None:
        self._free.append(slot)
