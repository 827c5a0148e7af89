"""The sandbox guard in the real API app: requests from a sandbox are refused."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from lambdalet.app import build_api
from lambdalet.config import ServerConfig
from lambdalet.store import Store
from tests.unit.api.test_api_app import HangingInvoker

Address = tuple[str, int]


class Peers:
    """Says every connection comes from a sandbox (or none), and counts the questions."""

    def __init__(self, sandbox: bool) -> None:
        self.sandbox = sandbox
        self.asked: list[tuple[Address, Address]] = []

    def __call__(self, peer: Address, local: Address) -> bool:
        self.asked.append((peer, local))
        return self.sandbox


async def _client(tmp_path: Path, peers: Peers, **config: Any) -> AsyncIterator[TestClient]:
    cfg = ServerConfig(data_dir=tmp_path, **config)
    store = Store(cfg)
    app = build_api(cfg, store, HangingInvoker(), is_sandbox=peers)
    client = TestClient(TestServer(app))
    await client.start_server()
    try:
        yield client
    finally:
        await client.close()
        store.close()


@pytest.fixture
async def from_sandbox(tmp_path: Path) -> AsyncIterator[tuple[TestClient, Peers]]:
    peers = Peers(True)
    async for client in _client(tmp_path, peers):
        yield client, peers


async def test_every_endpoint_refuses_a_sandbox(from_sandbox: tuple[TestClient, Peers]) -> None:
    client, peers = from_sandbox
    for method, path in [
        ("GET", "/2015-03-31/functions/"),
        ("POST", "/2015-03-31/functions"),
        ("GET", "/2015-03-31/functions/f"),
        ("GET", "/2016-08-19/account-settings/"),
        ("GET", "/no/such/route"),
    ]:
        resp = await client.request(method, path)
        assert resp.status == 403, (method, path)
        assert resp.headers["X-Amzn-ErrorType"] == "AccessDeniedException"
        assert "control plane" in (await resp.json())["Message"]
    # one question per connection, not per request
    assert len(peers.asked) == 1


async def test_code_downloads_check_their_own_signature(
    from_sandbox: tuple[TestClient, Peers],
) -> None:
    client, _ = from_sandbox
    resp = await client.get(f"/lambdalet/code/{'ab' * 32}.zip")
    assert resp.status == 403
    assert "<Code>AccessDenied</Code>" in await resp.text()
    # the open prefix leads to the download route only (raw paths: clients normalise dots)
    for path in ("/lambdalet/code/../2015-03-31/functions/", "/lambdalet/code/%2e%2e/metrics"):
        reader, writer = await asyncio.open_connection(client.host, client.port)
        writer.write(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        answer = await reader.read()
        writer.close()
        assert answer.startswith(b"HTTP/1.1 404"), (path, answer[:200])
        assert b"UnknownOperationException" in answer, (path, answer[:400])


async def test_the_host_is_served(tmp_path: Path) -> None:
    peers = Peers(False)
    async for client in _client(tmp_path, peers):
        resp = await client.get("/2015-03-31/functions/")
        assert resp.status == 200
        assert peers.asked


async def test_with_credentials_the_signature_decides(tmp_path: Path) -> None:
    peers = Peers(True)
    async for client in _client(tmp_path, peers, credentials=(("AKID", "secret"),)):
        resp = await client.get("/2015-03-31/functions/")
        assert resp.headers["X-Amzn-ErrorType"] == "MissingAuthenticationTokenException"
        assert not peers.asked


async def test_a_connection_whose_owner_cannot_be_asked_is_refused(tmp_path: Path) -> None:
    calls = []

    def failing(peer: Address, local: Address) -> bool:
        calls.append(peer)
        raise OSError(24, "Too many open files")

    cfg = ServerConfig(data_dir=tmp_path)
    store = Store(cfg)
    client = TestClient(TestServer(build_api(cfg, store, HangingInvoker(), is_sandbox=failing)))
    await client.start_server()
    try:
        for _ in range(2):
            resp = await client.get("/2015-03-31/functions/")
            assert resp.headers["X-Amzn-ErrorType"] == "AccessDeniedException"
        assert len(calls) == 2  # not remembered: asked again
    finally:
        await client.close()
        store.close()
