"""Backend choice from injected facts."""

from __future__ import annotations

import pytest

from lambdalet.sandbox.base import SandboxError
from lambdalet.sandbox.detect import Facts, decide

GOOD = Facts(
    is_root=True,
    runc="/usr/sbin/runc",
    cgroup_version="v2",
    cgroup_problem=None,
    netns_problem=None,
    slirp4netns="/usr/bin/slirp4netns",
    mkfs_ext4="/sbin/mkfs.ext4",
)


def test_auto_picks_runc_when_everything_works() -> None:
    d = decide(GOOD)
    assert (d.backend, d.cgroup, d.network, d.host_network) == ("runc", "v2", "namespace", True)


def test_not_root_falls_back_to_process_with_reason() -> None:
    d = decide(Facts(**{**GOOD.__dict__, "is_root": False, "rootless_blockers": ("no uidmap",)}))
    assert d.backend == "process" and d.network == "host" and d.cgroup == "none"
    assert any("not root" in r for r in d.reasons)


def test_missing_runc_says_how_to_install() -> None:
    d = decide(Facts(**{**GOOD.__dict__, "runc": None}))
    assert d.backend == "process"
    assert any("apt-get install runc" in r for r in d.reasons)


def test_forcing_runc_where_it_cannot_work_raises() -> None:
    with pytest.raises(SandboxError, match="cgroups unusable: no memory"):
        decide(
            Facts(**{**GOOD.__dict__, "cgroup_version": None, "cgroup_problem": "no memory"}),
            "runc",
        )


def test_forcing_process() -> None:
    d = decide(GOOD, "process")
    assert d.backend == "process" and d.reasons == ("forced by configuration",)


def test_no_slirp_means_no_host_network_warning() -> None:
    d = decide(Facts(**{**GOOD.__dict__, "slirp4netns": None}))
    assert d.backend == "runc" and not d.host_network
    assert any("slirp4netns" in w for w in d.warnings)


def test_unknown_backend() -> None:
    with pytest.raises(SandboxError):
        decide(GOOD, "docker")


ROOTLESS = Facts(**{**GOOD.__dict__, "is_root": False, "cgroup_version": None})


def test_not_root_with_user_namespaces_picks_rootless() -> None:
    d = decide(ROOTLESS)
    assert (d.backend, d.cgroup, d.network, d.host_network) == (
        "rootless",
        "none",
        "namespace",
        True,
    )
    assert any("rlimits stand in" in r for r in d.reasons)


def test_forcing_runc_as_an_ordinary_user_is_rootless() -> None:
    assert decide(ROOTLESS, "runc").backend == "rootless"
    assert decide(ROOTLESS, "process").backend == "process"


def test_rootless_blocked_falls_back_to_process_and_says_how_to_enable() -> None:
    facts = Facts(
        **{
            **ROOTLESS.__dict__,
            "rootless_blockers": ("no /etc/subuid range",),
            "rootless_enable": "sudo sh -c 'apt-get install -y uidmap'",
        }
    )
    d = decide(facts)
    assert d.backend == "process"
    assert "rootless sandboxes: no /etc/subuid range" in d.reasons
    assert any("run once: sudo sh -c" in r for r in d.reasons)
