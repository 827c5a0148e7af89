"""The rootless config (pure) and the process-tree substitutes for the cgroup freezer."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from lambdalet.sandbox import limits_substitutes, userns
from lambdalet.sandbox.rootless import data_limit, rootless_config
from lambdalet.sandbox.runc import oci_config

from .test_runc_config import _plan, _spec


def test_rootless_config_adds_a_user_namespace_and_rlimits_and_drops_cgroups() -> None:
    subs = userns.IdRange(100000, 65536)
    m = userns.mapping(1000, 1000, subs, subs, 7)
    plan = _plan(_spec(memory_mb=128, pids_limit=1024))
    cfg = rootless_config(oci_config(plan), m, nproc=1024, data_bytes=data_limit(128))
    linux = cfg["linux"]
    kinds = [ns["type"] for ns in linux["namespaces"]]
    assert sorted(kinds) == ["ipc", "mount", "network", "pid", "user", "uts"]
    assert all("path" not in ns for ns in linux["namespaces"])  # runc makes them
    assert "cgroupsPath" not in linux and "resources" not in linux
    assert linux["uidMappings"] == m.to_oci()["uidMappings"]
    limits = {r["type"]: r["hard"] for r in cfg["process"]["rlimits"]}
    assert limits["RLIMIT_NPROC"] == 1024
    assert limits["RLIMIT_DATA"] == 128 * 1024 * 1024
    assert "RLIMIT_NOFILE" in limits
    # the rest is the runc backend's: same user, read-only root, /tmp capped
    assert cfg["process"]["user"] == oci_config(plan)["process"]["user"]
    assert cfg["root"]["readonly"] is True
    # overlays (/opt of two layers here) read user.* marks in the user namespace
    overlays = [m for m in cfg["mounts"] if m["type"] == "overlay"]
    assert overlays and all("userxattr" in m["options"] for m in overlays)


def test_node_runtimes_get_room_for_v8s_reservations() -> None:
    assert data_limit(128, Path("/d/runtimes/python3.11")) == 128 << 20
    assert data_limit(128, Path("/d/runtimes/nodejs24.x/runtime")) == (128 + 1024) << 20
    assert data_limit(256) == 256 << 20


def test_parent_of_reads_names_with_spaces_and_parens() -> None:
    assert limits_substitutes.parent_of("42 (a b) c) S 7 42 42 0") == 7


def test_descendants_walks_the_tree() -> None:
    tree = {2: 1, 3: 2, 4: 3, 5: 1, 9: 8}
    assert sorted(limits_substitutes.descendants(1, tree)) == [2, 3, 4, 5]
    assert limits_substitutes.descendants(4, tree) == []


def _state(pid: int) -> str:
    stat = Path(f"/proc/{pid}/stat").read_text()
    return stat[stat.rindex(")") + 2]


def _wait(cond: Callable[[], bool]) -> None:
    deadline = time.monotonic() + 10
    while not cond():
        assert time.monotonic() < deadline, "not reached in 10 s"
        time.sleep(0.01)


def test_stop_tree_stops_every_descendant_and_continue_tree_resumes_them() -> None:
    # a shell (the "agent") with a child that has a child of its own
    root = subprocess.Popen(["sh", "-c", "sh -c 'sleep 30 & wait' & wait"])
    try:
        deadline = time.monotonic() + 10
        while len(limits_substitutes.descendants(root.pid, limits_substitutes.parents())) < 2:
            assert time.monotonic() < deadline, "the tree did not start"
            time.sleep(0.01)
        stopped = limits_substitutes.stop_tree(root.pid)
        assert len(stopped) == 2
        assert _state(root.pid) != "T"  # the root itself keeps running
        _wait(lambda: all(_state(pid) == "T" for pid in stopped))
        limits_substitutes.continue_tree(root.pid, stopped)
        _wait(lambda: all(_state(pid) != "T" for pid in stopped))
    finally:
        for pid in limits_substitutes.descendants(root.pid, limits_substitutes.parents()):
            os.kill(pid, signal.SIGKILL)
        root.kill()
        root.wait()


def test_rss_bytes_sums_resident_memory_and_ignores_gone_pids() -> None:
    mine = limits_substitutes.rss_bytes([os.getpid()])
    assert mine > 1 << 20
    assert limits_substitutes.rss_bytes([2**22 + 7]) == 0
