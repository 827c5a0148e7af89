"""Removing what a crashed earlier run of this server left on the host."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
from pathlib import Path

from .. import cgroups, netns
from .command import Runc
from .mounts import mounts_under
from .oci import cgroup_relpath

#: a file in each sandbox directory that says it is ours (safe to sweep)
MARKER = ".lambdalet-runc"


def sweep(runc: Runc, envs_dir: Path, tag: str, cgsys: cgroups.CgroupSystem) -> list[str]:
    """Remove what a crashed earlier run left: containers, netns, mounts, cgroups.

    Blocking; runs once before the first sandbox is made.  Returns what it removed.
    """
    removed: list[str] = []
    if runc.state_dir.is_dir():
        out = subprocess.run(runc.cmd("list", "-q"), capture_output=True, text=True, check=False)
        for cid in out.stdout.split():
            subprocess.run(runc.cmd("delete", "--force", cid), capture_output=True)
            removed.append(f"container {cid}")
    if envs_dir.is_dir():
        for env_dir in envs_dir.iterdir():
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
        if not name.startswith(f"{netns.PREFIX}{tag}-"):
            continue
        netns.remove_netns(name)
        removed.append(f"netns {name}")
    prefix = str(envs_dir) + "/"
    with contextlib.suppress(OSError):
        mounts = [
            line.split()[1].replace("\\040", " ")
            for line in Path("/proc/self/mounts").read_text().splitlines()
        ]
        for mnt in sorted((m for m in mounts if m.startswith(prefix)), reverse=True):
            subprocess.run(["umount", "-l", mnt], capture_output=True)
            removed.append(f"mount {mnt}")
    for cg in cgsys.children(cgroup_relpath(tag, "")):
        with contextlib.suppress(cgroups.CgroupError, OSError):
            cg.remove()
            removed.append(f"cgroup {cg!r}")
    if envs_dir.is_dir():
        for env_dir in envs_dir.iterdir():
            # never recurse into a mount that survived: it may be a function's code
            if (env_dir / MARKER).exists() and not mounts_under(env_dir):
                shutil.rmtree(env_dir, ignore_errors=True)
    return removed
