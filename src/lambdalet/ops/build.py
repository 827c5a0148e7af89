"""Dependency builds as ``sam build`` does them, without Docker.

A Python function's ``requirements.txt`` is installed with pip for the function's Python
version and Lambda's platform (manylinux wheels only, as Lambda cannot build sdists with
a compiler it does not have); a Node.js function's ``package.json`` with npm (production
dependencies; ``npm ci`` when a lockfile exists), run by the function's own Node version
when lambdalet has it, so install scripts and native addons build for the Node they run
on.  The dependencies land next to the code in the deployment package, as in
``.aws-sam/build/<Function>/``.  A layer with ``Metadata: BuildMethod: python3.X`` or
``nodejs*`` is built into ``python/`` or ``nodejs/`` of its zip, as ``sam build`` does.

Builds are cached under ``<template dir>/.lambdalet-build/deps/<key>``; the key is the hash
of the dependency files, the runtime and the platform, so a redeploy (or a ``--watch``
reload) that did not change them reuses the folder.

The command lines, keys and error messages are pure functions (unit-tested); :func:`build`
runs the tools.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from lambdalet.ops.settings import client_settings

Say = Callable[[str], None]

#: bumped when what a build produces changes (the cache then rebuilds)
BUILD_VERSION = 1
CACHE_DIR_NAME = ".lambdalet-build"
#: Lambda's x86_64 platform; manylinux2014 = glibc 2.17, which every Lambda OS has
PLATFORM = "manylinux2014_x86_64"
PYTHON_MANIFEST = "requirements.txt"
NODE_MANIFEST = "package.json"
NODE_LOCKFILES = ("package-lock.json", "npm-shrinkwrap.json")
#: copied with package.json into the npm build dir
NODE_EXTRA_FILES = (*NODE_LOCKFILES, ".npmrc")
TIMEOUT_S = 900.0

_PYTHON_RE = re.compile(r"^python3\.(\d+)$")


class BuildError(Exception):
    """A dependency build failed; the message names the package and shows the tool's error."""


@dataclass(frozen=True)
class Manifest:
    """What to build: the tool, its files and where the result goes in the package."""

    kind: str  # "pip" | "npm"
    runtime: str  # "python3.12", "nodejs22.x"
    source_dir: Path  # holds the manifest
    files: Mapping[str, bytes]  # manifest file name -> content (the cache key's input)
    #: where the dependencies go inside the package: "" (function), "python" or "nodejs"
    subdir: str = ""

    @property
    def python_version(self) -> str:
        """``"3.12"`` for a pip build."""
        m = _PYTHON_RE.match(self.runtime)
        return f"3.{m.group(1)}" if m else f"{sys.version_info[0]}.{sys.version_info[1]}"


def find_manifest(runtime: str, source_dir: Path, subdir: str = "") -> Manifest | None:
    """The dependency manifest ``sam build`` would use for this runtime, or None."""
    if _PYTHON_RE.match(runtime):
        path = source_dir / PYTHON_MANIFEST
        if path.is_file():
            return Manifest(
                "pip", runtime, source_dir, {PYTHON_MANIFEST: path.read_bytes()}, subdir
            )
        return None
    if runtime.startswith("nodejs"):
        path = source_dir / NODE_MANIFEST
        if not path.is_file():
            return None
        files = {NODE_MANIFEST: path.read_bytes()}
        for name in NODE_EXTRA_FILES:
            if (source_dir / name).is_file():
                files[name] = (source_dir / name).read_bytes()
        return Manifest("npm", runtime, source_dir, files, subdir)
    return None


def layer_build_runtime(build_method: str | None) -> tuple[str, str] | None:
    """(runtime, subdir) for a layer's ``Metadata.BuildMethod``; None: not built."""
    if build_method is None:
        return None
    if _PYTHON_RE.match(build_method):
        return build_method, "python"
    if build_method.startswith("nodejs"):
        return build_method, "nodejs"
    return None


def cache_key(manifest: Manifest) -> str:
    """The hash of everything the build's result depends on."""
    h = hashlib.sha256()
    h.update(f"lambdalet-build {BUILD_VERSION}\0{manifest.kind}\0{manifest.runtime}\0".encode())
    if manifest.kind == "pip":
        h.update(f"{PLATFORM}\0".encode())
    for name in sorted(manifest.files):
        content = manifest.files[name]
        h.update(f"{name}\0{len(content)}\0".encode())
        h.update(content)
    return h.hexdigest()[:24]


