"""Python runtimes: host interpreter discovery and the managed runtime directory.

A ``python3.X`` function runs on a Python install of the host (a *prefix*, mounted
read-only at ``/var/lang``) and on a managed runtime directory (mounted read-only at
``/var/runtime``) that holds the real Runtime Interface Client from PyPI
(``awslambdaric``) and a ``bootstrap`` launcher.

Layout under ``ServerConfig.runtimes_dir``::

    python3.11/                 the runtime dir of every function running on Python 3.11
        awslambdaric/ ...       pip install --target (with its dependencies)
        bootstrap               sh launcher: <python> -m awslambdaric "$_HANDLER"
        bin/python, bin/python3 -> ../../lang/bin/python3.11   (see PythonRuntime.extra_path)
        .lambdalet-runtime.json stamp: what was installed, for which interpreter
    python3.11.lang/            the language layer, laid over the prefix at /var/lang:
        lib/python3.11/site-packages/   opaque (hides the host's), holds boto3/botocore
        .lambdalet-layer.json   stamp: SDK version, the install's site dirs
    lang/bin/python3.11 -> /root/.pyenv/versions/3.11.7/bin/python3.11

pip runs once per host and package set (:mod:`lambdalet.runtimes.pypackages`): the
installed trees are kept in ``~/.cache/lambdalet/python-packages`` and hard-linked into
each data dir.

Every relative link in the runtime dir points at ``../lang/...``.  In a sandbox that is
``/var/lang``; on the host (the ``process`` backend, which shows host paths) it is the
``lang`` directory above, whose absolute links lead to the host interpreter.  So the same
runtime dir works in both backends.

When the function asks for a minor version the host does not have, the host's own Python
(the one running lambdalet) is used instead and :attr:`PythonRuntime.note` holds the line
the function log must show (``ServerConfig.python_fallback == "refuse"`` rejects it).

:func:`describe` and :func:`install` are this family's entries in
:mod:`lambdalet.runtimes.catalog` (``lambdalet runtimes``).

Command line (used by ``./lambdalet.sh``)::

    python -m lambdalet.runtimes.python --install [--data-dir DIR] [--runtime python3.X]
    python -m lambdalet.runtimes.python --list
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import shutil
import sys
import time
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from lambdalet.config import DEFAULT_DATA_DIR, ServerConfig
from lambdalet.runtimes import fsutil, pypackages
from lambdalet.runtimes.description import (
    FIRST_USE_NOTE,
    INSTALLED,
    NOT_INSTALLED,
    UNAVAILABLE,
    RuntimeDescription,
)
from lambdalet.runtimes.pyhosts import FALLBACK_POLICIES as FALLBACK_POLICIES
from lambdalet.runtimes.pyhosts import PYTHON_RUNTIMES as PYTHON_RUNTIMES
from lambdalet.runtimes.pyhosts import PythonInstall as PythonInstall
from lambdalet.runtimes.pyhosts import SearchPlaces as SearchPlaces
from lambdalet.runtimes.pyhosts import fallback_notice as fallback_notice
from lambdalet.runtimes.pyhosts import fallback_problem as fallback_problem
from lambdalet.runtimes.pyhosts import find_python as find_python
from lambdalet.runtimes.pyhosts import host_python as host_python
from lambdalet.runtimes.pyhosts import install_of as install_of
from lambdalet.runtimes.pyhosts import is_python_runtime as is_python_runtime
from lambdalet.runtimes.pyhosts import list_pythons as list_pythons
from lambdalet.runtimes.pyhosts import parse_python_runtime as parse_python_runtime
from lambdalet.runtimes.pyhosts import refusal as refusal
from lambdalet.runtimes.pyhosts import select_python as select_python
from lambdalet.runtimes.pylang import default_site_dir as default_site_dir
from lambdalet.runtimes.pylang import install_lang_layer as install_lang_layer
from lambdalet.runtimes.pylang import lang_layer_for as lang_layer_for
from lambdalet.runtimes.pylang import layer_current as layer_current
from lambdalet.runtimes.pylang import layer_isolates as layer_isolates
from lambdalet.runtimes.pylang import read_layer_stamp as read_layer_stamp
from lambdalet.runtimes.pylang import sdk_site_dir as sdk_site_dir
from lambdalet.runtimes.pylang import site_dirs as site_dirs
from lambdalet.runtimes.pypackages import CACHE_COMPLETE as CACHE_COMPLETE
from lambdalet.runtimes.pypackages import RuntimeInstallError as RuntimeInstallError
from lambdalet.runtimes.pypackages import package_cache_key as package_cache_key
from lambdalet.runtimes.pypackages import pip_python_for as pip_python_for
from lambdalet.runtimes.pyversions import AWSLAMBDARIC_VERSION as AWSLAMBDARIC_VERSION
from lambdalet.runtimes.pyversions import SDK_VERSION as SDK_VERSION
from lambdalet.runtimes.pyversions import awslambdaric_version as awslambdaric_version
from lambdalet.runtimes.pyversions import sdk_packages as sdk_packages
from lambdalet.runtimes.pyversions import sdk_version as sdk_version
from lambdalet.sandbox.base import SandboxView

logger = logging.getLogger(__name__)

STAMP_NAME = ".lambdalet-runtime.json"
#: Bumped when the runtime dir layout (not the client version) changes.
LAYOUT_VERSION = 1
LANG_DIR_NAME = "lang"


# --------------------------------------------------------------------------- runtime dir


@dataclass(frozen=True)
class PythonRuntime:
    """A ready managed Python runtime: what to mount and how to start it."""

    runtime_id: str  # the function's runtime id ("python3.9")
    install: PythonInstall  # the interpreter actually used
    runtime_dir: Path  # host dir to mount at /var/runtime
    note: str | None  # line for the function log when falling back, else None
    #: laid over the prefix at /var/lang: hides the host's site-packages, holds the SDK
    lang_layer: Path | None = None
    #: the site dir holding the SDK, relative to the prefix (and to the layer)
    sdk_rel: str = ""

    @property
    def lang_dir(self) -> Path:
        """Host dir to mount at ``/var/lang``."""
        return self.install.prefix

    def sdk_dir(self, view: SandboxView) -> str:
        """Where the function sees the runtime's boto3 (for PYTHONPATH)."""
        rel = self.sdk_rel or default_site_dir(self.install)
        if self.lang_layer is not None and view.lang_dir == str(self.install.prefix):
            # the prefix shown at its host path: no mounts (the process backend), so the
            # layer is not laid over it; its own folder holds the SDK
            return str(self.lang_layer / rel)
        return f"{view.lang_dir}/{rel}"

    @property
    def lang_layers(self) -> tuple[Path, ...]:
        return (self.lang_layer,) if self.lang_layer is not None else ()

    @property
    def python_version(self) -> str:
        """Minor version actually used, ``"3.11"``: for ``envvars.runtime_environment``."""
        return self.install.minor_str

    def argv(self, view: SandboxView) -> list[str]:
        """Command line of the runtime process as seen inside (start it with cwd = task root)."""
        return [f"{view.runtime_dir}/bootstrap"]

    def extra_path(self, view: SandboxView) -> tuple[str, ...]:
        """Directories to put in front of PATH so ``python``/``python3`` are this interpreter.

        Empty when the prefix's own ``bin`` already has both names (pyenv, python.org).
        """
        if self.install.has_own_python_names():
            return ()
        return (f"{view.runtime_dir}/bin",)


