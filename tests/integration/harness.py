"""Fixtures that start the real lambdalet server and drive it with real clients.

A test that needs the real sandbox fails (not skips) when ``CI`` is set and the
sandbox cannot run here; elsewhere it skips and says why.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import zipfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config

from lambdalet.env.log_records import plain_text, read_events
from tests.needs import require

ROOT = Path(__file__).resolve().parents[2]
#: the real AWS CLI (v1, from PyPI) in the project's venv
AWS_CLI = ROOT / ".venv" / "bin" / "aws"


def aws_cli(
    url: str, service: str, *args: str, check: bool = True, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """``aws SERVICE ARGS... --endpoint-url URL --output json`` with test credentials and
    no user config; with ``check``, a non-zero exit fails the test with the CLI's stderr."""
    env = {
        **os.environ,
        "AWS_ACCESS_KEY_ID": "AKIDTEST",
        "AWS_SECRET_ACCESS_KEY": "secret",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_CONFIG_FILE": "/dev/null",
        "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
        "AWS_MAX_ATTEMPTS": "1",
    }
    proc = subprocess.run(
        [str(AWS_CLI), service, *args, "--endpoint-url", url, "--output", "json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc


HOST_PY = f"python{sys.version_info.major}.{sys.version_info.minor}"


def sandbox_missing() -> str | None:
    """Why the runc sandbox cannot run here, or None."""
    if sys.platform != "linux":
        return "not Linux"
    if os.geteuid() != 0:
        from lambdalet.sandbox import userns

        blockers = userns.blockers(userns.gather())
        if blockers:  # an ordinary user: the rootless sandbox, where the host allows it
            return "not root, and rootless sandboxes cannot run: " + "; ".join(blockers)
    if shutil.which("runc") is None:
        return "runc is not installed (apt-get install runc)"
    return None


def require_sandbox() -> None:
    require("the real sandbox", sandbox_missing())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def make_zip(files: Mapping[str, str | bytes], executable: tuple[str, ...] = ()) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, content in files.items():
            info = zipfile.ZipInfo(name, date_time=(2024, 1, 1, 0, 0, 0))
            mode = 0o755 if name in executable else 0o644
            info.external_attr = (0o100000 | mode) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            data = content.encode() if isinstance(content, str) else content
            zf.writestr(info, data)
    return buf.getvalue()


@dataclass
class Server:
    data_dir: Path
    port: int
    extra_args: tuple[str, ...] = ()
    proc: subprocess.Popen[bytes] | None = None
    log_path: Path = field(init=False)

    def __post_init__(self) -> None:
        self.log_path = self.data_dir.parent / f"server-{self.port}.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        env = dict(os.environ)
        env.setdefault("AWS_EC2_METADATA_DISABLED", "true")
        with self.log_path.open("ab") as logf:
            self.proc = self._popen(env, logf)
        self._wait_ready()

    def _popen(self, env: dict[str, str], logf: Any) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [
                sys.executable,
                "-m",
                "lambdalet.cli",
                "serve",
                "--port",
                str(self.port),
                "--data-dir",
                str(self.data_dir),
                "--log-level",
                "DEBUG",
                *self.extra_args,
            ],
            stdout=logf,
            stderr=subprocess.STDOUT,
            env=env,
        )

    def _wait_ready(self) -> None:
        assert self.proc is not None
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited early:\n{self.log_path.read_text()[-4000:]}")
            try:
                with urllib.request.urlopen(f"{self.url}/2015-03-31/functions/", timeout=2) as r:
                    if r.status == 200:
                        return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"server not ready:\n{self.log_path.read_text()[-4000:]}")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
        assert self.proc is not None
        self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()

    def restart(self) -> None:
        self.stop()
        self.start()

    def client(self, read_timeout: int = 120) -> Any:
        return boto3.client(
            "lambda",
            endpoint_url=self.url,
            region_name="us-east-1",
            aws_access_key_id="test",
            aws_secret_access_key="test",
            config=Config(read_timeout=read_timeout, retries={"max_attempts": 1}),
        )

    def log_tail(self) -> str:
        return self.log_path.read_text(errors="replace")[-6000:]

    def environments(self, function: str) -> list[dict[str, Any]]:
        """The live environments of one function, as the admin API lists them."""
        with urllib.request.urlopen(f"{self.url}/lambdalet/admin/environments", timeout=5) as r:
            return [e for e in json.loads(r.read())["Environments"] if e["function"] == function]

    def wait_environments(self, function: str, *states: str, limit_s: float = 20.0) -> None:
        """Wait until ``function`` has exactly one live environment in each of ``states``."""
        deadline = time.monotonic() + limit_s
        while True:
            seen = sorted(e["state"] for e in self.environments(function))
            if seen == sorted(states):
                return
            assert time.monotonic() < deadline, f"environments {seen}, waited for {states}"
            time.sleep(0.02)

    def function_log(self, name: str) -> str:
        """A function's log as text (every event's message), read as the Logs API reads it."""
        return plain_text(read_events(self.data_dir / "logs", name))

    def logs_client(self) -> Any:
        return boto3.client(
            "logs",
            endpoint_url=self.url,
            region_name="us-east-1",
            aws_access_key_id="test",
            aws_secret_access_key="test",
            config=Config(retries={"max_attempts": 1}),
        )


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    require_sandbox()
    base = tmp_path_factory.mktemp("lambdalet")
    srv = Server(base / "data", free_port())
    srv.start()
    try:
        yield srv
    finally:
        if srv.proc is not None and srv.proc.poll() is None:
            srv.stop()