def pip_command(python: str, requirements: Path, target: Path, python_version: str) -> list[str]:
    """``pip install`` of a requirements file for Lambda: binary wheels for its platform."""
    return [
        python,
        "-m",
        "pip",
        "install",
        "--no-input",
        "--disable-pip-version-check",
        "--no-warn-script-location",
        "--no-compile",
        "--platform",
        PLATFORM,
        "--implementation",
        "cp",
        "--python-version",
        python_version,
        "--only-binary=:all:",
        "--target",
        str(target),
        "-r",
        str(requirements),
    ]


@dataclass(frozen=True)
class Npm:
    """The npm a Node.js build runs: that of the runtime's own Node (``node_prefix``), else
    the one on PATH (``node_prefix`` None)."""

    argv: tuple[str, ...]  # ("npm",) or (node, npm-cli.js)
    node_prefix: Path | None = None
    node_version: str | None = None

    @property
    def detail(self) -> str:
        return f"Node.js {self.node_version}" if self.node_version else "npm on PATH"

    def env(self, base: Mapping[str, str]) -> dict[str, str]:
        """``base`` for npm: its Node first on PATH (install scripts run ``node``), node-gyp
        building against that Node's headers (nothing downloaded from nodejs.org)."""
        env = dict(base)
        env.pop("NODE_OPTIONS", None)
        env.pop("NODE_PATH", None)
        if self.node_prefix is not None:
            env["PATH"] = f"{self.node_prefix / 'bin'}:{env.get('PATH', '/usr/bin:/bin')}"
            env["npm_config_nodedir"] = str(self.node_prefix)
        return env


def npm_for(node: Path | None, npm: Path | None, prefix: Path | None, version: str | None) -> Npm:
    """The runtime's Node (its executable, its npm, prefix and version) as an :class:`Npm`;
    npm on PATH when there is no such Node or it has no npm of its own."""
    if node is None or npm is None or prefix is None:
        return Npm(("npm",))
    argv = (str(node), str(npm)) if npm.suffix == ".js" else (str(npm),)
    return Npm(argv, prefix, version)


def npm_command(files: Sequence[str], npm: Npm = Npm(("npm",))) -> list[str]:
    """npm for production dependencies; ``npm ci`` (the lockfile exactly) when there is one."""
    common = ["--omit=dev", "--no-audit", "--no-fund"]
    if any(name in files for name in NODE_LOCKFILES):
        return [*npm.argv, "ci", *common]
    return [*npm.argv, "install", "--no-save", "--no-package-lock", *common]


_PIP_MISSING = (
    re.compile(r"No matching distribution found for ([^\s;]+)"),
    re.compile(r"Could not find a version that satisfies the requirement ([^\s;(]+)"),
)
_NPM_MISSING = (
    re.compile(r"404 Not Found - GET \S+/(@?[^/\s]+(?:%2[fF][^/\s]+)?)\s"),
    re.compile(r"'(@?[^'@\s]+)@[^']*' is not in (?:the npm|this) registry"),
    re.compile(r"No matching version found for (@?[^@\s]+)@"),
)


def failed_package(kind: str, output: str) -> str | None:
    """The package the tool could not install, from its output; None if it does not say."""
    for pattern in _PIP_MISSING if kind == "pip" else _NPM_MISSING:
        m = pattern.search(output)
        if m:
            return m.group(1).replace("%2f", "/").replace("%2F", "/")
    return None


def failure_message(manifest: Manifest, returncode: int, output: str) -> str:
    tool = "pip" if manifest.kind == "pip" else "npm"
    what = PYTHON_MANIFEST if manifest.kind == "pip" else NODE_MANIFEST
    package = failed_package(manifest.kind, output)
    head = (
        f"{tool} could not install {package!r} from {what}"
        if package
        else f"{tool} failed on {what} (exit status {returncode})"
    )
    if manifest.kind == "pip":
        head += (
            f" for Python {manifest.python_version} on {PLATFORM}: Lambda needs binary wheels"
            " (--only-binary=:all:)"
        )
    lines = [line for line in output.strip().splitlines() if line.strip()]
    tail = "\n".join("    " + line for line in lines[-15:])
    return f"{head}\n{tail}" if tail else head


