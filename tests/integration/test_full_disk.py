"""A full data disk, on a small ext4 file system this test loop-mounts and fills.

What must hold: every call that cannot write answers ServiceException naming the cause; a
cold start is refused (its /tmp could not be reserved) rather than built on space that is not
there; warm invokes keep working; DeleteAlias, DeleteLayerVersion and DeleteFunction work and
free space; SQLite passes its integrity check; once space is back, everything works again.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import sqlite3
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from tests.integration.harness import (
    HOST_PY,
    Server,
    create,
    free_port,
    invoke,
    make_zip,
    require_sandbox,
)
from tests.needs import NO_SMALL_DISK, rootless_lacks

pytestmark = pytest.mark.integration

DISK_MB = 1600  # the data dir's base, one 512 MB /tmp reservation, and room to recover
NO_SPACE = "no space left on the data disk"

HANDLER = """
import os

def handler(event, context):
    mb = event.get("tmp_mb", 0)
    if mb:  # write to /tmp, and make sure it reached the disk
        block = os.urandom(1 << 20)
        with open("/tmp/big", "wb") as f:
            for _ in range(mb):
                f.write(block)
            f.flush()
            os.fsync(f.fileno())
        size = os.path.getsize("/tmp/big")
        os.remove("/tmp/big")
        return size
    return "ok"