@pytest.fixture(scope="session")
def short_limits_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One server for the whole run whose idle environments spin down after 1 s and whose
    Init limit is 2 s: the tests of those rules on real sandboxes take seconds, not
    minutes (Lambda's 300 s and 10 s are proven on fake time by tests/unit)."""
    require_sandbox()
    base = tmp_path_factory.mktemp("short-limits")
    srv = Server(base / "data", free_port(), ("--idle-timeout", "1", "--init-timeout", "2"))
    srv.start()
    try:
        yield srv
    finally:
        if srv.proc is not None and srv.proc.poll() is None:
            srv.stop()


@pytest.fixture(scope="module")
def lam(server: Server) -> Any:
    return server.client()


_counter = [0]


def unique(prefix: str) -> str:
    _counter[0] += 1
    return f"{prefix}-{os.getpid()}-{_counter[0]}"


def create(
    lam: Any,
    code: Mapping[str, str | bytes] | bytes,
    *,
    handler: str = "app.handler",
    runtime: str = HOST_PY,
    name: str | None = None,
    executable: tuple[str, ...] = (),
    **kwargs: Any,
) -> str:
    name = name or unique("fn")
    zip_bytes = code if isinstance(code, bytes) else make_zip(code, executable)
    lam.create_function(
        FunctionName=name,
        Runtime=runtime,
        Role="arn:aws:iam::123456789012:role/lambda-role",
        Handler=handler,
        Code={"ZipFile": zip_bytes},
        **kwargs,
    )
    lam.get_waiter("function_active_v2").wait(
        FunctionName=name, WaiterConfig={"Delay": 0.1, "MaxAttempts": 100}
    )
    return name


@dataclass
class Result:
    status: int
    payload: bytes
    function_error: str | None
    request_id: str
    log: str
    executed_version: str | None

    def json(self) -> Any:
        return json.loads(self.payload)


def invoke(lam: Any, name: str, event: Any = None, *, tail: bool = True, **kwargs: Any) -> Result:
    import base64

    resp = lam.invoke(
        FunctionName=name,
        Payload=json.dumps({} if event is None else event).encode(),
        LogType="Tail" if tail else "None",
        **kwargs,
    )
    log = base64.b64decode(resp.get("LogResult", "")).decode(errors="replace")
    return Result(
        status=resp["StatusCode"],
        payload=resp["Payload"].read(),
        function_error=resp.get("FunctionError"),
        request_id=resp["ResponseMetadata"]["RequestId"],
        log=log,
        executed_version=resp.get("ExecutedVersion"),
    )