# --------------------------------------------------------------------------- running


def _pip_python(python_version: str) -> str:
    """An interpreter of that minor version with pip (markers are evaluated by pip's own
    Python), else the Python running lambdalet with ``--python-version``."""
    from lambdalet.runtimes.python import SearchPlaces, find_python, pip_python_for

    major, minor = (int(p) for p in python_version.split("."))
    install = find_python((major, minor), SearchPlaces.default())
    return pip_python_for(install) if install is not None else sys.executable


def runtime_npm(runtime: str) -> Npm:
    """npm of the runtime's Node when lambdalet has that Node (the host's of that major
    version or the one it installed for the runtime), else npm on PATH."""
    from lambdalet.runtimes.node import cache_dir, find_node, node_major

    try:
        install = find_node(cache_dir(), node_major(runtime))
    except ValueError:  # a Node.js version lambdalet does not run
        install = None
    if install is None:
        return Npm(("npm",))
    return npm_for(install.executable, install.npm(), install.prefix, install.version)


def _run(cmd: Sequence[str], cwd: Path | None, env: Mapping[str, str]) -> tuple[int, str]:
    try:
        done = subprocess.run(
            list(cmd),
            cwd=cwd,
            env=dict(env),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=TIMEOUT_S,
            check=False,
        )
    except FileNotFoundError as e:
        hint = (
            " (install Node.js, or the function's runtime with `lambdalet runtimes install`)"
            if cmd[0] == "npm"
            else ""
        )
        raise BuildError(f"cannot run {cmd[0]}: {e}{hint}") from None
    except subprocess.TimeoutExpired:
        raise BuildError(f"{cmd[0]} took more than {TIMEOUT_S:.0f} s") from None
    return done.returncode, done.stdout


def _tool_env() -> dict[str, str]:
    env = dict(client_settings().environ)
    for name in ("PYTHONPATH", "PYTHONHOME", "PIP_TARGET", "PIP_PREFIX", "PIP_USER"):
        env.pop(name, None)
    env["NODE_ENV"] = "production"
    return env


def _install(manifest: Manifest, out: Path, npm: Npm) -> None:
    """Install the dependencies into ``out`` (which exists and is empty)."""
    if manifest.kind == "pip":
        target = out / manifest.subdir if manifest.subdir else out
        cmd = pip_command(
            _pip_python(manifest.python_version),
            manifest.source_dir / PYTHON_MANIFEST,
            target,
            manifest.python_version,
        )
        rc, output = _run(cmd, manifest.source_dir, _tool_env())
    else:
        work = out / manifest.subdir if manifest.subdir else out
        work.mkdir(parents=True, exist_ok=True)
        for name, content in manifest.files.items():
            (work / name).write_bytes(content)
        rc, output = _run(npm_command(list(manifest.files), npm), work, npm.env(_tool_env()))
        for name in manifest.files:  # the package keeps the source's own copies
            (work / name).unlink(missing_ok=True)
    if rc != 0:
        raise BuildError(failure_message(manifest, rc, output))


def build(manifest: Manifest, cache_root: Path, say: Say, label: str) -> Path:
    """The folder holding the built dependencies (from the cache when the key matches)."""
    key = cache_key(manifest)
    done = cache_root / "deps" / key
    if done.is_dir():
        say(f"{label}: dependencies unchanged, using the build cache ({key[:12]})")
        return done
    npm = runtime_npm(manifest.runtime) if manifest.kind == "npm" else Npm(("npm",))
    if manifest.kind == "pip":
        tool, what = "pip", PYTHON_MANIFEST
        detail = f"Python {manifest.python_version}, {PLATFORM}"
    else:
        tool, what = " ".join(npm_command(list(manifest.files))[:2]), NODE_MANIFEST
        detail = f"{manifest.runtime}, {npm.detail}"
    say(f"{label}: installing {what} with {tool} ({detail})")
    tmp = cache_root / "deps" / f".{key}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        _install(manifest, tmp, npm)
        if done.is_dir():  # another deploy built it meanwhile
            return done
        os.rename(tmp, done)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    count = sum(1 for _ in done.rglob("*") if _.is_file())
    say(f"{label}: dependencies built ({count} files, cache {key[:12]})")
    return done
