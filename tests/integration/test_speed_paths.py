"""The fast paths keep fidelity: a spare sandbox attached to a function and a pre-started
Python runtime give the function exactly what a plain start gives it.

The server keeps spare sandboxes (runc backend); the first runtime it starts is a plain
start (nothing is learned yet), later ones run in pre-started runtimes.  Each probe says
which path it ran on (the process's command line) so the comparisons are real.
"""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.harness import Server, create, free_port, invoke, require_sandbox
from tests.needs import NO_SPARES, rootless_lacks

pytestmark = pytest.mark.integration

PROBE = """
import json, os, sys, resource
_IMPORTED = sorted(sys.modules)
_MAIN = sorted(vars(sys.modules["__main__"]))

def _fds():
    out = []
    for f in sorted(os.listdir("/proc/self/fd"), key=int):
        try:
            out.append((int(f), os.readlink("/proc/self/fd/" + f)))
        except OSError:
            pass  # the listing's own descriptor
    return out

def handler(event, context):
    st = os.statvfs("/tmp")
    probe = "/var/task/probe-write"
    try:
        open(probe, "w")
        task_write = "written"
    except OSError as e:
        task_write = e.strerror
    return {
        "cmdline": open("/proc/self/cmdline", "rb").read().decode().split("\\0"),
        "environ": dict(os.environ),
        "path": sys.path,
        "cwd": os.getcwd(),
        "argv": sys.argv,
        "flags": list(sys.flags),
        "executable": sys.executable,
        "modules_at_import": _IMPORTED,
        "main_names": _MAIN,
        "main_name": __name__,
        "pgid_is_pid": os.getpgid(0) == os.getpid(),
        "ppid": os.getppid(),
        "fds": _fds(),
        "tmp_mb": st.f_blocks * st.f_frsize // (1024 * 1024),
        "task_files": sorted(os.listdir("/var/task")),
        "task_write": task_write,
        "nofile": resource.getrlimit(resource.RLIMIT_NOFILE)[0],
        "uid": os.getuid(),
        "hostname": os.uname().nodename,
    }
"""


