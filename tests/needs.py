"""What a test needs from the machine: skipped where it is missing locally, a failure in CI.

CI (``CI`` set) runs on a machine ``lambdalet.sh`` has provisioned, so a missing tool or a
sandbox that cannot run there is a broken setup, never a reason to pass by skipping.
"""

from __future__ import annotations

import os

import pytest


def require(what: str, missing: str | None) -> None:
    """Go on if ``missing`` is None; else skip, saying why, or fail when ``CI`` is set."""
    if missing is None:
        return
    if os.environ.get("CI"):
        pytest.fail(f"{what} is required in CI but unavailable: {missing}")
    pytest.skip(f"{what} unavailable: {missing}")


#: what rootless sandboxes lack on a host without a delegated cgroup v2 subtree (ours: v1)
NO_CGROUP_MEMORY = "no cgroup memory limit without a delegated cgroup v2 subtree on this host"
NO_NODE_MEMORY_LIMIT = (
    "no memory limit for Node.js without a delegated cgroup: its RLIMIT_DATA substitute is 1 GB "
    "above the function's memory (V8 reserves that much address space to start)"
)
NO_CGROUP_STATS = "no cgroup memory statistics (peak, OOM kills) without a delegated cgroup"
NO_SPARES = "no spare sandboxes: their attach points are host mounts, which need root"
NO_LOOP_TMP = "/tmp is a tmpfs (a loop-mounted image needs root): it does not use the data disk"
NO_IMAGES = "container images are unpacked as root (umoci, mknod and owners)"
#: a test's own small data disk is a loop-mounted image: mounting one needs root
NO_SMALL_DISK = "the test's small full data disk is a loop mount, which needs root"


def rootless_lacks(reason: str) -> None:
    """An exception of the rootless run (not root): skip, naming what rootless sandboxes
    lack here (one of the constants above); as root, go on.  Never a blanket skip: each
    test that cannot pass rootless says why."""
    if os.geteuid() != 0:
        pytest.skip(f"rootless sandboxes: {reason}")