def runtime_dir_for(runtimes_dir: Path, install: PythonInstall) -> Path:
    return runtimes_dir / f"python{install.minor_str}"


def _stamp_for(install: PythonInstall) -> dict[str, object]:
    return {
        "layout": LAYOUT_VERSION,
        "awslambdaric": awslambdaric_version(install.minor),
        "python": install.version,
        "prefix": str(install.prefix),
        "interpreter": install.interpreter,
    }


def _read_stamp(runtime_dir: Path) -> dict[str, object] | None:
    try:
        data = json.loads((runtime_dir / STAMP_NAME).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _lang_link(runtimes_dir: Path, install: PythonInstall) -> Path:
    return runtimes_dir / LANG_DIR_NAME / install.interpreter


def is_installed(runtimes_dir: Path, install: PythonInstall) -> bool:
    """True when the runtime dir for ``install`` is complete and current."""
    runtime_dir = runtime_dir_for(runtimes_dir, install)
    if _read_stamp(runtime_dir) != _stamp_for(install):
        return False
    link = _lang_link(runtimes_dir, install)
    if not (os.path.islink(link) and os.readlink(link) == str(install.executable)):
        return False
    if not layer_current(lang_layer_for(runtimes_dir, install), install):
        return False
    return all(_has_text(runtime_dir / name, text) for name, text in _prestart_files(install))


def _has_text(path: Path, text: str) -> bool:
    try:
        return path.read_text(encoding="utf-8") == text
    except OSError:
        return False


#: the pre-started runtime (sandbox.base.PRESTART_FILE) and the module it runs
PRESTART_NAME = "lambdalet-prestart"
ZYGOTE_MODULE = "lambdalet_zygote.py"
#: what ./bootstrap runs: ``python -m awslambdaric`` plus the Function init mark
LAUNCH_MODULE = "lambdalet_launch.py"


def _prestart_files(install: PythonInstall) -> list[tuple[str, str]]:
    files = resources.files("lambdalet.runtimes").joinpath("files")
    launcher = files.joinpath("python-prestart").read_text(encoding="utf-8")
    return [
        (PRESTART_NAME, launcher.replace("@INTERPRETER@", install.interpreter)),
        (ZYGOTE_MODULE, files.joinpath(ZYGOTE_MODULE).read_text(encoding="utf-8")),
        (LAUNCH_MODULE, files.joinpath(LAUNCH_MODULE).read_text(encoding="utf-8")),
    ]


def bootstrap_text(install: PythonInstall) -> str:
    template = resources.files("lambdalet.runtimes").joinpath("files/python-bootstrap")
    return template.read_text(encoding="utf-8").replace("@INTERPRETER@", install.interpreter)


def pip_command(
    install: PythonInstall,
    target: Path,
    pip_python: str,
    packages: Sequence[str] | None = None,
) -> list[str]:
    """pip installing ``packages`` (default: the client) for ``install`` into ``target``."""
    if packages is None:
        packages = [f"awslambdaric=={awslambdaric_version(install.minor)}"]
    return pypackages.pip_command(install, target, pip_python, packages)


def _write_launchers(runtimes_dir: Path, runtime_dir: Path, install: PythonInstall) -> None:
    """bootstrap, bin/ links, the host-side lang link, and finally the stamp."""
    fsutil.symlink(_lang_link(runtimes_dir, install), str(install.executable))
    fsutil.write_file(runtime_dir / "bootstrap", bootstrap_text(install), 0o755)
    for name, text in _prestart_files(install):
        fsutil.write_file(runtime_dir / name, text, 0o755 if name == PRESTART_NAME else 0o644)
    relative = f"../../{LANG_DIR_NAME}/{install.interpreter}"
    for name in ("python", "python3", f"python{install.minor_str}"):
        fsutil.symlink(runtime_dir / "bin" / name, relative)
    fsutil.write_file(
        runtime_dir / STAMP_NAME, json.dumps(_stamp_for(install), indent=1) + "\n", 0o644
    )


def install_python_runtime(
    runtimes_dir: Path, install: PythonInstall, *, pip_python: str | None = None
) -> Path:
    """Install (idempotently) the managed runtime dir for ``install``; returns it.

    Blocking: runs pip.  Safe against concurrent calls from other processes.
    """
    runtimes_dir = runtimes_dir.absolute()
    runtime_dir = runtime_dir_for(runtimes_dir, install)
    if is_installed(runtimes_dir, install):
        return runtime_dir
    _install_client(runtimes_dir, install, pip_python)
    install_lang_layer(runtimes_dir, install, pip_python=pip_python)
    return runtime_dir


def _install_client(runtimes_dir: Path, install: PythonInstall, pip_python: str | None) -> Path:
    """The runtime dir: awslambdaric, bootstrap and launchers (see the module docstring)."""
    runtime_dir = runtime_dir_for(runtimes_dir, install)
    with fsutil.file_lock(runtimes_dir / f".python{install.minor_str}.lock"):
        stamp = _read_stamp(runtime_dir)
        wanted = _stamp_for(install)
        link = _lang_link(runtimes_dir, install)
        if (
            stamp == wanted
            and os.path.islink(link)
            and os.readlink(link) == str(install.executable)
            and all(_has_text(runtime_dir / n, t) for n, t in _prestart_files(install))
        ):
            return runtime_dir
        packages_current = (
            stamp is not None
            and stamp.get("layout") == wanted["layout"]
            and stamp.get("awslambdaric") == wanted["awslambdaric"]
            and (runtime_dir / "awslambdaric" / "__init__.py").is_file()
        )
        if packages_current:
            # Same client for this minor version: only the interpreter moved.
            _write_launchers(runtimes_dir, runtime_dir, install)
            return runtime_dir
        tmp = runtimes_dir / f".python{install.minor_str}.tmp-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        try:
            client = [f"awslambdaric=={awslambdaric_version(install.minor)}"]
            pypackages.install_packages(
                tmp, install, client, pip_python, use_cache=pip_python is None
            )
            _write_launchers(runtimes_dir, tmp, install)
            fsutil.replace_dir(runtime_dir, tmp)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return runtime_dir


# --------------------------------------------------------------------------- async API

_locks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[Path, asyncio.Lock]] = (
    weakref.WeakKeyDictionary()
)
_ready: dict[tuple[Path, str, SearchPlaces], PythonRuntime] = {}


