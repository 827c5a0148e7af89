"""Host-side mounts of runc sandboxes: the ext4 ``/tmp`` images, the attach points of
spares, read-only binds of host directories, and reading ``/proc/self/mounts``."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import hashlib
import os
from pathlib import Path, PurePath

from .. import rootfs, spawn
from ..base import SandboxError
from .oci import ATTACH_POINTS


async def run_tool(*argv: str, limit_s: float = 30.0) -> str:
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
            await run_tool(
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
            await run_tool("mount", "-o", "loop", str(tmp), str(mnt))
            try:
                with contextlib.suppress(OSError):
                    (mnt / "lost+found").rmdir()
                mnt.chmod(0o1777)
            finally:
                await run_tool("umount", str(mnt))
                mnt.rmdir()
            tmp.rename(path)
            return path

    async def make(self, size_mb: int, image: Path, mountpoint: Path) -> None:
        template = await self.template(size_mb)
        await run_tool("cp", "--sparse=always", str(template), str(image))
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
        await run_tool("mount", "-o", "loop,nosuid,nodev,noatime", str(image), str(mountpoint))


async def make_attach_points(attach_dir: Path) -> None:
    """A small shared tmpfs holding one empty directory per attach point."""
    await asyncio.to_thread(attach_dir.mkdir)
    await run_tool(
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


class ReadOnlyMounts:
    """Read-only mounts of host directories (or ``overlay:<lowerdirs>`` sources).

    A directory is bound from a private, read-only bind of its host mount, made once
    per mount under ``views_dir`` and removed by :meth:`close`.
    """

    def __init__(self, views_dir: Path) -> None:
        self.views_dir = views_dir
        self._views: dict[str, Path] = {}
        self._lock = asyncio.Lock()

    async def _view(self, mount_point: str) -> Path:
        """A private, read-only bind of one host mount, made once.

        Binding *from* a read-only mount gives a read-only mount in a single step, so
        the copy that propagates into a container is read-only from its first moment.
        """
        async with self._lock:
            view = self._views.get(mount_point)
            if view is not None:
                return view
            view = self.views_dir / hashlib.sha256(mount_point.encode()).hexdigest()[:12]
            await asyncio.to_thread(view.mkdir, 0o700, True, True)
            if not await asyncio.to_thread(os.path.ismount, view):
                await run_tool("mount", "--bind", "--make-private", mount_point, str(view))
                await run_tool("mount", "-o", "remount,bind,ro,nosuid,nodev", str(view))
            self._views[mount_point] = view
            return view

    async def mount(self, source: str, target: str) -> None:
        """Mount ``source`` (a directory, or ``overlay:<lowerdirs>``) read-only at ``target``."""
        if source.startswith("overlay:"):
            lower = source.removeprefix("overlay:")
            await run_tool(
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
        view = await self._view(mp)
        rel = PurePath(source).relative_to(mp)
        await run_tool("mount", "--bind", str(view / rel), target)

    async def close(self) -> None:
        for view in self._views.values():
            with contextlib.suppress(SandboxError, OSError):
                await run_tool("umount", str(view))
                view.rmdir()
        self._views.clear()
        with contextlib.suppress(OSError):
            self.views_dir.rmdir()
