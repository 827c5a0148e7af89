"""The attach points of a spare sandbox: what is mounted where, changed from the host.

A spare is built before any function needs it, its /var/task, /opt, /var/runtime and
/var/lang slave binds of ``<attach_dir>/{task,opt,runtime,lang}`` (a shared tmpfs):
mounting the function's directories there later makes them appear in the running
container.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path

from ..base import SandboxError
from .mounts import make_attach_points, run_tool
from .oci import ATTACH_POINTS

#: mounts ``source`` (a host dir or ``overlay:<lowerdirs>``) read-only at ``target``
MountReadonly = Callable[[str, str], Awaitable[None]]


class AttachPoints:
    """One spare's attach points and the host source mounted at each (None: empty)."""

    def __init__(self, directory: Path, mount_readonly: MountReadonly) -> None:
        self.dir = directory
        self._mount_readonly = mount_readonly
        self.attached: dict[str, str | None] = dict.fromkeys(ATTACH_POINTS)
        #: serialises changes (attach vs. preparing a waiting spare)
        self.lock = asyncio.Lock()

    async def make(self) -> None:
        await make_attach_points(self.dir)

    def differs(self, want: Mapping[str, str | None], names: tuple[str, ...]) -> bool:
        return any(want[k] != self.attached[k] for k in names)

    async def sync(self, want: Mapping[str, str | None]) -> None:
        """Bring the attach points to ``want`` (host source per point; None = empty)."""
        jobs = []
        for name, source in want.items():
            if self.attached[name] != source:
                jobs.append(self._remount(name, source))
        await asyncio.gather(*jobs)

    async def _remount(self, name: str, source: str | None) -> None:
        point = str(self.dir / name)
        if self.attached[name] is not None:
            await run_tool("umount", point)
            self.attached[name] = None
        if source is not None:
            await self._mount_readonly(source, point)
            self.attached[name] = source

    async def remove(self) -> str | None:
        """Unmount the whole tree (lazily if busy); what went wrong, or None."""
        if not await asyncio.to_thread(os.path.ismount, self.dir):
            return None
        try:
            await run_tool("umount", "-R", str(self.dir))
        except SandboxError as e:
            with contextlib.suppress(SandboxError):
                await run_tool("umount", "-R", "-l", str(self.dir))
            return str(e)
        return None
