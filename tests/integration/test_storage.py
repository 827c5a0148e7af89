"""Storage against the real server: permissions, bounded function logs that go with their
function, code collected once nothing refers to it, and the code-storage limit."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.harness import (
    Server,
    create,
    free_port,
    invoke,
    make_zip,
    require_sandbox,
)

pytestmark = pytest.mark.integration

LOG_MB = 1
LOG_BACKUPS = 2
STORAGE_LIMIT_MB = 40

HANDLER = """
def handler(event, context):
    return "ok"
"""

FLOOD = """
import sys

def handler(event, context):
    line = "x" * 1023 + "\\n"
    block = line * 1024
    for _ in range(event["mb"]):
        sys.stdout.write(block)
    sys.stdout.flush()
    print("the last line of the flood", flush=True)
    return "done"
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    require_sandbox()
    srv = Server(
        tmp_path_factory.mktemp("storage") / "data",
        free_port(),
        extra_args=(
            "--function-log-mb",
            str(LOG_MB),
            "--function-log-backups",
            str(LOG_BACKUPS),
            "--code-storage-mb",
            str(STORAGE_LIMIT_MB),
            "--spare-sandboxes",
            "1",
        ),
    )
    srv.start()
    try:
        yield srv
    finally:
        if srv.proc is not None and srv.proc.poll() is None:
            srv.stop()


@pytest.fixture(scope="module")
def lam(server: Server) -> Any:
    return server.client(read_timeout=300)


def _stored(server: Server) -> set[str]:
    """Names under blobs/, code/ and trash/."""
    out: set[str] = set()
    for sub in ("blobs", "code", "trash"):
        folder = server.data_dir / sub
        if folder.is_dir():
            out.update(f"{sub}/{n}" for n in os.listdir(folder))
    return out


def _bytes_under(folder: Path) -> int:
    total = 0
    for dirpath, _, files in os.walk(folder):
        for f in files:
            total += os.lstat(os.path.join(dirpath, f)).st_blocks * 512
    return total


def _wait_for(what: str, check: Callable[[], bool], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for: {what}")
        time.sleep(0.1)


def _random_zip() -> bytes:
    return make_zip({"app.py": HANDLER, "blob.bin": os.urandom(4 * 1024 * 1024)})


def test_five_code_updates_then_delete_leave_nothing_behind(server: Server, lam: Any) -> None:
    before = _stored(server)
    used_before = lam.get_account_settings()["AccountUsage"]["TotalCodeSize"]
    first = _random_zip()
    name = create(lam, first, handler="app.handler")
    assert invoke(lam, name).payload == b'"ok"'  # an environment runs from the first code
    zips = [first]
    for _ in range(5):
        zips.append(_random_zip())
        lam.update_function_code(FunctionName=name, ZipFile=zips[-1])
        lam.get_waiter("function_updated_v2").wait(
            FunctionName=name, WaiterConfig={"Delay": 0.1, "MaxAttempts": 100}
        )
    assert invoke(lam, name).payload == b'"ok"'
    usage = lam.get_account_settings()["AccountUsage"]
    assert usage["TotalCodeSize"] == used_before + len(zips[-1])
    # only the current code is kept (zip, size file, unpacked tree): the replaced ones went
    # once the environments that ran them were gone
    _wait_for("replaced code removed", lambda: len(_stored(server) - before) == 3)
    assert _bytes_under(server.data_dir / "blobs") < 2 * 4.5 * 1024 * 1024 + 1
    lam.delete_function(FunctionName=name)
    _wait_for("everything of the function removed", lambda: _stored(server) == before)
    assert lam.get_account_settings()["AccountUsage"]["TotalCodeSize"] == used_before
    assert not list((server.data_dir / "logs").glob(f"{name}.log*"))


def test_a_flood_of_output_stays_under_the_log_cap(server: Server, lam: Any) -> None:
    name = create(lam, {"app.py": FLOOD}, handler="app.handler", Timeout=120)
    flood_mb = 40
    result = invoke(lam, name, {"mb": flood_mb})
    assert result.payload == b'"done"', result.log
    logs = server.data_dir / "logs"
    report = f"REPORT RequestId: {result.request_id}".encode()
    _wait_for("the REPORT line", lambda: report in (logs / f"{name}.log").read_bytes())
    files = sorted(logs.glob(f"{name}.log*"))
    assert [f.name for f in files] == [f"{name}.log", f"{name}.log.1", f"{name}.log.2"]
    total = sum(f.stat().st_size for f in files)
    assert total <= LOG_MB * 1024 * 1024 * (LOG_BACKUPS + 1) < flood_mb * 1024 * 1024
    # the newest lines are kept, and `lambdalet logs` (the server's Logs API) reads across
    # the rotated files: one JSON line per stored event, the REPORT last
    out = subprocess.run(
        [sys.executable, "-m", "lambdalet.cli", "logs", name, "--endpoint", server.url, "--json"],
        capture_output=True,
        check=True,
    ).stdout
    printed = out.splitlines()
    assert b"the last line of the flood" in out
    assert report in printed[-1]
    assert len(printed) == sum(f.read_bytes().count(b"\n") for f in files)
    lam.delete_function(FunctionName=name)
    assert not list(logs.glob(f"{name}.log*"))


def test_data_dir_database_and_logs_are_private(server: Server, lam: Any) -> None:
    name = create(lam, {"app.py": HANDLER}, Environment={"Variables": {"SECRET": "s3cr3t"}})
    invoke(lam, name)
    data = server.data_dir
    assert stat.S_IMODE(data.stat().st_mode) == 0o700
    for f in ("lambdalet.sqlite3", "lambdalet.sqlite3-wal", "lambdalet.sqlite3-shm"):
        assert stat.S_IMODE((data / f).stat().st_mode) == 0o600, f
    assert stat.S_IMODE((data / "logs").stat().st_mode) == 0o700
    log = data / "logs" / f"{name}.log"
    assert stat.S_IMODE(log.stat().st_mode) == 0o600
    # an unprivileged user cannot read the secret in the store
    probe = subprocess.run(
        ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "cat", str(log)],
        capture_output=True,
    )
    assert probe.returncode != 0 and b"s3cr3t" not in probe.stdout
    lam.delete_function(FunctionName=name)


