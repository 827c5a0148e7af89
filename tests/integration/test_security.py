"""A hostile function against the platform: each attack fails from inside a real sandbox.

docs/security.md lists every protection with the test here that shows it.
"""

from __future__ import annotations

import contextlib
import http.server
import json
import os
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import pytest

from tests.integration.harness import Server, create, free_port, invoke, make_zip, require_sandbox

pytestmark = pytest.mark.integration

#: short enough that the test sees a URL expire, long enough to download a fresh one
CODE_URL_TTL_S = 5


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    require_sandbox()
    base = tmp_path_factory.mktemp("lambdalet")
    srv = Server(base / "data", free_port(), extra_args=("--code-url-ttl", str(CODE_URL_TTL_S)))
    srv.start()
    try:
        yield srv
    finally:
        if srv.proc is not None and srv.proc.poll() is None:
            srv.stop()


@pytest.fixture(scope="module")
def lam(server: Server) -> Any:
    return server.client()


class _Hello(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b"a user's own service"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def user_service() -> Iterator[int]:
    """An HTTP service a user runs on the host's loopback (a mock API, a database...)."""
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Hello)
    t = threading.Thread(target=httpd.serve_forever, daemon=True)
    t.start()
    try:
        yield int(httpd.server_address[1])
    finally:
        httpd.shutdown()
        httpd.server_close()


FETCH = r"""
import json, urllib.error, urllib.request

def get(url):
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return {"status": r.status, "body": r.read().decode(errors="replace")[:200]}
    except urllib.error.HTTPError as e:
        return {"status": e.code, "type": e.headers.get("X-Amzn-ErrorType"),
                "body": e.read().decode(errors="replace")[:300]}
    except OSError as e:
        return {"status": None, "error": str(e)}

def handler(event, context):
    return {url: get(url) for url in event["urls"]}
"""


def test_control_plane_is_refused_but_user_services_are_reachable(
    lam: Any, server: Server, user_service: int
) -> None:
    name = create(lam, {"app.py": FETCH}, Timeout=30)
    host = f"http://host.lambdalet.internal:{server.port}"
    own = [
        f"{host}/2015-03-31/functions/",
        f"{host}/2015-03-31/functions/{name}",
        f"{host}/lambdalet/admin/environments",
        f"{host}/metrics",
        f"{host}/lambdalet/dashboard/",
    ]
    user = f"http://host.lambdalet.internal:{user_service}/"
    r = invoke(lam, name, {"urls": [*own, user]})
    assert r.function_error is None, r.payload
    got = r.json()
    assert got[user] == {"status": 200, "body": "a user's own service"}, got
    for url in own:
        assert got[url]["status"] == 403, (url, got[url])
        assert got[url]["type"] == "AccessDeniedException", (url, got[url])
    # the host's own clients are served as before
    assert lam.get_function(FunctionName=name)["Configuration"]["FunctionName"] == name


SYSCALLS = r"""
import ctypes, errno, os, platform, subprocess, threading

NR = {  # syscall numbers
    "x86_64": {"keyctl": 250, "add_key": 248, "bpf": 321, "perf_event_open": 298},
    "aarch64": {"keyctl": 219, "add_key": 217, "bpf": 280, "perf_event_open": 241},
}[platform.machine()]
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long

def outcome(rc):
    return "ok" if rc >= 0 else errno.errorcode.get(ctypes.get_errno(), str(ctypes.get_errno()))

def call(name, *args):
    ctypes.set_errno(0)
    return outcome(libc.syscall(NR[name], *[ctypes.c_long(a) for a in args]))

def fn(name, *args):
    ctypes.set_errno(0)
    return outcome(getattr(libc, name)(*args))

def opened(path):
    try:
        with open(path, "wb"):
            return "opened"
    except OSError as e:
        return errno.errorcode[e.errno]

def handler(event, context):
    CLONE_NEWUSER, CLONE_NEWNET, CLONE_NEWNS = 0x10000000, 0x40000000, 0x00020000
    PTRACE_ATTACH, PTRACE_SEIZE = 16, 0x4206
    # what must keep working: threads and child processes
    t = threading.Thread(target=lambda: None); t.start(); t.join()
    child = subprocess.run(["/bin/sh", "-c", "echo child"], capture_output=True, text=True)
    return {
        "unshare_user": fn("unshare", CLONE_NEWUSER),
        "unshare_net": fn("unshare", CLONE_NEWNET),
        "unshare_user_net": fn("unshare", CLONE_NEWUSER | CLONE_NEWNET | CLONE_NEWNS),
        "ptrace_attach_1": fn("ptrace", PTRACE_ATTACH, 1, None, None),
        "ptrace_seize_1": fn("ptrace", PTRACE_SEIZE, 1, None, None),
        "keyctl": call("keyctl", 0, -3, 0),  # KEYCTL_GET_KEYRING_ID, session keyring
        "add_key": call("add_key", 0, 0, 0, 0, -3),
        "bpf": call("bpf", 0, 0, 0),
        "perf_event_open": call("perf_event_open", 0, 0, -1, -1, 0),
        "agent_stdout": opened("/proc/1/fd/1"),
        "agent_mem": opened("/proc/1/mem"),
        "child": child.stdout.strip(),
        "threads": "ok",
    }
"""


