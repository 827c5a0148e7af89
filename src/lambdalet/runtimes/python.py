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
import contextlib
import fcntl
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import time
import weakref
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path

from lambdalet.config import DEFAULT_DATA_DIR, ServerConfig
from lambdalet.runtimes import pypackages
from lambdalet.runtimes.description import (
    FIRST_USE_NOTE,
    INSTALLED,
    NOT_INSTALLED,
    UNAVAILABLE,
    RuntimeDescription,
)
from lambdalet.runtimes.pypackages import CACHE_COMPLETE as CACHE_COMPLETE
from lambdalet.runtimes.pypackages import RuntimeInstallError as RuntimeInstallError
from lambdalet.runtimes.pypackages import package_cache_dir as package_cache_dir
from lambdalet.runtimes.pypackages import package_cache_key as package_cache_key
from lambdalet.runtimes.pypackages import pip_python_for as pip_python_for
from lambdalet.sandbox.base import SandboxView

logger = logging.getLogger(__name__)

#: The Runtime Interface Client version installed for Python 3.10 and newer.
AWSLAMBDARIC_VERSION = "4.2.2"
#: Older minor versions cannot run the current client; these are the newest that install.
_OLDER_AWSLAMBDARIC = {(3, 8): "2.2.1", (3, 9): "4.0.4"}
#: Oldest minor version lambdalet will run a function on.
MIN_PYTHON = (3, 8)

#: boto3 / botocore installed as the runtime's own SDK (``/var/lang/lib/python3.X/
#: site-packages``, as Lambda's 3.11+ runtimes; 3.8-3.10 had it in ``/var/runtime``).  AWS
#: publishes no fixed versions for current runtimes (they vary by runtime version and
#: region); lambdalet pins one recent release, and for older minors the newest that
#: supports them.  A boto3 in the function's package or a layer shadows it, as on Lambda.
SDK_VERSION = "1.43.11"
_OLDER_SDK = {(3, 8): "1.37.38", (3, 9): "1.42.97"}

STAMP_NAME = ".lambdalet-runtime.json"
#: Bumped when the runtime dir layout (not the client version) changes.
LAYOUT_VERSION = 1
LANG_DIR_NAME = "lang"

_PROBE = "import sys; print('%d.%d.%d' % sys.version_info[:3])"
_RUNTIME_RE = re.compile(r"^python3\.(\d+)$")
_PYENV_VERSION_RE = re.compile(r"^3\.(\d+)\.(\d+)$")
_UV_VERSION_RE = re.compile(r"^cpython-3\.(\d+)\.(\d+)-linux-")

#: the Python runtime ids Lambda has (lambdalet runs 3.8 and newer)
PYTHON_RUNTIMES = tuple(f"python3.{minor}" for minor in range(8, 15))
#: what ``--python-fallback`` takes: run on the host's Python, or refuse the function
FALLBACK_POLICIES = ("host", "refuse")


def awslambdaric_version(minor: tuple[int, int]) -> str:
    """The pinned ``awslambdaric`` release for a Python minor version."""
    return _OLDER_AWSLAMBDARIC.get(minor, AWSLAMBDARIC_VERSION)


def sdk_version(minor: tuple[int, int]) -> str:
    """The pinned boto3 (and botocore, same number) release for a Python minor version."""
    return _OLDER_SDK.get(minor, SDK_VERSION)


def is_python_runtime(runtime_id: str) -> bool:
    return _RUNTIME_RE.match(runtime_id) is not None


def parse_python_runtime(runtime_id: str) -> tuple[int, int]:
    """``"python3.12"`` -> ``(3, 12)``; ValueError for anything else."""
    m = _RUNTIME_RE.match(runtime_id)
    if m is None:
        raise ValueError(f"not a Python runtime id: {runtime_id!r}")
    return (3, int(m.group(1)))


# --------------------------------------------------------------------------- discovery