def test_code_storage_limit(server: Server, lam: Any) -> None:
    used = lam.get_account_settings()["AccountUsage"]["TotalCodeSize"]
    room = STORAGE_LIMIT_MB * 1024 * 1024 - used
    name = create(lam, _random_zip(), handler="app.handler")
    lam.publish_version(FunctionName=name)  # a version counts its code again
    big = make_zip({"blob.bin": os.urandom(room - 2 * 4 * 1024 * 1024 + 1024)})
    with pytest.raises(lam.exceptions.CodeStorageExceededException) as info:
        lam.update_function_code(FunctionName=name, ZipFile=big)
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert info.value.response["Error"]["Message"] == "Code storage limit exceeded."
    with pytest.raises(lam.exceptions.CodeStorageExceededException):
        lam.publish_layer_version(LayerName="big", Content={"ZipFile": big})
    lam.delete_function(FunctionName=name)  # frees the room
    lam.publish_layer_version(LayerName="big", Content={"ZipFile": big})
    lam.delete_layer_version(LayerName="big", VersionNumber=1)


def test_a_restart_fixes_permissions_and_removes_what_nothing_refers_to(
    server: Server, lam: Any
) -> None:
    name = create(lam, {"app.py": HANDLER})
    invoke(lam, name)
    data = server.data_dir
    kept_log = data / "logs" / f"{name}.log"
    ghost_log = data / "logs" / "deleted-meanwhile.log"
    ghost_log.write_text("left by a crashed run\n")
    orphan = data / "code" / ("ab" * 32)
    orphan.mkdir()
    (orphan / "app.py").write_text("# nothing refers to this\n")
    os.chmod(data, 0o755)
    for f in (data / "lambdalet.sqlite3", kept_log, ghost_log):
        os.chmod(f, 0o644)
    server.restart()
    assert stat.S_IMODE(data.stat().st_mode) == 0o700
    assert stat.S_IMODE((data / "lambdalet.sqlite3").stat().st_mode) == 0o600
    assert stat.S_IMODE(kept_log.stat().st_mode) == 0o600
    assert not ghost_log.exists()
    assert not orphan.exists()
    assert invoke(lam, name).payload == b'"ok"'
    lam.delete_function(FunctionName=name)
