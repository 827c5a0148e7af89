"""Cgroup layout detection and file operations against a fake cgroup tree."""

from __future__ import annotations

from pathlib import Path

import pytest

from lambdalet.sandbox import cgroups

HYBRID = """\
tmpfs /sys/fs/cgroup tmpfs rw,relatime,mode=755 0 0
cgroup /sys/fs/cgroup/cpu cgroup rw,relatime,cpu 0 0
cgroup /sys/fs/cgroup/memory cgroup rw,relatime,memory 0 0
cgroup /sys/fs/cgroup/freezer cgroup rw,relatime,freezer 0 0
cgroup /sys/fs/cgroup/pids cgroup rw,relatime,pids 0 0
cgroup /sys/fs/cgroup/systemd cgroup rw,relatime,xattr,name=systemd 0 0
cgroup2 /sys/fs/cgroup/unified cgroup2 rw,relatime 0 0
"""
PURE_V2 = "cgroup2 /sys/fs/cgroup cgroup2 rw,nosuid,nodev,noexec,relatime,nsdelegate 0 0\n"


def test_hybrid_is_v1() -> None:
    cs = cgroups.parse_mounts(HYBRID)
    assert cs.version == "v1"
    assert cs.mounts["memory"] == Path("/sys/fs/cgroup/memory")
    assert cs.mounts["name=systemd"] == Path("/sys/fs/cgroup/systemd")
    assert "xattr" not in cs.mounts and "relatime" not in cs.mounts


def test_pure_v2() -> None:
    cs = cgroups.parse_mounts(PURE_V2)
    assert cs.version == "v2" and cs.mounts == {"": Path("/sys/fs/cgroup")}


def test_no_cgroups() -> None:
    with pytest.raises(cgroups.CgroupError):
        cgroups.parse_mounts("proc /proc proc rw 0 0\n")


def _fake_v1(root: Path) -> cgroups.CgroupSystem:
    mounts = {c: root / c for c in ("memory", "pids", "freezer", "cpu")}
    for m in mounts.values():
        m.mkdir(parents=True)
    return cgroups.CgroupSystem("v1", mounts)


def test_v1_files(tmp_path: Path) -> None:
    cs = _fake_v1(tmp_path)
    cg = cs.group("/lambdalet/e1")
    assert isinstance(cg, cgroups.CgroupV1)
    cg.create()
    cg.set_memory_limit(128 << 20)
    assert (tmp_path / "memory/lambdalet/e1/memory.limit_in_bytes").read_text() == str(128 << 20)
    cg.set_pids_limit(64)
    assert (tmp_path / "pids/lambdalet/e1/pids.max").read_text() == "64"
    (tmp_path / "freezer/lambdalet/e1/freezer.state").write_text("THAWED\n")
    cg.freeze()
    assert (tmp_path / "freezer/lambdalet/e1/freezer.state").read_text().strip() == "FROZEN"
    assert cg.is_frozen()
    cg.thaw()
    assert (tmp_path / "freezer/lambdalet/e1/freezer.state").read_text().strip() == "THAWED"
    mem = tmp_path / "memory/lambdalet/e1"
    (mem / "memory.max_usage_in_bytes").write_text("12345\n")
    (mem / "memory.oom_control").write_text("oom_kill_disable 0\nunder_oom 0\noom_kill 2\n")
    assert cg.memory_peak() == 12345 and cg.oom_kills() == 2
    (tmp_path / "freezer/lambdalet/e1/cgroup.procs").write_text("")
    assert cg.procs() == []
    assert [c.paths for c in cs.children()] == [cg.paths]


def test_v2_files_and_peak_fallback(tmp_path: Path) -> None:
    cs = cgroups.CgroupSystem("v2", {"": tmp_path})
    (tmp_path / "cgroup.controllers").write_text("cpu memory pids\n")
    (tmp_path / "cgroup.subtree_control").write_text("")
    cg = cs.group("lambdalet/e2")
    assert isinstance(cg, cgroups.CgroupV2)
    cg.create()
    assert cg.path == tmp_path / "lambdalet/e2"
    cg.set_memory_limit(1 << 20)
    assert (cg.path / "memory.max").read_text() == str(1 << 20)
    cg.freeze()
    assert (cg.path / "cgroup.freeze").read_text().strip() == "1"
    (cg.path / "cgroup.events").write_text("populated 1\nfrozen 1\n")
    assert cg.is_frozen()
    cg.thaw()
    assert (cg.path / "cgroup.freeze").read_text().strip() == "0"
    # no memory.peak (kernel < 5.19): sampled memory.current
    (cg.path / "memory.current").write_text("500\n")
    cg.sample()
    (cg.path / "memory.current").write_text("100\n")
    assert cg.memory_peak() == 500
    (cg.path / "memory.events").write_text("low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\n")
    assert cg.oom_kills() == 1
    (cg.path / "cgroup.procs").write_text("")
    (cg.path / "cgroup.kill").write_text("")
    cg.kill_all()
    assert (cg.path / "cgroup.kill").read_text() == "1"


def test_remove_is_idempotent(tmp_path: Path) -> None:
    cs = cgroups.CgroupSystem("v2", {"": tmp_path})
    cg = cs.group("lambdalet/gone")
    cg.remove()
    assert not cg.exists()