@dataclass(frozen=True)
class PythonInstall:
    """One Python install of the host."""

    prefix: Path  # real path of the install prefix; mounted at /var/lang
    interpreter: str  # the interpreter relative to prefix, e.g. "bin/python3.12"
    version: str  # "3.12.1"

    @property
    def executable(self) -> Path:
        return self.prefix / self.interpreter

    @property
    def minor(self) -> tuple[int, int]:
        major, minor = self.version.split(".")[:2]
        return (int(major), int(minor))

    @property
    def minor_str(self) -> str:
        """``"3.12"``"""
        return f"{self.minor[0]}.{self.minor[1]}"

    def has_own_python_names(self) -> bool:
        """True when ``<prefix>/bin/python`` and ``bin/python3`` both lead to this interpreter."""
        target = self.executable.resolve()
        for name in ("python", "python3"):
            path = self.prefix / "bin" / name
            try:
                if path.resolve(strict=True) != target:
                    return False
            except OSError:
                return False
        return True


@dataclass(frozen=True)
class SearchPlaces:
    """Where to look for Python installs, in order (tests pass fake ones)."""

    #: the running interpreter's executable (``sys.executable``); searched first
    current: Path | None
    #: pyenv's ``versions`` directory
    pyenv_versions: Path | None
    #: directories holding ``python3.X`` (Debian's ``/usr/bin``, ``/usr/local/bin``)
    bin_dirs: tuple[Path, ...] = (Path("/usr/bin"), Path("/usr/local/bin"))
    #: uv's managed Pythons (``uv python install 3.12``): ``cpython-3.12.x-linux-*/``
    uv_pythons: Path | None = None

    @classmethod
    def default(cls) -> SearchPlaces:
        root = os.environ.get("PYENV_ROOT")
        versions = Path(root) / "versions" if root else Path.home() / ".pyenv" / "versions"
        uv = os.environ.get("UV_PYTHON_INSTALL_DIR")
        data = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
        uv_dir = Path(uv) if uv else Path(data) / "uv" / "python"
        return cls(current=Path(sys.executable), pyenv_versions=versions, uv_pythons=uv_dir)