@pytest.fixture(scope="module")
def lam(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A server of its own with spare sandboxes on, on a fresh data dir (so the first
    runtime it starts is a plain start: no runtime is installed to pre-start yet)."""
    require_sandbox()
    rootless_lacks(NO_SPARES)
    base: Path = tmp_path_factory.mktemp("speed")
    srv = Server(base / "data", free_port(), extra_args=("--spare-sandboxes", "2"))
    srv.start()
    try:
        yield srv.client()
    finally:
        srv.stop()


#: values that differ per function or per invoke by design
PER_FUNCTION = {
    "AWS_LAMBDA_FUNCTION_NAME",
    "AWS_LAMBDA_LOG_STREAM_NAME",
    "AWS_LAMBDA_LOG_GROUP_NAME",
    "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
    "_X_AMZN_TRACE_ID",
}


def _prestarted(p: dict[str, Any]) -> bool:
    return any("lambdalet_zygote" in part for part in p["cmdline"])


def _comparable(p: dict[str, Any]) -> dict[str, Any]:
    out = dict(p)
    out["environ"] = {k: v for k, v in p["environ"].items() if k not in PER_FUNCTION}
    for k in ("cmdline", "fds"):
        out.pop(k)
    return out


def _probe(lam: Any, **kwargs: Any) -> dict[str, Any]:
    name = create(lam, {"app.py": PROBE}, **kwargs)
    r = invoke(lam, name)
    assert r.function_error is None, r.payload
    out: dict[str, Any] = r.json()
    return out


def test_prestarted_runtime_is_indistinguishable_from_a_plain_start(lam: Any) -> None:
    plain = _probe(lam, MemorySize=256)
    assert not _prestarted(plain)
    fast: dict[str, Any] | None = None
    for _ in range(20):  # the spares pre-start once a runtime has been seen
        time.sleep(0.3)
        p = _probe(lam, MemorySize=512)
        if _prestarted(p):
            fast = p
            break
    assert fast is not None, "no invoke ran on a pre-started runtime"
    assert _comparable(fast) == _comparable(plain)
    assert fast["environ"]["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"] == "512"
    assert fast["argv"][1:] == ["app.handler"] and fast["argv"][0].endswith("__main__.py")
    assert fast["cwd"] == "/var/task" and fast["path"][0] == "/var/task"
    # fds: stdin, stdout, stderr and what the runtime opened; no pre-start pipe, and
    # nothing of the agent's (the pipe it received for the output) in either
    assert [fd for fd, _ in plain["fds"]][:3] == [0, 1, 2]
    assert sum(1 for _, t in plain["fds"] if t.startswith("pipe:")) == 2
    kinds = [(fd, target.split(":")[0]) for fd, target in fast["fds"]]
    assert kinds == [(fd, target.split(":")[0]) for fd, target in plain["fds"]], (
        fast["fds"],
        plain["fds"],
    )
    # the attached sandbox: the function's code, read-only; /tmp at its default size
    assert fast["task_files"] == ["app.py"]
    assert fast["task_write"] == "Read-only file system"
    assert 400 <= fast["tmp_mb"] <= 512


def test_exec_wrapper_and_interpreter_settings_fall_back_to_a_plain_start(lam: Any) -> None:
    _probe(lam)  # something has been learned
    time.sleep(1.0)
    wrapper = '#!/bin/sh\nexport WRAPPED=yes\nexec "$@"\n'
    name = create(
        lam,
        {"app.py": PROBE, "wrap.sh": wrapper},
        executable=("wrap.sh",),
        Environment={"Variables": {"AWS_LAMBDA_EXEC_WRAPPER": "/var/task/wrap.sh"}},
    )
    p = invoke(lam, name).json()
    assert p["environ"]["WRAPPED"] == "yes" and not _prestarted(p)
    time.sleep(1.0)
    flagged = _probe(lam, Environment={"Variables": {"PYTHONDONTWRITEBYTECODE": "1"}})
    assert flagged["environ"]["PYTHONDONTWRITEBYTECODE"] == "1"
    # sys.flags.dont_write_bytecode is the 5th field of sys.flags
    assert flagged["flags"][4] == 1


def test_a_restarted_server_pre_starts_the_installed_runtime_before_any_function(
    tmp_path: Path,
) -> None:
    """With the host Python's runtime installed, the spares pre-start it from the start."""
    require_sandbox()
    rootless_lacks(NO_SPARES)
    data = tmp_path / "data"
    first = Server(data, free_port())
    first.start()
    try:  # installs the runtime into the data dir
        assert invoke(first.client(), create(first.client(), {"app.py": PROBE})).json()
    finally:
        first.stop()
    again = Server(data, free_port())
    again.start()
    try:
        lam = again.client()
        deadline = time.monotonic() + 30
        while True:  # the two spares are built (and their runtime pre-started) at start
            with urllib.request.urlopen(f"{again.url}/lambdalet/admin/backend") as r:
                if json.loads(r.read())["spares"]["ready"] == 2:
                    break
            assert time.monotonic() < deadline, "spares not built"
            time.sleep(0.1)
        time.sleep(1.0)
        p = _probe(lam, MemorySize=256)
        assert _prestarted(p), p["cmdline"]
        assert p["argv"][1:] == ["app.handler"] and p["cwd"] == "/var/task"
    finally:
        again.stop()


CRASHER = (
    PROBE
    + """
_COUNT = {"n": 0}
_plain_handler = handler

def handler(event, context):
    _COUNT["n"] += 1
    if event.get("crash"):
        os._exit(3)
    return {**_plain_handler(event, context), "count": _COUNT["n"]}
"""
)


def test_the_first_invoke_after_a_reset_runs_on_a_pre_started_runtime(lam: Any) -> None:
    name = create(lam, {"app.py": CRASHER})
    assert invoke(lam, name).json()["count"] == 1
    crashed = invoke(lam, name, {"crash": True})
    assert crashed.function_error == "Unhandled"
    after = invoke(lam, name).json()
    # a fresh runtime (globals gone), started from the runtime pre-started after the reset
    assert after["count"] == 1
    assert _prestarted(after), after["cmdline"]
    assert after["argv"][1:] == ["app.handler"] and after["cwd"] == "/var/task"
