from typing import Any

import pytest

from tests.integration.harness import lam, server, short_limits_server

__all__ = ["lam", "server", "short_limits_server"]


def pytest_collection_modifyitems(items: list[Any]) -> None:
    # The server runs in its own process; in this (client) process boto3's connection pools
    # are dropped with their clients, and the garbage collector later reports an unclosed
    # socket inside whichever test happens to be running (once a run, never the same test).
    # That is the client library's, not lambdalet's: don't let it fail an unrelated test.
    # Unit tests, which run lambdalet's own code in-process, keep the warning an error.
    here = __file__.rsplit("/", 1)[0]
    for item in items:
        if str(item.fspath).startswith(here):
            item.add_marker(pytest.mark.filterwarnings("ignore:unclosed <socket:ResourceWarning"))
            item.add_marker(
                pytest.mark.filterwarnings(
                    "ignore:Exception ignored in. <socket.socket:"
                    "pytest.PytestUnraisableExceptionWarning"
                )
            )
