"""The managed Python runtime, really installed from PyPI, run on the host."""

from __future__ import annotations

import json
import os
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from lambdalet.config import ServerConfig
from lambdalet.env.runtime_api import FUNCTION_INIT_PATH
from lambdalet.model import FunctionRecord
from lambdalet.runtimes.envvars import runtime_environment
from lambdalet.runtimes.python import (
    PythonRuntime,
    SearchPlaces,
    awslambdaric_version,
    ensure_python_runtime,
    host_python,
)
from lambdalet.sandbox.base import SandboxView


@pytest.fixture(scope="module")
def runtime(tmp_path_factory: pytest.TempPathFactory) -> PythonRuntime:
    import asyncio

    data = tmp_path_factory.mktemp("data")
    host = host_python(SearchPlaces.default())
    runtime_id = f"python{host.minor_str}"
    return asyncio.run(ensure_python_runtime(ServerConfig(data_dir=data), runtime_id))


def test_installed_client_imports_with_pythonpath(runtime: PythonRuntime) -> None:
    assert runtime.note is None
    wanted = awslambdaric_version(runtime.install.minor)
    assert list(runtime.runtime_dir.glob(f"awslambdaric-{wanted}.dist-info"))
    code = "import awslambdaric.bootstrap, awslambdaric, sys; print(awslambdaric.__file__)"
    done = subprocess.run(
        [str(runtime.install.executable), "-c", code],
        env={"PYTHONPATH": str(runtime.runtime_dir), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=False,
        cwd="/",
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(str(runtime.runtime_dir))


def test_bin_links_run_the_interpreter(runtime: PythonRuntime) -> None:
    for name in ("python", "python3"):
        done = subprocess.run(
            [str(runtime.runtime_dir / "bin" / name), "-c", "import sys; print(sys.prefix)"],
            capture_output=True,
            text=True,
            check=True,
        )
        assert Path(done.stdout.strip()).resolve() == runtime.lang_dir


def function(code_dir: Path, environment: dict[str, str]) -> FunctionRecord:
    return FunctionRecord(
        name="fn",
        version="$LATEST",
        arn="arn:aws:lambda:us-east-1:123456789012:function:fn",
        runtime="python3.12",
        handler="app.handler",
        role="arn:aws:iam::123456789012:role/r",
        memory_mb=128,
        timeout_s=3,
        ephemeral_mb=512,
        environment=environment,
        layers=(),
        code_dir=code_dir,
        code_sha256="x",
        code_size=1,
        revision_id="r",
    )


def host_view(runtime: PythonRuntime, tmp_path: Path, api: str) -> SandboxView:
    return SandboxView(
        task_root=str(tmp_path / "task"),
        opt_dir=str(tmp_path / "opt"),
        runtime_dir=str(runtime.runtime_dir),
        lang_dir=str(runtime.lang_dir),
        tmp_dir=str(tmp_path),
        runtime_api=api,
    )


def test_bootstrap_honours_exec_wrapper(runtime: PythonRuntime, tmp_path: Path) -> None:
    (tmp_path / "task").mkdir()
    record_file = tmp_path / "argv.json"
    wrapper = tmp_path / "wrapper"
    wrapper.write_text(
        "#!/bin/sh\n"
        f'exec "{runtime.install.executable}" -c '
        "'import json, os, sys; "
        f'json.dump({{"argv": sys.argv[1:], "cwd": os.getcwd()}}, open("{record_file}", "w"))\' '
        '"$@"\n'
    )
    wrapper.chmod(0o755)
    view = host_view(runtime, tmp_path, "127.0.0.1:9")
    env = runtime_environment(
        function(tmp_path / "task", {"AWS_LAMBDA_EXEC_WRAPPER": str(wrapper)}),
        view,
        log_stream="s",
        python_version=runtime.python_version,
    )
    done = subprocess.run(
        runtime.argv(view), env=env, cwd=view.task_root, capture_output=True, timeout=30
    )
    assert done.returncode == 0, done.stderr
    seen = json.loads(record_file.read_text())
    python, *rest = seen["argv"]
    assert rest == ["-m", "awslambdaric", "app.handler"]
    assert Path(python).resolve() == runtime.install.executable.resolve()
    assert seen["cwd"] == view.task_root


@pytest.mark.parametrize(
    ("name", "mode", "status"), [("missing", None, 127), ("plain", 0o644, 126)]
)
def test_bootstrap_rejects_bad_wrapper(
    runtime: PythonRuntime, tmp_path: Path, name: str, mode: int | None, status: int
) -> None:
    (tmp_path / "task").mkdir()
    wrapper = tmp_path / name
    if mode is not None:
        wrapper.write_text("#!/bin/sh\n")
        wrapper.chmod(mode)
    view = host_view(runtime, tmp_path, "127.0.0.1:9")
    env = runtime_environment(
        function(tmp_path / "task", {"AWS_LAMBDA_EXEC_WRAPPER": str(wrapper)}), view, log_stream="s"
    )
    done = subprocess.run(runtime.argv(view), env=env, cwd=view.task_root, capture_output=True)
    assert done.returncode == status
    assert str(wrapper).encode() in done.stderr


class FakeRuntimeApi(BaseHTTPRequestHandler):
    """One invocation, then the next ``next`` hangs until the test ends."""

    posted: list[tuple[str, bytes]]
    served: threading.Event
    done: threading.Event

    def do_GET(self) -> None:
        assert self.path == "/2018-06-01/runtime/invocation/next"
        if self.served.is_set():
            self.done.wait(30)
            self.send_response(500)
            self.end_headers()
            return
        self.served.set()
        body = json.dumps({"x": 1}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Lambda-Runtime-Aws-Request-Id", "req-1")
        self.send_header("Lambda-Runtime-Deadline-Ms", "9999999999999")
        self.send_header(
            "Lambda-Runtime-Invoked-Function-Arn",
            "arn:aws:lambda:us-east-1:123456789012:function:fn",
        )
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        self.posted.append((self.path, self.rfile.read(length)))
        self.send_response(202)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def fake_api() -> Iterator[tuple[str, type[FakeRuntimeApi]]]:
    class Api(FakeRuntimeApi):
        posted: list[tuple[str, bytes]] = []
        served = threading.Event()
        done = threading.Event()

    handler = Api
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}", handler
    finally:
        handler.done.set()
        server.shutdown()
        server.server_close()


def test_bootstrap_runs_a_handler_end_to_end(
    runtime: PythonRuntime, tmp_path: Path, fake_api: tuple[str, type[FakeRuntimeApi]]
) -> None:
    api, handler = fake_api
    task = tmp_path / "task"
    task.mkdir()
    (task / "app.py").write_text(
        "import os, sys\n"
        "def handler(event, context):\n"
        "    return {'event': event, 'fn': context.function_name,\n"
        "            'cwd': os.getcwd(), 'path0': sys.path[0]}\n"
    )
    view = host_view(runtime, tmp_path, api)
    env = runtime_environment(
        function(task, {}), view, log_stream="s", python_version=runtime.python_version
    )
    proc = subprocess.Popen(
        runtime.argv(view),
        env=env,
        cwd=view.task_root,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        for _ in range(300):
            if len(handler.posted) >= 2 or proc.poll() is not None:
                break
            threading.Event().wait(0.05)
        assert len(handler.posted) >= 2, proc.stdout.read() if proc.stdout and proc.poll() else b""
    finally:
        proc.kill()
        proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()
    # lambdalet_launch marks the start of Function init, then the handler's answer
    assert handler.posted[0] == (FUNCTION_INIT_PATH, b"")
    path, body = handler.posted[1]
    assert path == "/2018-06-01/runtime/invocation/req-1/response"
    assert json.loads(body) == {
        "event": {"x": 1},
        "fn": "fn",
        "cwd": str(task),
        "path0": str(task),
    }
    assert os.environ.get("AWS_LAMBDA_RUNTIME_API") != api
