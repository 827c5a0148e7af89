"""The Node.js runtimes for integration tests: installed before the server needs them.

The first install of a runtime builds aws-lambda-ric's native client (minutes); it is
kept in the per-user cache (``lambdalet.runtimes.node.cache_dir``), which
``./lambdalet.sh`` fills during setup, so this is quick after the first time.  An
install failure fails the tests that use it.
"""

from __future__ import annotations

import pytest

from lambdalet.runtimes.node import NODE_RUNTIMES as _RUNTIMES
from lambdalet.runtimes.node import install_node_runtime
from tests.integration.harness import Server

NODE_RUNTIMES = tuple(_RUNTIMES)


def ensure_node(server: Server, runtime: str) -> None:
    """Install ``runtime`` into the server's data dir (idempotent, cheap once cached)."""
    install_node_runtime(server.data_dir / "runtimes", runtime)


@pytest.fixture(scope="module")
def node_runtimes(server: Server) -> tuple[str, ...]:
    for runtime in NODE_RUNTIMES:
        ensure_node(server, runtime)
    return NODE_RUNTIMES
