"""The server as a user runs it: restart durability, clean shutdown, AWS CLI, logs command."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from lambdalet.config import PYTHON_AGENT_ENV
from lambdalet.sandbox.base import Capability
from tests.integration.harness import (
    Server,
    create,
    free_port,
    invoke,
    make_zip,
    require_sandbox,
)
from tests.needs import NO_SPARES, rootless_lacks

pytestmark = pytest.mark.integration

HELLO = (
    "def handler(event, context):\n    print('hello from the handler')\n    return {'ok': True}\n"
)


@pytest.fixture
def own_server(tmp_path: Path) -> Any:
    """A server of its own, for a test that stops or restarts it (the others share the
    module's ``server``)."""
    require_sandbox()
    srv = Server(tmp_path / "data", free_port())
    srv.start()
    yield srv
    if srv.proc is not None and srv.proc.poll() is None:
        srv.stop()


def _leftovers(marker: str) -> dict[str, list[str]]:
    mounts = [line for line in Path("/proc/mounts").read_text().splitlines() if marker in line]
    procs = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if marker in cmd and "pytest" not in cmd:
            procs.append(cmd)
    return {"mounts": mounts, "procs": procs}


def test_restart_keeps_functions_and_layers_and_sigterm_leaves_nothing(own_server: Server) -> None:
    lam = own_server.client()
    layer = lam.publish_layer_version(
        LayerName="shared", Content={"ZipFile": make_zip({"python/shared_mod.py": "VALUE = 42\n"})}
    )
    code = "import shared_mod\ndef handler(event, context):\n    return shared_mod.VALUE\n"
    name = create(lam, {"app.py": code}, Layers=[layer["LayerVersionArn"]])
    assert invoke(lam, name).json() == 42
    marker = str(own_server.data_dir)
    runc_list = ["runc", "--root", str(own_server.data_dir / "runc"), "list", "-q"]
    assert subprocess.run(runc_list, capture_output=True, text=True).stdout.split()
    if os.geteuid() == 0:  # rootless: the mounts are in the sandbox's own mount namespace
        assert _leftovers(marker)["mounts"], "a running environment has mounts under the data dir"

    assert own_server.stop() == 0
    left = _leftovers(marker)
    assert left == {"mounts": [], "procs": []}, left
    assert subprocess.run(runc_list, capture_output=True, text=True).stdout.split() == []

    own_server.start()
    lam = own_server.client()
    assert (
        lam.get_function(FunctionName=name)["Configuration"]["Layers"][0]["Arn"]
        == (layer["LayerVersionArn"])
    )
    assert lam.get_layer_version(LayerName="shared", VersionNumber=1)["Version"] == 1
    r = invoke(lam, name)
    assert r.json() == 42 and "Init Duration" in r.log


def test_aws_cli_create_and_invoke(server: Server, tmp_path: Path) -> None:
    zip_path = tmp_path / "fn.zip"
    zip_path.write_bytes(make_zip({"app.py": HELLO}))
    aws = str(Path(sys.executable).with_name("aws"))
    env = {
        **os.environ,
        "AWS_ACCESS_KEY_ID": "x",
        "AWS_SECRET_ACCESS_KEY": "y",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    common = ["--endpoint-url", server.url, "--output", "json"]
    created = subprocess.run(
        [
            aws,
            "lambda",
            "create-function",
            "--function-name",
            "cli-fn",
            "--runtime",
            f"python{sys.version_info.major}.{sys.version_info.minor}",
            "--role",
            "arn:aws:iam::123456789012:role/r",
            "--handler",
            "app.handler",
            "--zip-file",
            f"fileb://{zip_path}",
            *common,
        ],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    assert json.loads(created.stdout)["FunctionName"] == "cli-fn"
    subprocess.run(
        [aws, "lambda", "wait", "function-active-v2", "--function-name", "cli-fn", *common],
        env=env,
        check=True,
    )
    out = tmp_path / "out.json"
    inv = subprocess.run(
        # AWS CLI v1 (from PyPI) sends --payload as given; v2 needs
        # --cli-binary-format raw-in-base64-out for the same
        [
            aws,
            "lambda",
            "invoke",
            "--function-name",
            "cli-fn",
            "--payload",
            '{"a":1}',
            "--log-type",
            "Tail",
            *common,
            str(out),
        ],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    meta = json.loads(inv.stdout)
    assert meta["StatusCode"] == 200 and meta["ExecutedVersion"] == "$LATEST"
    assert json.loads(out.read_text()) == {"ok": True}
    import base64

    assert "hello from the handler" in base64.b64decode(meta["LogResult"]).decode()

    logs = subprocess.run(
        [
            sys.executable,
            "-m",
            "lambdalet.cli",
            "logs",
            "cli-fn",
            "--endpoint",
            server.url,
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "hello from the handler" in logs.stdout
    assert "REPORT RequestId: " in logs.stdout and "INIT_START" in logs.stdout


def test_logs_follow_prints_new_lines(server: Server) -> None:
    lam = server.client()
    name = create(lam, {"app.py": HELLO})
    follower = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "lambdalet.cli",
            "logs",
            name,
            "--follow",
            "--endpoint",
            server.url,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        # --follow alone starts at the end: invoke once it says it follows
        assert follower.stderr is not None
        assert "following" in follower.stderr.readline().decode()
        r = invoke(lam, name, tail=False)
        assert r.function_error is None
        assert follower.stdout is not None
        seen = b""
        deadline = time.monotonic() + 10
        while f"REPORT RequestId: {r.request_id}".encode() not in seen:
            assert time.monotonic() < deadline, seen
            seen += follower.stdout.read1(65536)  # type: ignore[attr-defined]
    finally:
        follower.kill()
        follower.wait()
        for pipe in (follower.stdout, follower.stderr):
            if pipe is not None:
                pipe.close()


def test_doctor_reports_backend() -> None:
    require_sandbox()
    out = subprocess.run(
        [sys.executable, "-m", "lambdalet.cli", "doctor", "--json"],
        capture_output=True,
        text=True,
        check=True,
    )
    info = json.loads(out.stdout)
    rootless = os.geteuid() != 0
    assert info["backend"] == ("rootless" if rootless else "runc")
    assert info["cgroup"] in (("none",) if rootless else ("v1", "v2"))
    assert info["network"] == "namespace"
    # setup installs gcc: the compiled agent is what a server here runs
    assert info["agent"] == "compiled" and info["spares_wanted"] == (0 if rootless else 2), info
    if rootless:  # what is enforced and what is not, named
        assert "pids: RLIMIT_NPROC of the environment's own uid (enforced)" in info["protections"]
        assert any(p.startswith("memory: NOT enforced") for p in info["protections"]), info
    # setup installs the containers seccomp profile and util-linux's setpriv
    protections = "\n".join(info["protections"])
    assert "seccomp: the containers default profile" in protections, info
    assert "control plane: refused to sandboxes" in protections, info
    # every protection and limit of Lambda's, the seccomp filter included (rootless: all
    # but the cgroup's memory limit and accounting and freezer, and container images)
    from lambdalet.sandbox.rootless import capabilities

    want = capabilities(seccomp_on=True) if rootless else frozenset(Capability)
    assert info["capabilities"] == sorted(c.value for c in want), info
    # the Python agent on purpose: configured from the environment, once, by the CLI
    forced = subprocess.run(
        [sys.executable, "-m", "lambdalet.cli", "doctor", "--json"],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, PYTHON_AGENT_ENV: "1"},
    )
    assert json.loads(forced.stdout)["agent"] == "python"


def _environments(srv: Server) -> list[dict[str, Any]]:
    import urllib.request

    with urllib.request.urlopen(f"{srv.url}/lambdalet/admin/environments", timeout=5) as r:
        return list(json.loads(r.read())["Environments"])


def _wait_for(cond: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


def test_freeze_waits_for_the_freeze_delay(tmp_path: Path) -> None:
    """Frozen only after --freeze-delay-ms; an invoke within it needs no thaw."""
    require_sandbox()
    srv = Server(tmp_path / "data", free_port(), extra_args=("--freeze-delay-ms", "1500"))
    srv.start()
    try:
        lam = srv.client()
        name = create(lam, {"app.py": HELLO})
        assert invoke(lam, name).function_error is None
        assert [e["frozen"] for e in _environments(srv)] == [False]
        assert invoke(lam, name).function_error is None
        _wait_for(lambda: _environments(srv)[0]["frozen"] is True, 5.0)
        timeline = _environments(srv)[0]["timeline"]
        events = [t["event"] for t in timeline]
        assert events.count("invoke_end") == 2 and "thawed" not in events, events
        assert events[-1] == "frozen", events
        frozen_at = timeline[-1]["t"]
        ended_at = [t["t"] for t in timeline if t["event"] == "invoke_end"][-1]
        assert frozen_at - ended_at >= 1.4, timeline
        # a frozen environment is thawed for the next invoke
        assert invoke(lam, name).function_error is None
        events = [t["event"] for t in _environments(srv)[0]["timeline"]]
        assert events[-4:] == ["frozen", "thawed", "invoke_start", "invoke_end"], events
    finally:
        srv.stop()


def test_idle_environments_spin_down(tmp_path: Path) -> None:
    require_sandbox()
    srv = Server(tmp_path / "data", free_port(), extra_args=("--idle-timeout", "1"))
    srv.start()
    try:
        lam = srv.client()
        name = create(lam, {"app.py": HELLO})
        assert invoke(lam, name).function_error is None
        envs = _environments(srv)
        assert [(e["function"], e["state"]) for e in envs] == [(name, "Idle")]
        # frozen once the freeze delay (10 ms by default) has passed
        _wait_for(lambda: _environments(srv)[0]["frozen"] is True, 2.0)
        deadline = time.monotonic() + 10
        while _environments(srv):
            assert time.monotonic() < deadline, _environments(srv)
            time.sleep(0.1)
        # spare sandboxes (when configured) keep their mounts while the server runs
        mounts = [
            m
            for m in Path("/proc/mounts").read_text().splitlines()
            if str(srv.data_dir) in m and "/envs/spare-" not in m and "/envs/.ro/" not in m
        ]
        assert mounts == []
        # a new invoke after spin-down is a cold start again
        assert "Init Duration" in invoke(lam, name).log
    finally:
        srv.stop()


def test_process_backend_runs_functions_and_says_it_is_weaker(tmp_path: Path) -> None:
    """The fallback for hosts without root or namespaces: same API, no isolation."""
    srv = Server(tmp_path / "data", free_port(), extra_args=("--backend", "process"))
    srv.start()
    try:
        lam = srv.client()
        name = create(lam, {"app.py": HELLO})
        r = invoke(lam, name)
        assert r.json() == {"ok": True} and "hello from the handler" in r.log
        assert "Init Duration" in r.log
        import urllib.request

        with urllib.request.urlopen(f"{srv.url}/lambdalet/admin/backend", timeout=5) as resp:
            info = json.loads(resp.read())
        assert info["backend"] == "process" and info["isolation"] == "none"
        assert any("NO ISOLATION" in w for w in info["warnings"])
        assert "NO ISOLATION" in srv.log_tail()
    finally:
        srv.stop()


def test_prometheus_metrics(server: Server) -> None:
    import urllib.request

    from prometheus_client.parser import text_string_to_metric_families

    lam = server.client()
    name = create(lam, {"app.py": HELLO})
    invoke(lam, name)
    invoke(lam, name)
    boom = create(lam, {"app.py": "import os\ndef handler(e, c):\n    os._exit(2)\n"})
    invoke(lam, boom)
    with urllib.request.urlopen(f"{server.url}/metrics", timeout=5) as r:
        assert r.headers["Content-Type"].startswith("text/plain")
        text = r.read().decode()
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for fam in text_string_to_metric_families(text)
        for s in fam.samples
    }

    def value(metric: str, **labels: str) -> float:
        return samples.get((metric, tuple(sorted(labels.items()))), 0.0)

    assert value("lambdalet_invocations_total", function=name, outcome="success") == 2
    assert value("lambdalet_cold_starts_total", function=name) == 1
    assert value("lambdalet_invocation_duration_seconds_count", function=name) == 2
    assert value("lambdalet_invocations_total", function=boom, outcome="crash") == 1
    assert value("lambdalet_errors_total", function=boom, error_type="Runtime.ExitError") == 1
    assert (
        value(
            "lambdalet_init_duration_seconds_count", function=name, phase="init", status="success"
        )
        == 1
    )
    assert value("lambdalet_environments", function=name, state="Idle") == 1


def test_admin_timeline_and_recent_invocations(server: Server) -> None:
    import urllib.request

    lam = server.client()
    code = "import time\ndef handler(e, c):\n    time.sleep(e.get('sleep', 0))\n    return 1\n"
    name = create(lam, {"app.py": code}, Timeout=1)
    cold = invoke(lam, name)
    warm = invoke(lam, name)
    slow = invoke(lam, name, {"sleep": 3})
    with urllib.request.urlopen(f"{server.url}/lambdalet/admin/invocations") as r:
        items = [i for i in json.loads(r.read())["Invocations"] if i["function"] == name]
    assert [i["requestId"] for i in items] == [slow.request_id, warm.request_id, cold.request_id]
    assert [i["cold"] for i in items] == [False, False, True]
    assert items[0]["status"] == "timeout" and items[0]["errorType"] == "Sandbox.Timedout"
    assert items[2]["initDurationMs"] > 0 and items[1]["initDurationMs"] is None
    assert all(i["billedDurationMs"] >= i["durationMs"] for i in items)
    env = next(e for e in _environments(server) if e["function"] == name)
    events = [t["event"] for t in env["timeline"]]
    # the first invoke follows its Init at once: the environment is not frozen between them
    assert [e for e in events if e != "function_init_start"][:4] == [
        "init_start",
        "runtime_start",
        "init_done",
        "invoke_start",
    ], events
    assert events.count("invoke_start") == 3 and "reset" in events
    assert events[-1] == "frozen" or events[-1] == "invoke_end", events
    times = [t["t"] for t in env["timeline"]]
    assert times == sorted(times)


def test_admin_keeps_ended_environments(short_limits_server: Server) -> None:
    srv = short_limits_server  # idle timeout 1 s
    lam = srv.client()
    name = create(lam, {"app.py": HELLO})
    invoke(lam, name)
    import urllib.request

    def ended() -> list[dict[str, Any]]:
        with urllib.request.urlopen(f"{srv.url}/lambdalet/admin/environments") as r:
            return [e for e in json.loads(r.read())["Ended"] if e["function"] == name]

    _wait_for(lambda: bool(ended()), 10.0)
    (gone,) = ended()
    assert gone["state"] == "Dead"
    events = [(t["event"], t["detail"]) for t in gone["timeline"]]
    assert ("shutdown_start", "reason=spindown") in events
    assert events[-1] == ("shutdown_done", "")


def test_admin_backend_reports_the_compiled_agent_and_spares(server: Server) -> None:
    import urllib.request

    rootless_lacks(NO_SPARES)

    def backend() -> dict[str, Any]:
        with urllib.request.urlopen(f"{server.url}/lambdalet/admin/backend", timeout=5) as r:
            return dict(json.loads(r.read()))

    _wait_for(lambda: backend()["spares"] == {"ready": 2, "wanted": 2}, 30.0)
    info = backend()
    assert info["backend"] == "runc" and info["agent"] == "compiled", info
    # a cold start takes a spare; one is built again shortly after
    name = create(server.client(), {"app.py": HELLO})
    assert invoke(server.client(), name).function_error is None
    _wait_for(lambda: backend()["spares"] == {"ready": 2, "wanted": 2}, 30.0)