def _lock_for(runtime_dir: Path) -> asyncio.Lock:
    per_loop = _locks.setdefault(asyncio.get_running_loop(), {})
    lock = per_loop.get(runtime_dir)
    if lock is None:
        lock = per_loop[runtime_dir] = asyncio.Lock()
    return lock


def installed_python(
    config: ServerConfig, runtime_id: str, places: SearchPlaces | None = None
) -> PythonInstall | None:
    """The install a ``python3.X`` function would run on, if its runtime is installed."""
    try:
        install = select_python(runtime_id, places or SearchPlaces.default()).install
    except (ValueError, OSError):
        return None
    return install if is_installed(config.runtimes_dir.absolute(), install) else None


async def ensure_python_runtime(
    config: ServerConfig,
    runtime_id: str,
    *,
    places: SearchPlaces | None = None,
    pip_python: str | None = None,
) -> PythonRuntime:
    """The ready runtime for a ``python3.X`` function; installs it on first use.

    Raises ``ValueError`` for a non-Python runtime id and :class:`RuntimeInstallError` when
    the client cannot be installed (PyPI unreachable).  Cheap after the first call.
    """
    places = places if places is not None else SearchPlaces.default()
    runtimes_dir = config.runtimes_dir.absolute()
    key = (runtimes_dir, runtime_id, places)
    ready = _ready.get(key)
    if ready is not None:
        return ready
    selection = await asyncio.to_thread(select_python, runtime_id, places)
    if selection.note is not None and config.python_fallback == "refuse":
        raise RuntimeInstallError(refusal(runtime_id))
    install = selection.install
    runtime_dir = runtime_dir_for(runtimes_dir, install)
    async with _lock_for(runtime_dir):
        if not is_installed(runtimes_dir, install):
            started = time.monotonic()
            logger.info(
                "installing the %s runtime for Python %s at %s (awslambdaric %s, boto3 %s) "
                "from PyPI; its first invoke waits for it",
                runtime_id,
                install.version,
                install.prefix,
                awslambdaric_version(install.minor),
                sdk_version(install.minor),
            )
            await asyncio.to_thread(
                install_python_runtime, runtimes_dir, install, pip_python=pip_python
            )
            logger.info("the %s runtime is ready (%.1f s)", runtime_id, time.monotonic() - started)
    layer = lang_layer_for(runtimes_dir, install)
    stamp = read_layer_stamp(layer) or {}
    sites = stamp.get("site")
    sdk_rel = sdk_site_dir([str(s) for s in sites], install) if isinstance(sites, list) else ""
    ready = PythonRuntime(runtime_id, install, runtime_dir, selection.note, layer, sdk_rel)
    _ready[key] = ready
    return ready


