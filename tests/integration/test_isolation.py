"""What a function can and cannot see: the sandbox through a real invoke."""

from __future__ import annotations

from typing import Any

import pytest

from tests.integration.harness import create, invoke

pytestmark = pytest.mark.integration

PROBE = r"""
import os, socket

def _try_write(path):
    try:
        with open(path, "w") as f:
            f.write("x")
        return "written"
    except OSError as e:
        return e.strerror

def handler(event, context):
    status = open("/proc/self/status").read()
    cap_eff = [l.split()[1] for l in status.splitlines() if l.startswith("CapEff:")][0]
    pids = sorted(int(p) for p in os.listdir("/proc") if p.isdigit())
    return {
        "uid": os.getuid(),
        "gid": os.getgid(),
        "cap_eff": cap_eff,
        "pids": pids,
        "hostname": socket.gethostname(),
        "write_root": _try_write("/newfile"),
        "write_task": _try_write("/var/task/newfile"),
        "write_opt": _try_write("/opt/newfile"),
        "write_tmp": _try_write("/tmp/newfile"),
        "exists": {p: os.path.exists(p) for p in ("/work", "/root", "/home", "/var/task/app.py",
                                                   "/var/runtime", "/etc/passwd")},
        "sandbox_addr": socket.gethostbyname("sandbox.localdomain"),
        "sandbox_short": socket.gethostbyname("sandbox"),
        "nofile": open("/proc/self/limits").read(),
        "exec_bit": os.access("/var/task/tool.sh", os.X_OK),
    }
"""


def test_sandbox_isolation(lam: Any) -> None:
    name = create(
        lam, {"app.py": PROBE, "tool.sh": "#!/bin/sh\necho hi\n"}, executable=("tool.sh",)
    )
    r = invoke(lam, name)
    assert r.function_error is None, r.payload
    out = r.json()
    assert out["uid"] != 0 and out["gid"] != 0
    assert int(out["cap_eff"], 16) == 0
    # own PID namespace: only the sandbox's own few processes are visible
    assert len(out["pids"]) < 10 and min(out["pids"]) == 1, out["pids"]
    assert out["hostname"] == "sandbox"
    assert out["write_root"] == "Read-only file system"
    assert out["write_task"] == "Read-only file system"
    assert out["write_opt"] in ("Read-only file system", "Permission denied")
    assert out["write_tmp"] == "written"
    assert out["exists"]["/work"] is False
    assert out["exists"]["/root"] is False
    assert out["exists"]["/var/task/app.py"] is True
    assert out["exists"]["/var/runtime"] is True
    assert out["sandbox_addr"] and out["sandbox_short"] == out["sandbox_addr"]
    assert "Max open files            1024                 1024" in out["nofile"]
    assert out["exec_bit"] is True


def test_fixed_port_does_not_collide_between_environments(lam: Any) -> None:
    code = """
import socket, time
def handler(event, context):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("sandbox.localdomain", 4243))
    s.listen(1)
    time.sleep(event.get("hold", 0))
    s.close()
    return "bound"
"""
    from concurrent.futures import ThreadPoolExecutor

    name = create(lam, {"app.py": code}, Timeout=10)
    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(lambda _: invoke(lam, name, {"hold": 1}), range(2)))
    assert [r.json() for r in results] == ["bound", "bound"], [r.payload for r in results]
