"""File-system steps shared by the runtime installers (Python, its language layer,
Node): atomic links, files and directory swaps, and a lock file between processes."""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
from collections.abc import Iterable, Iterator
from pathlib import Path


def symlink(path: Path, target: str) -> None:
    """Create or replace a symlink atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if os.path.islink(path) and os.readlink(path) == target:
        return
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    os.symlink(target, tmp)
    os.replace(tmp, path)


def replace_dir(target: Path, new: Path) -> None:
    """Put the finished folder ``new`` at ``target``, moving an older one aside first."""
    if target.exists():
        old = target.with_name(f".{target.name}.old-{os.getpid()}")
        os.rename(target, old)
        os.rename(new, target)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.rename(new, target)


def write_file(path: Path, text: str, mode: int) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(text, encoding="utf-8")
    tmp.chmod(mode)
    os.replace(tmp, path)


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """Serialise installs across processes (the setup script and a running server)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def distinct_real(paths: Iterable[Path]) -> Iterator[tuple[Path, Path]]:
    """Each path that exists, once per file it resolves to: (the path, where it leads)."""
    seen: set[Path] = set()
    for path in paths:
        try:
            real = path.resolve(strict=True)
        except OSError:
            continue
        if real not in seen:
            seen.add(real)
            yield path, real
