"""The OCI config, /etc contents and output line splitting (pure parts)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from lambdalet.sandbox import rootfs
from lambdalet.sandbox.base import SandboxError, SandboxSpec
from lambdalet.sandbox.output import LineSplitter
from lambdalet.sandbox.process import merge_layers
from lambdalet.sandbox.runc import BundlePlan, lang_source, oci_config, opt_mount


def _spec(**kw: object) -> SandboxSpec:
    args: dict[str, object] = dict(
        env_id="e1",
        memory_mb=256,
        ephemeral_mb=512,
        code_dir=Path("/data/code/abc"),
        layer_dirs=[Path("/l/1"), Path("/l/2")],
        runtime_dir=Path("/rt"),
        lang_dir=None,
    )
    args.update(kw)
    return SandboxSpec(**args)  # type: ignore[arg-type]


def _plan(spec: SandboxSpec, version: str = "v1", tmp: Path | None = Path("/e/tmp")) -> BundlePlan:
    return BundlePlan(
        spec=spec,
        rootfs=Path("/data/rootfs/x"),
        netns_path=Path("/run/netns/lambdalet-e1"),
        cgroup_version=version,
        agent_python="/var/rapid/python/bin/python3.11",
        agent_python_prefix=Path("/py"),
        agent_dir=Path("/data/rapid/h"),
        tmp_source=tmp,
        nproc=1000,
    )


def test_config_basics() -> None:
    cfg = oci_config(_plan(_spec()))
    assert cfg["root"] == {"path": "/data/rootfs/x", "readonly": True}
    proc = cfg["process"]
    assert proc["user"] == {"uid": 993, "gid": 990}
    assert proc["noNewPrivileges"] is True
    assert all(v == [] for v in proc["capabilities"].values())
    assert {"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024} in proc["rlimits"]
    linux = cfg["linux"]
    assert linux["cgroupsPath"] == "/lambdalet/e1"
    assert linux["resources"]["memory"] == {"limit": 256 << 20}
    assert linux["resources"]["pids"] == {"limit": 1024}
    assert {"type": "network", "path": "/run/netns/lambdalet-e1"} in linux["namespaces"]
    mounts = {m["destination"]: m for m in cfg["mounts"]}
    assert mounts["/var/task"]["source"] == "/data/code/abc"
    assert "ro" in mounts["/var/task"]["options"]
    assert mounts["/var/runtime"]["source"] == "/rt"
    assert "/var/lang" not in mounts
    assert mounts["/tmp"]["source"] == "/e/tmp" and "rw" in mounts["/tmp"]["options"]
    assert cfg["hostname"] == "sandbox"


def test_v2_disables_swap_and_tmpfs_fallback() -> None:
    cfg = oci_config(_plan(_spec(), "v2", tmp=None))
    assert cfg["linux"]["resources"]["memory"] == {"limit": 256 << 20, "swap": 256 << 20}
    tmp = next(m for m in cfg["mounts"] if m["destination"] == "/tmp")
    assert tmp["type"] == "tmpfs" and "size=512m" in tmp["options"]


def test_opt_mount_later_layers_win() -> None:
    assert opt_mount([]) is None
    one = opt_mount([Path("/a")])
    assert one is not None and one.source == "/a"
    many = opt_mount([Path("/a"), Path("/b"), Path("/c")])
    assert many is not None and many.type == "overlay"
    assert "lowerdir=/c:/b:/a" in many.options


def test_lang_layers_are_an_overlay_over_the_prefix(tmp_path: Path) -> None:
    prefix, layer = tmp_path / "py", tmp_path / "py.lang"
    assert lang_source(None, [layer]) is None
    assert lang_source(prefix, []) == str(prefix)
    assert lang_source(prefix, [layer]) == f"overlay:{layer}:{prefix}"
    plain = {m["destination"]: m for m in oci_config(_plan(_spec(lang_dir=prefix)))["mounts"]}
    assert plain["/var/lang"]["source"] == str(prefix)
    cfg = oci_config(_plan(_spec(lang_dir=prefix, lang_layers=(layer,))))
    lang = next(m for m in cfg["mounts"] if m["destination"] == "/var/lang")
    assert lang["type"] == "overlay"
    assert f"lowerdir={layer}:{prefix}" in lang["options"] and "ro" in lang["options"]


def test_etc_files() -> None:
    files = rootfs.etc_files(rootfs.NetworkNames(host_addr="169.254.1.2", dns="169.254.1.3"))
    assert "sbx_user1051:x:993:990:" in files["passwd"]
    assert "169.254.100.1\tsandbox sandbox.localdomain" in files["hosts"]
    assert "169.254.1.2\thost.lambdalet.internal" in files["hosts"]
    assert files["resolv.conf"].startswith("nameserver 169.254.1.3")
    none = rootfs.etc_files(rootfs.NetworkNames(host_addr=None, dns=None))
    assert "host.lambdalet.internal" not in none["hosts"]
    assert "nameserver" not in none["resolv.conf"]


def test_base_rootfs(tmp_path: Path) -> None:
    net = rootfs.NetworkNames(host_addr=None, dns=None)
    root = rootfs.ensure_base_rootfs(tmp_path, net)
    assert (root / "bin").readlink() == Path("usr/bin")
    assert (root / "var/task").is_dir() and (root / "etc/passwd").is_file()
    assert rootfs.ensure_base_rootfs(tmp_path, net) == root
    assert not (root / "root").exists() and not (root / "home").exists()


def test_line_splitter() -> None:
    s = LineSplitter(max_line=8)
    assert s.feed(b"ab\ncd") == [b"ab\n"]
    assert s.feed(b"ef\n") == [b"cdef\n"]
    assert s.feed(b"0123456789\n") == [b"01234567", b"89\n"]
    assert s.feed(b"tail") == []
    assert s.flush() == b"tail"
    assert s.flush() == b""


def test_merge_layers(tmp_path: Path) -> None:
    a, b, dest = tmp_path / "a", tmp_path / "b", tmp_path / "dest"
    (a / "sub").mkdir(parents=True)
    (b / "sub").mkdir(parents=True)
    (a / "sub/x").write_text("a")
    (b / "sub/x").write_text("b")
    (a / "only").write_text("a")
    merge_layers([a, b], dest)
    assert (dest / "sub/x").read_text() == "b"
    assert (dest / "only").read_text() == "a"


def test_cpu_weight_follows_memory_and_spares_build_at_the_lowest() -> None:
    from dataclasses import replace

    plan = _plan(_spec(memory_mb=1769))
    assert oci_config(plan)["linux"]["resources"]["cpu"] == {"shares": 1024}
    spare = replace(plan, attach_dir=Path("/e/attach"))
    assert oci_config(spare)["linux"]["resources"]["cpu"] == {"shares": 2}


def test_compiled_agent_runs_without_an_interpreter() -> None:
    from dataclasses import replace

    plan = replace(_plan(_spec()), agent_compiled=True)
    cfg = oci_config(plan)
    assert cfg["process"]["args"] == [rootfs.AGENT_BINARY]
    assert not any(e.startswith("LD_LIBRARY_PATH=") for e in cfg["process"]["env"])
    assert rootfs.AGENT_PYTHON_PREFIX not in {m["destination"] for m in cfg["mounts"]}
    py = oci_config(_plan(_spec()))
    assert py["process"]["args"][0] == "/var/rapid/python/bin/python3.11"
    assert rootfs.AGENT_PYTHON_PREFIX in {m["destination"] for m in py["mounts"]}


def test_agent_message_fields() -> None:
    import pytest

    from lambdalet.sandbox.base import SpawnError
    from lambdalet.sandbox.runc import agent_message

    msg = agent_message(("spawn", 4, ["/bin/sh", "-c", "x"], {"A": "1=2"}, "/var/task"))
    assert msg == b"spawn\x004\x003\x00/bin/sh\x00-c\x00x\x001\x00A=1=2\x00/var/task"
    assert agent_message(("signal", 12, 15)) == b"signal\x0012\x0015"
    with pytest.raises(SpawnError):
        agent_message(("spawn", 1, ["a\x00b"], {}, "/"))


def test_image_sandbox_has_the_image_as_root_and_nothing_of_the_host() -> None:
    spec = dataclasses.replace(_spec(), image_rootfs=Path("/data/images/roots/abc/rootfs"))
    plan = dataclasses.replace(_plan(spec), agent_compiled=True, base_rootfs=Path("/data/rootfs/x"))
    cfg = oci_config(plan)
    assert cfg["root"] == {"path": "/data/images/roots/abc/rootfs", "readonly": True}
    by_dest = {m["destination"]: m for m in cfg["mounts"]}
    for host_dir in ("/usr", "/var/task", "/opt", "/var/runtime", "/var/lang", "/var/rapid/python"):
        assert host_dir not in by_dest
    assert by_dest["/var/rapid/agent"]["source"] == "/data/rapid/h"
    assert by_dest["/etc/hosts"]["source"] == "/data/rootfs/x/etc/hosts"
    assert by_dest["/etc/resolv.conf"]["options"] == ["rbind", "ro", "nosuid", "nodev"]
    assert "rw" in by_dest["/tmp"]["options"]
    assert cfg["process"]["args"] == ["/var/rapid/agent/agent"]
    assert cfg["process"]["user"] == {"uid": 993, "gid": 990}


def test_image_sandbox_needs_the_compiled_agent() -> None:
    spec = dataclasses.replace(_spec(), image_rootfs=Path("/img"))
    with pytest.raises(SandboxError, match="compiled sandbox agent"):
        oci_config(_plan(spec))
