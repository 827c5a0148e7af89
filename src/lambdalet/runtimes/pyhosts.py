"""Python installs of the host: finding one per minor version (pyenv, uv, the system's,
the running interpreter), and what a function asking for a version missing here gets."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from lambdalet.config import HostPaths, host_paths
from lambdalet.runtimes import fsutil
from lambdalet.runtimes.installcmd import RuntimeInstallError

MIN_PYTHON = (3, 8)

_PROBE = "import sys; print('%d.%d.%d' % sys.version_info[:3])"
_RUNTIME_RE = re.compile(r"^python3\.(\d+)$")
_PYENV_VERSION_RE = re.compile(r"^3\.(\d+)\.(\d+)$")
_UV_VERSION_RE = re.compile(r"^cpython-3\.(\d+)\.(\d+)-linux-")

#: the Python runtime ids Lambda has (lambdalet runs 3.8 and newer)
PYTHON_RUNTIMES = tuple(f"python3.{minor}" for minor in range(8, 15))
#: what ``--python-fallback`` takes: run on the host's Python, or refuse the function
FALLBACK_POLICIES = ("host", "refuse")


def is_python_runtime(runtime_id: str) -> bool:
    return _RUNTIME_RE.match(runtime_id) is not None


def parse_python_runtime(runtime_id: str) -> tuple[int, int]:
    """``"python3.12"`` -> ``(3, 12)``; ValueError for anything else."""
    m = _RUNTIME_RE.match(runtime_id)
    if m is None:
        raise ValueError(f"not a Python runtime id: {runtime_id!r}")
    return (3, int(m.group(1)))


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
    def default(cls, paths: HostPaths | None = None) -> SearchPlaces:
        paths = paths if paths is not None else host_paths()
        return cls(
            current=Path(sys.executable),
            pyenv_versions=paths.pyenv_versions,
            uv_pythons=paths.uv_pythons,
        )


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
    for path, _ in fsutil.distinct_real(_candidates(minor, places)):
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
