"""Subordinate id ranges, what rootless needs, and the per-environment mappings."""

from __future__ import annotations

import pytest

from lambdalet.sandbox import rootfs, userns


def _host(**kw: object) -> userns.Host:
    args: dict[str, object] = dict(
        user="dev",
        uid=1000,
        gid=1000,
        newuidmap="/usr/bin/newuidmap",
        newgidmap="/usr/bin/newgidmap",
        subuids=(userns.IdRange(100000, 65536),),
        subgids=(userns.IdRange(100000, 65536),),
        userns_problem=None,
    )
    args.update(kw)
    return userns.Host(**args)  # type: ignore[arg-type]


def test_parse_subids_by_name_or_uid() -> None:
    text = "alice:100000:65536\n# note\ndev:165536:65536\n1000:300000:10\nbad:x:1\ndev:1:0\n"
    assert userns.parse_subids(text, "dev", 1000) == [
        userns.IdRange(165536, 65536),
        userns.IdRange(300000, 10),
    ]
    assert userns.parse_subids(text, "nobody", 5) == []


def test_a_ready_host_has_no_blockers_and_nothing_to_enable() -> None:
    assert userns.blockers(_host()) == []
    assert userns.enable_command(_host()) == ""


def test_blockers_say_what_is_missing_and_the_one_command_fixes_it() -> None:
    host = _host(newuidmap=None, subuids=(), userns_problem="user namespaces are disabled")
    found = userns.blockers(host)
    assert found[0] == "user namespaces are disabled"
    assert any("apt-get install uidmap" in b for b in found)
    assert any("/etc/subuid" in b for b in found)
    cmd = userns.enable_command(host)
    assert cmd.startswith("sudo sh -c '") and "apt-get install -y uidmap" in cmd
    assert "usermod --add-subuids 100000-165535 --add-subgids 100000-165535 dev" in cmd
    assert "unprivileged_userns_clone=1" in cmd


def test_a_range_too_small_is_a_blocker() -> None:
    assert any("subgid" in b for b in userns.blockers(_host(subgids=(userns.IdRange(1, 8),))))


def test_each_slot_maps_the_function_user_to_its_own_subordinate_uid() -> None:
    subs = userns.IdRange(100000, 65536)
    a = userns.mapping(1000, 1000, subs, subs, 1)
    b = userns.mapping(1000, 1000, subs, subs, 2)
    assert a.sandbox_uid == 100001 and b.sandbox_uid == 100002
    assert a.host_access_uid == b.host_access_uid == 100000
    assert (rootfs.SANDBOX_UID, 100001, 1) in a.uid_map
    assert (0, 1000, 1) in a.uid_map  # runc's set-up runs as the server's user
    assert (userns.HOST_ACCESS_INSIDE, 100000, 1) in a.gid_map
    assert a.to_oci()["uidMappings"][1] == {
        "containerID": rootfs.SANDBOX_UID,
        "hostID": 100001,
        "size": 1,
    }
    with pytest.raises(ValueError):
        userns.mapping(1000, 1000, subs, subs, 0)  # the helper's id
    with pytest.raises(ValueError):
        userns.mapping(1000, 1000, subs, subs, 65536)


def test_slots_are_handed_out_once_until_given_back() -> None:
    pool = userns.SlotPool(2)
    a, b = pool.take(), pool.take()
    assert {a, b} == {1, 2}
    with pytest.raises(RuntimeError):
        pool.take()
    pool.give_back(a)
    assert pool.take() == a
