"""``lambdalet deploy --watch``: redeploy when code, layers or the template change.

Polls modification times (stdlib only, works on every filesystem, including bind mounts
where inotify is silent).  Deploys are idempotent, so a redeploy only publishes the layers
and updates the functions whose zips changed; UpdateFunctionCode retires the old
environments server-side, so the next invoke runs the new code.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from pathlib import Path

from lambdalet.ops.packaging import SKIPPED_DIRS

Snapshot = dict[str, tuple[int, int, int]]


def snapshot(paths: Iterable[Path]) -> Snapshot:
    """(mtime_ns, size, mode) of every file under the given files and folders."""
    out: Snapshot = {}
    for root in paths:
        if root.is_file():
            st = root.stat()
            out[str(root)] = (st.st_mtime_ns, st.st_size, st.st_mode)
            continue
        if not root.is_dir():
            continue
        for path in sorted(root.rglob("*")):
            if any(part in SKIPPED_DIRS for part in path.relative_to(root).parts):
                continue
            if path.name.endswith(".pyc"):
                continue
            try:
                st = path.stat()
            except OSError:
                continue
            if path.is_file():
                out[str(path)] = (st.st_mtime_ns, st.st_size, st.st_mode)
    return out


def changed(before: Snapshot, after: Snapshot) -> list[str]:
    keys = set(before) | set(after)
    return sorted(k for k in keys if before.get(k) != after.get(k))


def watch(
    paths: Callable[[], list[Path]],
    redeploy: Callable[[list[str]], None],
    *,
    interval: float = 0.3,
    settle: float = 0.2,
    stop: Callable[[], bool] = lambda: False,
    initial: Snapshot | None = None,
) -> None:
    """Call ``redeploy(changed_files)`` after each change under ``paths()``, until ``stop()``.

    ``paths`` is called again after each redeploy (the template may name new folders).
    A change is acted on once the files have stayed unchanged for ``settle`` seconds, so an
    editor's save-in-several-writes is one redeploy.  ``initial``, a snapshot taken before the
    first deploy, makes changes made during that deploy count.
    """
    before = snapshot(paths()) if initial is None else initial
    while not stop():
        time.sleep(interval)
        now = snapshot(paths())
        diff = changed(before, now)
        if not diff:
            continue
        while True:
            time.sleep(settle)
            later = snapshot(paths())
            if later == now:
                break
            now = later
        diff = changed(before, now)
        redeploy(diff)
        before = now  # a change made during the redeploy is seen on the next poll
