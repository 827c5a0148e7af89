"""Shared by the store and control unit tests: a clock tests move, a store on a tmp dir."""

from __future__ import annotations

import io
import stat
import zipfile
from pathlib import Path

from lambdalet.config import ServerConfig
from lambdalet.model import FunctionRecord
from lambdalet.store import FunctionSpec, Store

ROLE = "arn:aws:iam::123456789012:role/r"
ARN = "arn:aws:lambda:us-east-1:123456789012:function"


class ManualClock:
    """Time stands still until a test moves it."""

    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def monotonic(self) -> float:
        return self.now

    def wall(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def zip_of(text: str) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        info = zipfile.ZipInfo("bootstrap")
        info.create_system = 3
        info.external_attr = (stat.S_IFREG | 0o755) << 16
        zf.writestr(info, f"#!/bin/sh\necho {text}\n")
    return buf.getvalue()


def open_store(tmp_path: Path, clock: ManualClock) -> Store:
    return Store(ServerConfig(data_dir=tmp_path / "data"), clock)


async def add_function(store: Store, name: str = "fn", code: str = "one") -> FunctionRecord:
    """A function, settled (Active, Successful) as after CreateFunction's short Pending."""
    blob = await store.put_code(zip_of(code))
    store.create_function(
        FunctionSpec(name=name, runtime="provided.al2023", handler="h", role=ROLE), blob
    )
    settled = store.settle(name)
    assert settled is not None
    return settled


async def new_code(store: Store, name: str, code: str) -> FunctionRecord:
    blob = await store.put_code(zip_of(code))
    store.update_function_code(name, blob)
    settled = store.settle(name)
    assert settled is not None
    return settled
