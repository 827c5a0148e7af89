"""What a test needs from the machine: skipped where it is missing locally, a failure in CI.

CI (``CI`` set) runs on a machine ``lambdalet.sh`` has provisioned, so a missing tool or a
sandbox that cannot run there is a broken setup, never a reason to pass by skipping.
"""

from __future__ import annotations

import os

import pytest


def require(what: str, missing: str | None) -> None:
    """Go on if ``missing`` is None; else skip, saying why, or fail when ``CI`` is set."""
    if missing is None:
        return
    if os.environ.get("CI"):
        pytest.fail(f"{what} is required in CI but unavailable: {missing}")
    pytest.skip(f"{what} unavailable: {missing}")
