"""pip installs of the runtime's packages (the client, the SDK) and their host-wide cache.

pip runs once per host and package set: the installed, compiled tree is kept in
``~/.cache/lambdalet/python-packages/<key>`` (:func:`package_cache_dir`) and hard-linked
into each data dir that needs it (every test server has its own data dir).
"""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import sys
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

from lambdalet.config import host_paths
from lambdalet.runtimes.installcmd import RuntimeInstallError as RuntimeInstallError
from lambdalet.runtimes.installcmd import pip_env, run_install

if TYPE_CHECKING:
    from lambdalet.runtimes.python import PythonInstall

_PIP_TIMEOUT_S = 900.0


def machine_platform() -> str:
    """The manylinux2014 platform tag of this machine (Lambda's x86_64 or arm64)."""
    machine = platform.machine().lower()
    arch = {"amd64": "x86_64", "arm64": "aarch64"}.get(machine, machine)
    return f"manylinux2014_{arch}"


def pip_command(
    install: PythonInstall,
    target: Path,
    pip_python: str,
    packages: Sequence[str],
) -> list[str]:
    """The pip command line installing ``packages`` for ``install`` into ``target``: binary
    wheels only; for another minor version than this Python's, that version's wheels."""
    cmd = [
        pip_python,
        "-m",
        "pip",
        "install",
        "--no-input",
        "--disable-pip-version-check",
        "--no-compile",
        "--no-warn-script-location",
        "--only-binary=:all:",
        "--target",
        str(target),
    ]
    if install.minor != sys.version_info[:2]:
        cmd += [
            "--python-version",
            install.minor_str,
            "--implementation",
            "cp",
            "--platform",
            machine_platform(),
        ]
    cmd.extend(packages)
    return cmd


@lru_cache(maxsize=32)
def pip_python_for(install: PythonInstall) -> str:
    """The interpreter to run pip with for ``install``: the install itself when it has pip.

    ``pip --python-version`` picks wheels for another version but evaluates environment
    markers (``urllib3<1.27; python_version < "3.10"``) for the Python running pip, so
    only pip run by the same minor version resolves dependencies right.  Falls back to
    the Python running lambdalet.
    """
    if install.minor == sys.version_info[:2]:
        return sys.executable
    try:
        done = subprocess.run(
            [str(install.executable), "-I", "-m", "pip", "--version"],
            capture_output=True,
            timeout=60,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return sys.executable
    return str(install.executable) if done.returncode == 0 else sys.executable


def run_pip(cmd: Sequence[str], install: PythonInstall, what: str) -> None:
    """Run pip; a :class:`RuntimeInstallError` naming ``what`` and showing pip's last lines."""
    run_install(
        cmd,
        timeout_s=_PIP_TIMEOUT_S,
        env=pip_env(),
        missing=lambda exc: f"lambdalet: cannot run pip ({exc})",
        timed_out=(
            f"lambdalet: installing {what} for Python {install.minor_str} "
            "took more "
            f"than {_PIP_TIMEOUT_S:.0f} s; is PyPI (https://pypi.org) reachable?"
        ),
        failed=lambda rc, tail: (
            "lambdalet: could not install "
            f"{what} "
            f"for Python {install.minor_str} from PyPI (pip exit status {rc}). "
            "The managed Python runtime is downloaded once from https://pypi.org; check that "
            f"it is reachable (proxy settings: HTTPS_PROXY / pip.conf).\n{tail}"
        ),
    )


CACHE_COMPLETE = ".lambdalet-complete"


def package_cache_dir() -> Path:
    """Host-wide cache of pip-installed, compiled package trees (the client, the SDK):
    ``$LAMBDALET_CACHE_DIR/python-packages`` or ``~/.cache/lambdalet/python-packages``."""
    return host_paths().cache_dir / "python-packages"


def package_cache_key(install: PythonInstall, packages: Sequence[str]) -> str:
    """``python3.12-boto3-1.43.11-botocore-1.43.11-manylinux2014_x86_64``."""
    names = "-".join(p.replace("==", "-") for p in sorted(packages))
    return f"python{install.minor_str}-{names}-{machine_platform()}"


def install_packages(
    target: Path,
    install: PythonInstall,
    packages: Sequence[str],
    pip_python: str | None,
    use_cache: bool,
) -> None:
    """``packages`` for ``install`` into ``target`` (compiled by that interpreter, as the
    tree is read-only inside a sandbox): from the host-wide cache when it has them, else
    from pip, and then into the cache."""
    cached = package_cache_dir() / package_cache_key(install, packages) if use_cache else None
    if cached is not None and (cached / CACHE_COMPLETE).is_file():
        _link_tree(cached, target)
        return
    cmd = pip_command(install, target, pip_python or pip_python_for(install), packages)
    run_pip(cmd, install, " ".join(packages))
    subprocess.run(
        [str(install.executable), "-I", "-m", "compileall", "-q", str(target)],
        capture_output=True,
        timeout=300,
        check=False,
    )
    if cached is not None:
        _save_to_cache(target, cached)


def _link_or_copy(src: str, dst: str) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def _link_tree(src: Path, dst: Path) -> None:
    """``src`` at ``dst``, files hard-linked where one filesystem holds both (read-only)."""
    shutil.copytree(
        src, dst, copy_function=_link_or_copy, ignore=shutil.ignore_patterns(CACHE_COMPLETE)
    )


def _save_to_cache(tree: Path, cached: Path) -> None:
    """Best effort: a cache that cannot be written only costs the next data dir a pip run."""
    tmp = cached.with_name(f".{cached.name}.tmp-{os.getpid()}")
    try:
        shutil.rmtree(tmp, ignore_errors=True)
        _link_tree(tree, tmp)
        (tmp / CACHE_COMPLETE).touch()
        os.rename(tmp, cached)
    except OSError:
        pass
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