"""


@pytest.fixture(scope="module")
def disk(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    require_sandbox()
    rootless_lacks(NO_SMALL_DISK)
    base = tmp_path_factory.mktemp("fulldisk")
    image = base / "disk.img"
    with image.open("wb") as f:
        f.truncate(DISK_MB * 1024 * 1024)
    # -m 0: no blocks held back for root (the server runs as root)
    subprocess.run(["mkfs.ext4", "-q", "-F", "-m", "0", str(image)], check=True)
    mnt = base / "mnt"
    mnt.mkdir()
    subprocess.run(["mount", "-o", "loop", str(image), str(mnt)], check=True)
    try:
        yield mnt
    finally:
        if subprocess.run(["umount", str(mnt)], check=False).returncode != 0:
            time.sleep(1)
            subprocess.run(["umount", "-l", str(mnt)], check=False)
        image.unlink()


@pytest.fixture(scope="module")
def server(disk: Path) -> Iterator[Server]:
    srv = Server(disk / "data", free_port(), extra_args=("--spare-sandboxes", "0"))
    srv.log_path = disk.parent / "server.log"  # not on the disk that gets full
    srv.start()
    try:
        yield srv
    finally:
        if srv.proc is not None and srv.proc.poll() is None:
            srv.stop()


@pytest.fixture(scope="module")
def lam(server: Server) -> Any:
    return boto3.client(
        "lambda",
        endpoint_url=server.url,
        region_name="us-east-1",
        aws_access_key_id="test",
        aws_secret_access_key="test",
        config=Config(read_timeout=120, retries={"total_max_attempts": 1}),
    )


def _free(path: Path) -> int:
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


def _fill(path: Path, leave: int = 0) -> Path:
    """Take every free block of the file system holding ``path`` but ``leave`` bytes."""
    filler = path / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        with contextlib.suppress(OSError):
            os.posix_fallocate(fd, 0, max(0, _free(path) - leave - 256 * 1024))
        os.lseek(fd, 0, os.SEEK_END)
        for chunk in (65536, 4096, 512) if not leave else ():
            while True:
                try:
                    os.write(fd, b"\0" * chunk)
                except OSError as e:
                    assert e.errno == errno.ENOSPC
                    break
        os.fsync(fd)
    finally:
        os.close(fd)
    return filler


def _call(fn: Any, **kwargs: Any) -> tuple[str, str]:
    """("ok", "") or (error code, message) of one API call."""
    try:
        fn(**kwargs)
    except ClientError as e:
        err = e.response["Error"]
        assert e.response["ResponseMetadata"]["HTTPStatusCode"] in (400, 404, 409, 500), err
        return str(err["Code"]), str(err.get("Message", ""))
    return "ok", ""


def _ok_or_full(outcome: tuple[str, str]) -> None:
    """A write on a full disk either found room (SQLite reuses its WAL) or said why not."""
    code, message = outcome
    if code != "ok":
        assert code == "ServiceException", outcome
        assert NO_SPACE in message.lower(), outcome


def _integrity(db: Path) -> str:
    conn = sqlite3.connect(db)
    try:
        return str(conn.execute("PRAGMA integrity_check").fetchone()[0])
    finally:
        conn.close()


def _async_invoke(server: Server, name: str) -> tuple[str, str]:
    req = urllib.request.Request(
        f"{server.url}/2015-03-31/functions/{name}/invocations",
        data=b"{}",
        headers={"X-Amz-Invocation-Type": "Event"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            assert r.status == 202
            return "ok", ""
    except urllib.error.HTTPError as e:
        body = json.loads(e.read())
        return e.headers["X-Amzn-ErrorType"], body.get("Message", body.get("message", ""))


def test_a_full_data_disk(server: Server, lam: Any, disk: Path) -> None:
    warm = create(lam, {"app.py": HANDLER}, Timeout=120, MemorySize=512)
    assert invoke(lam, warm).payload == b'"ok"'  # its environment (and /tmp) exist now
    lam.publish_version(FunctionName=warm)
    lam.create_alias(FunctionName=warm, Name="live", FunctionVersion="1")
    big = create(lam, make_zip({"app.py": HANDLER, "blob.bin": os.urandom(4 << 20)}))
    layer = lam.publish_layer_version(
        LayerName="lay", Content={"ZipFile": make_zip({"blob.bin": os.urandom(2 << 20)})}
    )
    code = server.data_dir / "code"
    big_hex = lam.get_function(FunctionName=big)["Configuration"]["CodeSha256"]
    stored_before = set(os.listdir(code))

    filler = _fill(disk)
    assert _free(disk) < 64 * 1024

    # writes that need space: refused, naming the cause
    new_zip = make_zip({"app.py": HANDLER, "blob.bin": os.urandom(1 << 20)})
    code_, message = _call(
        lam.create_function,
        FunctionName="on-a-full-disk",
        Runtime=HOST_PY,
        Role="arn:aws:iam::123456789012:role/r",
        Handler="app.handler",
        Code={"ZipFile": new_zip},
    )
    assert code_ == "ServiceException" and NO_SPACE in message.lower(), (code_, message)
    code_, message = _call(lam.publish_layer_version, LayerName="l2", Content={"ZipFile": new_zip})
    assert code_ == "ServiceException" and NO_SPACE in message.lower(), (code_, message)
    # a cold start cannot reserve its /tmp: refused, not built on space that is not there
    try:
        lam.invoke(FunctionName=big, Payload=b"{}")
        raise AssertionError("a cold start on a full disk was accepted")
    except ClientError as e:
        assert e.response["Error"]["Code"] == "ServiceException"
        assert NO_SPACE in e.response["Error"]["Message"].lower(), e.response["Error"]
    # writes of a few SQLite pages: done or refused cleanly, never an anonymous 500 (on the
    # function without an environment: a changed configuration would retire a warm one)
    _ok_or_full(_call(lam.update_function_configuration, FunctionName=big, Description="d"))
    lam.get_waiter("function_updated_v2").wait(
        FunctionName=big, WaiterConfig={"Delay": 0.1, "MaxAttempts": 100}
    )
    _ok_or_full(_call(lam.publish_version, FunctionName=big))
    _ok_or_full(_async_invoke(server, big))
    assert invoke(lam, warm).payload == b'"ok"'  # warm invokes keep working
    # the warm environment's /tmp was reserved when it was built: a write the full data disk
    # could not otherwise hold is kept, not lost under an acknowledged write()
    tmp_mb = 128
    result = invoke(lam, warm, {"tmp_mb": tmp_mb})
    assert result.function_error is None, result.payload
    assert result.json() == tmp_mb << 20

    # deletes always work, and free space
    free_before = _free(disk)
    lam.delete_alias(FunctionName=warm, Name="live")
    lam.delete_layer_version(LayerName="lay", VersionNumber=layer["Version"])
    lam.delete_function(FunctionName=big)
    assert invoke(lam, warm).payload == b'"ok"'
    with pytest.raises(lam.exceptions.ResourceNotFoundException):
        lam.get_function(FunctionName=big)
    deadline = time.monotonic() + 30
    while any(n.startswith(_hex(big_hex)) for n in os.listdir(code)):
        assert time.monotonic() < deadline, os.listdir(code)
        time.sleep(0.1)
    assert len(set(os.listdir(code))) < len(stored_before)
    # 8 MB of code and 4 MB of layer go (the unpacked trees in a worker thread)
    while _free(disk) <= free_before + (4 << 20):
        assert time.monotonic() < deadline, (_free(disk), free_before)
        time.sleep(0.1)
    assert _integrity(server.data_dir / "lambdalet.sqlite3") == "ok"

    # some space back, not enough for a sandbox's 512 MB /tmp: small writes work, a cold
    # start is refused with the reason
    filler.unlink()
    filler = _fill(disk, leave=64 << 20)
    small = create(lam, {"app.py": HANDLER})
    with pytest.raises(ClientError) as info:
        lam.invoke(FunctionName=small, Payload=b"{}")
    error = info.value.response["Error"]
    assert error["Code"] == "ServiceException", error
    assert "no space left on the data disk to reserve 512 MB for /tmp" in error["Message"]
    assert invoke(lam, warm).payload == b'"ok"'
    lam.delete_function(FunctionName=small)

    # space back: everything works again
    filler.unlink()
    lam.create_function(
        FunctionName="after-the-full-disk",
        Runtime=HOST_PY,
        Role="arn:aws:iam::123456789012:role/r",
        Handler="app.handler",
        Code={"ZipFile": new_zip},
    )
    lam.get_waiter("function_active_v2").wait(
        FunctionName="after-the-full-disk", WaiterConfig={"Delay": 0.1, "MaxAttempts": 100}
    )
    assert invoke(lam, "after-the-full-disk").payload == b'"ok"'
    names = {f["FunctionName"] for f in lam.list_functions()["Functions"]}
    assert names == {warm, "after-the-full-disk"}
    assert _integrity(server.data_dir / "lambdalet.sqlite3") == "ok"


def _hex(sha256_b64: str) -> str:
    import base64

    return base64.b64decode(sha256_b64).hex()