# --------------------------------------------------------------------------- debugpy

#: the debugger a debug-port environment waits for (``lambdalet invoke --debug-port``)
DEBUGPY_VERSION = "1.8.22"
#: debugpy goes into this folder of the runtime dir: /var/runtime/debugpy in a sandbox
DEBUGPY_DIR = "debugpy"


def debugpy_dir(runtime: PythonRuntime) -> Path:
    return runtime.runtime_dir / DEBUGPY_DIR


def install_debugpy(runtime: PythonRuntime, *, pip_python: str | None = None) -> Path:
    """Install (idempotently) debugpy for the runtime's Python next to its client.

    Blocking: runs pip once per runtime dir.  A separate folder, added to ``sys.path`` only
    by an environment that waits for a debugger: other functions never import it.
    """
    target = debugpy_dir(runtime)
    stamp = target / ".lambdalet-debugpy"
    if stamp.is_file() and stamp.read_text().strip() == DEBUGPY_VERSION:
        return target
    install = runtime.install
    with fsutil.file_lock(runtime.runtime_dir.parent / f".python{install.minor_str}-debugpy.lock"):
        if stamp.is_file() and stamp.read_text().strip() == DEBUGPY_VERSION:
            return target
        tmp = target.with_name(f".{DEBUGPY_DIR}.tmp-{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        cmd = pip_command(
            install, tmp, pip_python or sys.executable, [f"debugpy=={DEBUGPY_VERSION}"]
        )
        try:
            pypackages.run_pip(cmd, install, f"debugpy {DEBUGPY_VERSION}")
            (tmp / stamp.name).write_text(DEBUGPY_VERSION + "\n")
            shutil.rmtree(target, ignore_errors=True)
            os.rename(tmp, target)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return target


# --------------------------------------------------------------------------- catalog


