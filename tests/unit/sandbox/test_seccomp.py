"""The seccomp section of the OCI config: the containers profile, converted and tightened."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest

from lambdalet.sandbox import seccomp
from lambdalet.sandbox.runc import oci_config
from tests.unit.sandbox.test_runc_config import _plan, _spec

PROFILE: dict[str, Any] = {
    "defaultAction": "SCMP_ACT_ERRNO",
    "defaultErrnoRet": 38,
    "archMap": [
        {"architecture": "SCMP_ARCH_X86_64", "subArchitectures": ["SCMP_ARCH_X86"]},
        {"architecture": "SCMP_ARCH_AARCH64", "subArchitectures": ["SCMP_ARCH_ARM"]},
    ],
    "syscalls": [
        {
            "names": ["read", "write", "clone", "clone3", "unshare", "setns", "ptrace", "keyctl"],
            "action": "SCMP_ACT_ALLOW",
        },
        {"names": ["arch_prctl"], "action": "SCMP_ACT_ALLOW", "includes": {"arches": ["amd64"]}},
        {"names": ["newer"], "action": "SCMP_ACT_ALLOW", "includes": {"minKernel": "6.9"}},
        {
            "names": ["bpf", "mount"],
            "action": "SCMP_ACT_ALLOW",
            "includes": {"caps": ["CAP_SYS_ADMIN"]},
        },
        {
            "names": ["bpf", "mount"],
            "action": "SCMP_ACT_ERRNO",
            "errnoRet": 1,
            "excludes": {"caps": ["CAP_SYS_ADMIN"]},
        },
        {
            "names": ["personality"],
            "action": "SCMP_ACT_ALLOW",
            "args": [{"index": 0, "value": 8, "valueTwo": 0, "op": "SCMP_CMP_EQ"}],
            "comment": "",
        },
    ],
}


def _rules(config: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for rule in config["syscalls"]:
        for name in rule["names"]:
            out.setdefault(name, []).append(rule)
    return out


def test_the_profile_is_converted_for_a_process_without_capabilities() -> None:
    got = seccomp.oci_seccomp(PROFILE, machine="x86_64", kernel=(6, 1))
    assert got["defaultAction"] == "SCMP_ACT_ERRNO" and got["defaultErrnoRet"] == 38
    assert got["architectures"] == ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"]
    rules = _rules(got)
    assert [r["action"] for r in rules["read"]] == ["SCMP_ACT_ALLOW"]
    assert [r["action"] for r in rules["arch_prctl"]] == ["SCMP_ACT_ALLOW"]
    assert "newer" not in rules  # needs a newer kernel than ours
    # the CAP_SYS_ADMIN rule is left out, the rule for those without it kept
    assert [(r["action"], r.get("errnoRet")) for r in rules["mount"]] == [("SCMP_ACT_ERRNO", 1)]
    assert rules["personality"][0]["args"] == [
        {"index": 0, "value": 8, "valueTwo": 0, "op": "SCMP_CMP_EQ"}
    ]
    on_arm = _rules(seccomp.oci_seccomp(PROFILE, machine="aarch64", kernel=(6, 1)))
    assert "arch_prctl" not in on_arm
    with pytest.raises(ValueError):
        seccomp.oci_seccomp(PROFILE, machine="sparc", kernel=(6, 1))


def test_namespaces_tracing_keyrings_bpf_and_perf_are_refused() -> None:
    rules = _rules(seccomp.oci_seccomp(PROFILE, machine="x86_64", kernel=(6, 1)))
    for name in ("unshare", "setns", "ptrace", "keyctl", "add_key", "bpf", "perf_event_open"):
        assert [(r["action"], r.get("errnoRet")) for r in rules[name]] == [
            ("SCMP_ACT_ERRNO", seccomp.EPERM)
        ], name
    # clone3's flags are in memory, out of seccomp's reach: the default (ENOSYS) answers it
    assert "clone3" not in rules
    # clone only without any CLONE_NEW* flag
    assert [r["args"] for r in rules["clone"]] == [
        [
            {
                "index": 0,
                "value": seccomp.CLONE_NAMESPACE_FLAGS,
                "valueTwo": 0,
                "op": "SCMP_CMP_MASKED_EQ",
            }
        ]
    ]
    assert seccomp.CLONE_NAMESPACE_FLAGS & 0x10000000  # CLONE_NEWUSER
    assert seccomp.CLONE_NAMESPACE_FLAGS & 0x40000000  # CLONE_NEWNET


def test_the_installed_profile_converts_without_conflicting_rules() -> None:
    config, note = seccomp.for_this_host()
    if config is None:
        pytest.skip(note)
    actions: dict[str, set[str]] = {}
    for rule in config["syscalls"]:
        if rule.get("args"):
            continue
        for name in rule["names"]:
            actions.setdefault(name, set()).add(rule["action"])
    assert {n: a for n, a in actions.items() if len(a) > 1} == {}
    assert actions["read"] == {"SCMP_ACT_ALLOW"}
    assert actions["unshare"] == {"SCMP_ACT_ERRNO"}


def test_a_missing_profile_turns_seccomp_off_and_says_so(tmp_path: Path) -> None:
    config, note = seccomp.for_this_host(tmp_path / "none.json")
    assert config is None and seccomp.PROFILE_PACKAGE in note
    (tmp_path / "bad.json").write_text("{")
    config, note = seccomp.for_this_host(tmp_path / "bad.json")
    assert config is None and "unreadable" in note


def test_the_oci_config_carries_the_filter() -> None:
    plan = _plan(_spec())
    assert "seccomp" not in oci_config(plan)["linux"]
    section = seccomp.oci_seccomp(PROFILE, machine="x86_64", kernel=(6, 1))
    cfg = oci_config(dataclasses.replace(plan, seccomp=section))
    assert cfg["linux"]["seccomp"] == section


def test_doctor_names_each_protection_and_what_is_off(monkeypatch: pytest.MonkeyPatch) -> None:
    from lambdalet.sandbox import netns, runc

    monkeypatch.setattr(netns.shutil, "which", lambda name: f"/usr/bin/{name}")
    listed = runc.protections("seccomp: on", host_network=True)
    assert listed[0] == "seccomp: on"
    assert "control plane: refused to sandboxes" in listed[1]
    assert "unreachable" in runc.protections("x", host_network=False)[1]
    monkeypatch.setattr(netns.shutil, "which", lambda name: None)
    assert "REACHABLE" in runc.protections("x", host_network=True)[1]