def test_namespaces_ptrace_keyrings_bpf_and_perf_are_refused(lam: Any) -> None:
    name = create(lam, {"app.py": SYSCALLS}, Timeout=30)
    r = invoke(lam, name)
    assert r.function_error is None, r.payload
    got = r.json()
    for key in ("unshare_user", "unshare_net", "unshare_user_net"):
        assert got[key] == "EPERM", (key, got)
    for key in ("ptrace_attach_1", "ptrace_seize_1", "keyctl", "add_key", "bpf"):
        assert got[key] == "EPERM", (key, got)
    assert got["perf_event_open"] == "EPERM", got
    # the agent (PID 1) is not dumpable: its descriptors and memory are out of reach
    assert got["agent_stdout"] == "EACCES", got
    assert got["agent_mem"] == "EACCES", got
    assert (got["child"], got["threads"]) == ("child", "ok"), got


FLOOD = r"""
import errno, os

def handler(event, context):
    chunk = b"x" * (1 << 20)
    results = {}
    for path in ("/proc/1/fd/1", "/proc/1/fd/2"):
        try:
            fd = os.open(path, os.O_WRONLY)
        except OSError as e:
            results[path] = errno.errorcode[e.errno]
            continue
        written = 0
        try:
            for _ in range(event["mb"]):
                written += os.write(fd, chunk)
        except OSError as e:
            results[path] = errno.errorcode[e.errno]
        else:
            results[path] = written
        finally:
            os.close(fd)
    return results
"""


def _mount_points() -> set[str]:
    with open("/proc/self/mounts") as f:
        return {line.split()[1].replace("\\040", " ") for line in f}


def _disk_use(path: Path) -> int:
    """Bytes of disk the files under ``path`` take, not crossing into mounts (the data dir
    holds read-only binds of host file systems, the sandboxes' /tmp and code)."""
    mounts = _mount_points()
    total = 0
    for dirpath, dirnames, files in os.walk(path):
        dirnames[:] = [d for d in dirnames if os.path.join(dirpath, d) not in mounts]
        for f in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(dirpath, f)).st_blocks * 512
    return total


def _spares_ready(server: Server) -> bool:
    with urllib.request.urlopen(f"{server.url}/lambdalet/admin/backend", timeout=10) as r:
        spares = json.loads(r.read())["spares"]
    return bool(spares["ready"] >= spares["wanted"])


def test_agent_output_is_not_a_host_file_a_function_can_fill(lam: Any, server: Server) -> None:
    name = create(lam, {"app.py": FLOOD}, Timeout=120, MemorySize=256)
    # a warm environment (its /tmp image allocated in full when it is built) and the spare
    # sandboxes rebuilt: the flood is all that runs next
    assert invoke(lam, name, {"mb": 0}).function_error is None
    deadline = time.monotonic() + 60
    while not _spares_ready(server):
        assert time.monotonic() < deadline, "spare sandboxes not rebuilt"
        time.sleep(0.1)
    before = _disk_use(server.data_dir)
    r = invoke(lam, name, {"mb": 600})
    assert r.function_error is None, r.payload
    grown = _disk_use(server.data_dir) - before
    assert grown < 64 * 1024 * 1024, f"the data dir grew by {grown} bytes: {r.json()}"
    assert r.json() == {"/proc/1/fd/1": "EACCES", "/proc/1/fd/2": "EACCES"}


def _with_query(url: str, **changes: str | None) -> str:
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query))
    for k, v in changes.items():
        if v is None:
            query.pop(k, None)
        else:
            query[k] = v
    return urlunsplit(parts._replace(query=urlencode(query)))


def _fetch(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def test_code_location_is_presigned_and_expires(lam: Any) -> None:
    zip_bytes = make_zip({"app.py": "def handler(e, c):\n    return 1\n"})
    name = create(lam, zip_bytes)
    location = lam.get_function(FunctionName=name)["Code"]["Location"]
    assert _fetch(location) == (200, zip_bytes)
    sig = dict(parse_qsl(urlsplit(location).query))["X-Amz-Signature"]
    tampered = _with_query(location, **{"X-Amz-Signature": sig[::-1]})
    status, body = _fetch(tampered)
    assert (status, b"<Code>SignatureDoesNotMatch</Code>" in body) == (403, True), body
    longer = _with_query(location, **{"X-Amz-Expires": "86400"})
    assert _fetch(longer)[0] == 403
    status, body = _fetch(_with_query(location, **{"X-Amz-Signature": None}))
    assert (status, b"<Code>AccessDenied</Code>" in body) == (403, True), body
    deadline = time.monotonic() + 10 * CODE_URL_TTL_S
    while time.monotonic() < deadline:
        status, body = _fetch(location)
        if status != 200:
            break
        time.sleep(0.5)
    assert status == 403 and b"Request has expired" in body, (status, body)
    fresh = lam.get_function(FunctionName=name)["Code"]["Location"]
    assert _fetch(fresh) == (200, zip_bytes)
