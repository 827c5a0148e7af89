"""What a function sees of its limits, as root (runc) and as an ordinary user (rootless).

The five cases the process backend fails (issue 18) hold on both sandboxes; the rootless
one additionally gives each environment a subordinate uid of its own.
"""

from __future__ import annotations

import os
import pwd
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from tests.integration.harness import create, invoke

pytestmark = pytest.mark.integration

PROBE = r"""
import os, subprocess, sys, time

FORKS = '''
import os, time
n = 0
try:
    while n < 3000:
        if os.fork() == 0:
            time.sleep(30)
            os._exit(0)
        n += 1
except OSError:
    pass
print(n, flush=True)
os.killpg(0, 9)
'''

def handler(event, context):
    if event.get("hold"):
        time.sleep(event["hold"])
        return open("/proc/self/uid_map").read()
    if event.get("alloc_mb"):
        b = b"x" * (event["alloc_mb"] << 20)
        return len(b)
    forks = subprocess.run(
        [sys.executable, "-c", FORKS], capture_output=True, text=True, start_new_session=True
    )
    st = os.statvfs("/tmp")
    return {
        "task_root": os.environ["LAMBDA_TASK_ROOT"],
        "forks": forks.stdout.strip(),
        "tmp_mb": st.f_blocks * st.f_frsize // (1 << 20),
        "host_tmp_visible": os.path.exists(event["marker"]),
    }
"""


def test_memory_forks_tmp_and_paths_are_the_sandboxs(lam: Any) -> None:
    small = create(lam, {"app.py": PROBE}, MemorySize=128)
    # 400 MB under 128 MB: killed by the memory cgroup (root), or MemoryError past
    # RLIMIT_DATA (rootless without a delegated cgroup)
    r = invoke(lam, small, {"alloc_mb": 400})
    assert r.function_error is not None, r.payload
    assert invoke(lam, small, {"alloc_mb": 16}).json() == 16 << 20

    name = create(
        lam, {"app.py": PROBE}, MemorySize=1024, EphemeralStorage={"Size": 600}, Timeout=60
    )
    with tempfile.NamedTemporaryFile(dir="/tmp", prefix="lambdalet-host-") as marker:
        r = invoke(lam, name, {"marker": marker.name})
    assert r.function_error is None, r.payload
    out = r.json()
    assert out["task_root"] == "/var/task"
    # Lambda's 1024 processes: the pids cgroup (root), RLIMIT_NPROC of the environment's
    # own uid (rootless)
    assert out["forks"].isdigit() and int(out["forks"]) < 1024, out
    assert 500 <= out["tmp_mb"] <= 600, out
    assert out["host_tmp_visible"] is False


def _outside_uid(uid_map: str, inside: int) -> int:
    for line in uid_map.splitlines():
        first, outside, count = (int(f) for f in line.split())
        if first <= inside < first + count:
            return outside + inside - first
    raise AssertionError(f"uid {inside} not mapped: {uid_map}")


def test_each_environment_runs_as_its_own_uid_outside(lam: Any) -> None:
    name = create(lam, {"app.py": PROBE}, Timeout=10)
    with ThreadPoolExecutor(2) as pool:
        maps = [r.json() for r in pool.map(lambda _: invoke(lam, name, {"hold": 1}), range(2))]
    outside = {_outside_uid(m, 993) for m in maps}
    if os.geteuid() == 0:
        assert outside == {993}  # root's sandboxes share uid 993; the pids cgroup bounds each
    else:
        # rootless: a subordinate uid per environment, neither the server's nor root
        assert len(outside) == 2 and os.geteuid() not in outside and 0 not in outside
        subuids = Path("/etc/subuid").read_text()
        assert any(
            int(start) < uid < int(start) + int(count)
            for uid in outside
            for user, start, count in (line.split(":") for line in subuids.split())
            if user == pwd.getpwuid(os.geteuid()).pw_name
        ), (outside, subuids)
