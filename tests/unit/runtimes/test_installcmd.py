"""One runner for install commands (pip, npm): each way of failing is reported."""

from __future__ import annotations

import sys

import pytest

from lambdalet.runtimes.installcmd import RuntimeInstallError, pip_env, run_install

MESSAGES = dict(
    missing=lambda exc: f"missing: {exc.filename}",
    timed_out="too slow",
    failed=lambda rc, tail: f"failed {rc}:\n{tail}",
)


def test_output_of_a_command_that_works() -> None:
    assert run_install([sys.executable, "-c", "print('hi')"], timeout_s=30, **MESSAGES) == "hi\n"


def test_failure_shows_the_last_lines() -> None:
    code = "import sys\nfor i in range(20): print(i)\nsys.exit(3)"
    with pytest.raises(RuntimeInstallError) as e:
        run_install([sys.executable, "-c", code], timeout_s=30, tail_lines=2, **MESSAGES)
    assert str(e.value) == "failed 3:\n18\n19"


def test_missing_tool_and_time_out() -> None:
    with pytest.raises(RuntimeInstallError, match="missing: /nonexistent/pip"):
        run_install(["/nonexistent/pip"], timeout_s=30, **MESSAGES)
    with pytest.raises(RuntimeInstallError, match="too slow"):
        run_install([sys.executable, "-c", "import time; time.sleep(5)"], timeout_s=0.2, **MESSAGES)


def test_pip_env_drops_what_would_redirect_pip() -> None:
    env = pip_env({"PATH": "/bin", "PYTHONPATH": "/x", "PIP_TARGET": "/t", "PIP_USER": "1"})
    assert env == {"PATH": "/bin"}
