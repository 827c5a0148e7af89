"""Running one install command (pip, npm) with its error reporting: a missing tool, a
time-out and a failure each become a :class:`RuntimeInstallError` that shows the
command's last lines of output."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

#: variables of the server's own environment that would redirect a pip install
PIP_REDIRECTS = ("PYTHONPATH", "PYTHONHOME", "PIP_TARGET", "PIP_PREFIX", "PIP_USER")


class RuntimeInstallError(Exception):
    """The managed runtime could not be installed (PyPI unreachable, no wheel, ...)."""


def pip_env(base: Mapping[str, str] | None = None) -> dict[str, str]:
    """``base`` (the server's environment) without what would redirect pip."""
    env = dict(os.environ if base is None else base)
    for name in PIP_REDIRECTS:
        env.pop(name, None)
    return env


def run_install(
    cmd: Sequence[str],
    *,
    timeout_s: float,
    missing: Callable[[OSError], str],
    timed_out: str,
    failed: Callable[[int, str], str],
    tail_lines: int = 12,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> str:
    """Run ``cmd``; its stdout, or a :class:`RuntimeInstallError` with the message
    ``missing(error)``, ``timed_out`` or ``failed(exit status, last lines of output)``."""
    try:
        done = subprocess.run(
            list(cmd),
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
            env=None if env is None else dict(env),
            cwd=cwd,
        )
    except FileNotFoundError as exc:
        raise RuntimeInstallError(missing(exc)) from exc
    except subprocess.TimeoutExpired as exc:
        raise RuntimeInstallError(timed_out) from exc
    if done.returncode != 0:
        tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-tail_lines:])
        raise RuntimeInstallError(failed(done.returncode, tail))
    return done.stdout