def _describe_one(
    config: ServerConfig, runtime_id: str, places: SearchPlaces
) -> RuntimeDescription:
    runtimes_dir = config.runtimes_dir.absolute()
    try:
        selection = select_python(runtime_id, places)
    except RuntimeInstallError as e:
        return RuntimeDescription(runtime_id, "python", UNAVAILABLE, "nothing", notes=(str(e),))
    install = selection.install
    exact = selection.note is None
    notes: list[str] = []
    if not exact:
        if config.python_fallback == "refuse":
            return RuntimeDescription(
                runtime_id,
                "python",
                UNAVAILABLE,
                f"no Python {runtime_id.removeprefix('python')} on this host",
                exact=False,
                notes=(refusal(runtime_id),),
            )
        notes.append(
            f"fallback: the host has no Python {runtime_id.removeprefix('python')}; "
            f"runs on Python {install.version} (--python-fallback host)"
        )
    components = {
        "awslambdaric": awslambdaric_version(install.minor),
        "boto3": sdk_version(install.minor),
        "botocore": sdk_version(install.minor),
    }
    installed = is_installed(runtimes_dir, install)
    if not installed:
        notes.append(f"{FIRST_USE_NOTE} {runtime_id}")
    elif not layer_isolates(lang_layer_for(runtimes_dir, install)):
        notes.append(
            "the host's site-packages are visible: the language layer could not be marked "
            "opaque (needs root and a filesystem with trusted.* extended attributes)"
        )
    return RuntimeDescription(
        runtime_id,
        "python",
        INSTALLED if installed else NOT_INSTALLED,
        f"Python {install.version}",
        path=str(install.executable),
        exact=exact,
        components=components,
        notes=tuple(notes),
    )


def describe(config: ServerConfig, places: SearchPlaces | None = None) -> list[RuntimeDescription]:
    """Every Python runtime id: what it runs on here, installed or not (the catalog)."""
    places = places or SearchPlaces.default()
    return [_describe_one(config, rid, places) for rid in PYTHON_RUNTIMES]


def install(
    config: ServerConfig,
    runtime_id: str,
    say: Callable[[str], None],
    places: SearchPlaces | None = None,
) -> RuntimeDescription:
    """Install or update one Python runtime (the catalog's ``install``)."""
    places = places or SearchPlaces.default()
    problem = fallback_problem(runtime_id, config.python_fallback, places)
    if problem is not None:
        raise RuntimeInstallError(problem)
    selection = select_python(runtime_id, places)
    if selection.note:
        say(selection.note)
    target = selection.install
    runtimes_dir = config.runtimes_dir.absolute()
    if is_installed(runtimes_dir, target):
        say(f"{runtime_id}: up to date")
    else:
        say(
            f"{runtime_id}: installing awslambdaric {awslambdaric_version(target.minor)} and "
            f"boto3 {sdk_version(target.minor)} for Python {target.version} from PyPI"
        )
        install_python_runtime(runtimes_dir, target)
        say(f"{runtime_id}: installed in {runtime_dir_for(runtimes_dir, target)}")
    return _describe_one(config, runtime_id, places)


# --------------------------------------------------------------------------- CLI


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m lambdalet.runtimes.python",
        description="Install or list lambdalet's managed Python runtimes.",
    )
    action = parser.add_mutually_exclusive_group(required=True)
    action.add_argument("--install", action="store_true", help="install the runtime (idempotent)")
    action.add_argument("--list", action="store_true", help="list the host's Python installs")
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR)
    parser.add_argument(
        "--runtime",
        action="append",
        default=[],
        help="runtime id such as python3.12 (default: the host's Python)",
    )
    args = parser.parse_args(argv)
    places = SearchPlaces.default()
    if args.list:
        for found in list_pythons(places):
            print(f"python{found.minor_str}\t{found.version}\t{found.executable}")
        return 0
    runtimes_dir = ServerConfig(data_dir=args.data_dir).runtimes_dir
    try:
        selections = [
            select_python(rid, places)
            for rid in (args.runtime or [f"python{host_python(places).minor_str}"])
        ]
        for sel in selections:
            if sel.note:
                print(sel.note)
            already = is_installed(runtimes_dir, sel.install)
            runtime_dir = install_python_runtime(runtimes_dir, sel.install)
            verb = "ready" if already else "installed"
            print(
                f"lambdalet: python{sel.install.minor_str} runtime {verb} at {runtime_dir} "
                f"(awslambdaric {awslambdaric_version(sel.install.minor)}, "
                f"boto3 {sdk_version(sel.install.minor)}, "
                f"Python {sel.install.version} at {sel.install.prefix})"
            )
    except (RuntimeInstallError, ValueError) as exc:
        print(exc, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