def _probe_version(executable: Path) -> str | None:
    """Run the interpreter once and return its version, or None if it does not work."""
    if executable.resolve() == Path(sys.executable).resolve():
        return ".".join(str(n) for n in sys.version_info[:3])
    try:
        done = subprocess.run(
            [str(executable), "-I", "-c", _PROBE],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    out = done.stdout.strip()
    if done.returncode != 0 or re.fullmatch(r"\d+\.\d+\.\d+", out) is None:
        return None
    return out


def install_of(executable: Path) -> PythonInstall | None:
    """Describe the install that ``executable`` belongs to, or None if it is unusable.

    The prefix is the parent of the real executable's directory; its standard library
    must be at ``<prefix>/lib/python3.X`` (pyenv, python.org builds, Debian's ``/usr``)
    or ``lib64``, which is where the interpreter looks for it when the prefix is mounted
    at ``/var/lang``.
    """
    try:
        real = executable.resolve(strict=True)
    except OSError:
        return None
    if not real.is_file() or not os.access(real, os.X_OK):
        return None
    version = _probe_version(real)
    if version is None:
        return None
    minor_str = ".".join(version.split(".")[:2])
    prefix = real.parent.parent
    landmarks = (prefix / lib / f"python{minor_str}" / "os.py" for lib in ("lib", "lib64"))
    if not any(p.is_file() for p in landmarks):
        return None
    # Prefer the conventional name when it leads to the same file: bin/python3.X.
    conventional = prefix / "bin" / f"python{minor_str}"
    try:
        if conventional.resolve(strict=True) == real:
            return PythonInstall(prefix, f"bin/python{minor_str}", version)
    except OSError:
        pass
    return PythonInstall(prefix, str(real.relative_to(prefix)), version)


def _candidates(minor: tuple[int, int], places: SearchPlaces) -> Iterator[Path]:
    name = f"python{minor[0]}.{minor[1]}"
    if places.current is not None:
        yield places.current
    if places.pyenv_versions is not None and places.pyenv_versions.is_dir():
        found: list[tuple[int, Path]] = []
        for entry in places.pyenv_versions.iterdir():
            m = _PYENV_VERSION_RE.match(entry.name)
            if m is not None and int(m.group(1)) == minor[1]:
                found.append((int(m.group(2)), entry / "bin" / name))
        for _patch, path in sorted(found, reverse=True):
            yield path
    for directory in places.bin_dirs:
        yield directory / name
    if places.uv_pythons is not None and places.uv_pythons.is_dir():
        uv: list[tuple[int, Path]] = []
        for entry in places.uv_pythons.iterdir():
            m = _UV_VERSION_RE.match(entry.name)
            if m is not None and int(m.group(1)) == minor[1]:
                uv.append((int(m.group(2)), entry / "bin" / name))
        for _patch, path in sorted(uv, reverse=True):
            yield path


@lru_cache(maxsize=64)
def find_python(minor: tuple[int, int], places: SearchPlaces) -> PythonInstall | None:
    """The first usable install of this minor version, or None."""
    seen: set[Path] = set()
    for path in _candidates(minor, places):
        try:
            real = path.resolve(strict=True)
        except OSError:
            continue
        if real in seen:
            continue
        seen.add(real)
        install = install_of(path)
        if install is not None and install.minor == minor:
            return install
    return None


@lru_cache(maxsize=8)
def host_python(places: SearchPlaces) -> PythonInstall:
    """The host's default Python: the one running lambdalet."""
    if places.current is not None:
        install = install_of(places.current)
        if install is not None:
            return install
    raise RuntimeInstallError(
        f"lambdalet: cannot use {places.current} as a function runtime "
        "(no interpreter with its standard library under <prefix>/lib/python3.X)"
    )


def list_pythons(places: SearchPlaces) -> list[PythonInstall]:
    """Every usable install, one per minor version, in discovery order (for doctor)."""
    out: list[PythonInstall] = []
    for minor in range(MIN_PYTHON[1], 20):
        install = find_python((3, minor), places)
        if install is not None:
            out.append(install)
    return out


@dataclass(frozen=True)
class PythonSelection:
    runtime_id: str  # what the function asked for
    install: PythonInstall  # what it runs on
    #: the line to write to the function log when the two differ, else None
    note: str | None


def select_python(runtime_id: str, places: SearchPlaces | None = None) -> PythonSelection:
    """Pick the install for a ``python3.X`` runtime id, falling back to the host's Python."""
    minor = parse_python_runtime(runtime_id)
    places = places if places is not None else SearchPlaces.default()
    install = find_python(minor, places) if minor >= MIN_PYTHON else None
    if install is not None:
        return PythonSelection(runtime_id, install, None)
    fallback = host_python(places)
    return PythonSelection(runtime_id, fallback, fallback_note(runtime_id, fallback.version))


def fallback_note(runtime_id: str, version: str) -> str:
    return f"lambdalet: {runtime_id} is not installed on this host; running on Python {version}"


def refusal(runtime_id: str) -> str:
    """Why a ``python3.X`` function is refused under ``--python-fallback refuse``."""
    minor = runtime_id.removeprefix("python")
    return (
        f"The runtime parameter of {runtime_id} is not available on this lambdalet server: "
        f"the host has no Python {minor} and the server runs with --python-fallback refuse. "
        f"Install Python {minor} (pyenv install {minor}, uv python install {minor}, or your "
        "distribution's package), or start the server with --python-fallback host."
    )


def fallback_notice(runtime_id: str, policy: str, places: SearchPlaces | None = None) -> str | None:
    """The fallback note of a ``python3.X`` function the host has no Python for (under
    ``--python-fallback host``), else None."""
    if policy != "host" or not is_python_runtime(runtime_id):
        return None
    try:
        return select_python(runtime_id, places or SearchPlaces.default()).note
    except (ValueError, RuntimeInstallError):
        return None


def fallback_problem(
    runtime_id: str, policy: str, places: SearchPlaces | None = None
) -> str | None:
    """The refusal message when ``runtime_id`` needs a fallback that ``policy`` forbids."""
    if policy != "refuse" or not is_python_runtime(runtime_id):
        return None
    try:
        selection = select_python(runtime_id, places or SearchPlaces.default())
    except (ValueError, RuntimeInstallError):
        return refusal(runtime_id)
    return refusal(runtime_id) if selection.note is not None else None


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
    if not _layer_current(lang_layer_for(runtimes_dir, install), install):
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


def sdk_packages(minor: tuple[int, int]) -> list[str]:
    """The runtime's own SDK, as pip requirements."""
    version = sdk_version(minor)
    return [f"boto3=={version}", f"botocore=={version}"]


def _symlink(path: Path, target: str) -> None:
    """Create or replace a symlink atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if os.path.islink(path) and os.readlink(path) == target:
        return
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    os.symlink(target, tmp)
    os.replace(tmp, path)


def _replace_dir(target: Path, new: Path) -> None:
    """Put the finished folder ``new`` at ``target``, moving an older one aside first."""
    if target.exists():
        old = target.with_name(f".{target.name}.old-{os.getpid()}")
        os.rename(target, old)
        os.rename(new, target)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.rename(new, target)


def _write_file(path: Path, text: str, mode: int) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(text, encoding="utf-8")
    tmp.chmod(mode)
    os.replace(tmp, path)


def _write_launchers(runtimes_dir: Path, runtime_dir: Path, install: PythonInstall) -> None:
    """bootstrap, bin/ links, the host-side lang link, and finally the stamp."""
    _symlink(_lang_link(runtimes_dir, install), str(install.executable))
    _write_file(runtime_dir / "bootstrap", bootstrap_text(install), 0o755)
    for name, text in _prestart_files(install):
        _write_file(runtime_dir / name, text, 0o755 if name == PRESTART_NAME else 0o644)
    relative = f"../../{LANG_DIR_NAME}/{install.interpreter}"
    for name in ("python", "python3", f"python{install.minor_str}"):
        _symlink(runtime_dir / "bin" / name, relative)
    _write_file(runtime_dir / STAMP_NAME, json.dumps(_stamp_for(install), indent=1) + "\n", 0o644)


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    """Serialise installs across processes (the setup script and a running server)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


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
    with _file_lock(runtimes_dir / f".python{install.minor_str}.lock"):
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
            _replace_dir(runtime_dir, tmp)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return runtime_dir


# --------------------------------------------------------------------------- language layer
#
# Lambda's /var/lang holds the interpreter, its standard library and the runtime's own
# packages (boto3 ...), nothing else.  A host install's prefix also holds whatever the
# host installed into its site-packages.  The *language layer* is laid over the prefix at
# /var/lang (a read-only overlay, the layer on top): each site-packages dir of the install
# is an opaque directory there (overlayfs shows none of the prefix's entries under it),
# and the one Lambda uses holds the SDK.

LANG_LAYER_SUFFIX = ".lang"
LAYER_STAMP_NAME = ".lambdalet-layer.json"
#: bumped when the layer's layout changes
LAYER_LAYOUT_VERSION = 1
#: overlayfs's mark of a directory hiding what lower layers have at the same path
OPAQUE_XATTR = "trusted.overlay.opaque"
#: the same mark where the overlay is mounted with ``userxattr`` (rootless sandboxes: an
#: ordinary user cannot set trusted.* attributes)
USER_OPAQUE_XATTR = "user.overlay.opaque"
_SITE_PROBE = "import json, site, sys; print(json.dumps([sys.prefix, site.getsitepackages()]))"


def lang_layer_for(runtimes_dir: Path, install: PythonInstall) -> Path:
    return runtimes_dir / f"python{install.minor_str}{LANG_LAYER_SUFFIX}"


def default_site_dir(install: PythonInstall) -> str:
    """Where Lambda's 3.11+ runtimes keep boto3, relative to /var/lang."""
    return f"lib/python{install.minor_str}/site-packages"


def site_dirs(install: PythonInstall) -> tuple[str, ...]:
    """The install's site-packages dirs (``site.getsitepackages()``), relative to its prefix.

    Debian's ``/usr`` has ``local/lib/python3.X/dist-packages``, ``lib/python3/dist-packages``
    ...; pyenv and python.org builds ``lib/python3.X/site-packages``.
    """
    found: list[str] = []
    try:
        done = subprocess.run(
            [str(install.executable), "-I", "-c", _SITE_PROBE],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        prefix, dirs = json.loads(done.stdout) if done.returncode == 0 else ("", [])
    except (OSError, subprocess.SubprocessError, ValueError):
        prefix, dirs = "", []
    for d in dirs if isinstance(dirs, list) else []:
        for base in (str(install.prefix), str(prefix)):
            rel = os.path.relpath(str(d), base) if base else ".."
            if not rel.startswith("..") and rel != "." and rel not in found:
                found.append(rel)
                break
    return tuple(found) or (default_site_dir(install),)


def sdk_site_dir(sites: Sequence[str], install: PythonInstall) -> str:
    """The site dir that holds the SDK: Lambda's when the install uses it, else its first."""
    default = default_site_dir(install)
    return default if default in sites or not sites else sites[0]


def _layer_stamp(install: PythonInstall, sites: Sequence[str], opaque: bool) -> dict[str, object]:
    return {
        "layout": LAYER_LAYOUT_VERSION,
        "boto3": sdk_version(install.minor),
        "python": install.minor_str,
        "prefix": str(install.prefix),
        "site": list(sites),
        "opaque": opaque,
    }


def read_layer_stamp(layer: Path) -> dict[str, object] | None:
    try:
        data = json.loads((layer / LAYER_STAMP_NAME).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _layer_current(layer: Path, install: PythonInstall) -> bool:
    stamp = read_layer_stamp(layer)
    return (
        stamp is not None
        and stamp.get("layout") == LAYER_LAYOUT_VERSION
        and stamp.get("boto3") == sdk_version(install.minor)
        and stamp.get("prefix") == str(install.prefix)
    )


def _make_opaque(path: Path) -> bool:
    """Mark ``path`` opaque for overlayfs (root's mounts and ``userxattr`` ones); False
    where the filesystem or privileges refuse both."""
    marked = False
    for name in (OPAQUE_XATTR, USER_OPAQUE_XATTR):
        try:
            os.setxattr(path, name, b"y")
        except OSError:
            continue
        marked = True
    return marked


def install_lang_layer(
    runtimes_dir: Path,
    install: PythonInstall,
    *,
    pip_python: str | None = None,
    use_cache: bool | None = None,
) -> Path:
    """Install (idempotently) the language layer of ``install``; returns its directory.

    The SDK comes from the host-wide cache (``pypackages.package_cache_dir``) when it has
    it, else from pip, and then goes into the cache; ``use_cache`` defaults to "only with the real
    pip" (a given ``pip_python`` is a test's fake).
    """
    use_cache = pip_python is None if use_cache is None else use_cache
    runtimes_dir = runtimes_dir.absolute()
    layer = lang_layer_for(runtimes_dir, install)
    if _layer_current(layer, install):
        return layer
    with _file_lock(runtimes_dir / f".python{install.minor_str}.lock"):
        if _layer_current(layer, install):
            return layer
        sites = site_dirs(install)
        sdk_rel = sdk_site_dir(sites, install)
        tmp = runtimes_dir / f".python{install.minor_str}.lang.tmp-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        try:
            # the host-wide copy serves every data dir (tests make one per server)
            packages = sdk_packages(install.minor)
            pypackages.install_packages(tmp / sdk_rel, install, packages, pip_python, use_cache)
            opaque = True
            for rel in sites:
                (tmp / rel).mkdir(parents=True, exist_ok=True)
                opaque = _make_opaque(tmp / rel) and opaque
            stamp = _layer_stamp(install, sites, opaque)
            _write_file(tmp / LAYER_STAMP_NAME, json.dumps(stamp, indent=1) + "\n", 0o644)
            _replace_dir(layer, tmp)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return layer


def layer_isolates(layer: Path) -> bool:
    """True when the layer hides the host's site-packages (its dirs are opaque)."""
    stamp = read_layer_stamp(layer)
    return bool(stamp and stamp.get("opaque"))


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
    with _file_lock(runtime.runtime_dir.parent / f".python{install.minor_str}-debugpy.lock"):
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
