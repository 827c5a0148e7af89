"""The language layer of a Python runtime (``python3.X.lang``): laid over the host
install's prefix at ``/var/lang``, it hides the install's site-packages (each an opaque
directory) and holds the pinned SDK."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

from lambdalet.runtimes import fsutil, pypackages
from lambdalet.runtimes.pyhosts import PythonInstall
from lambdalet.runtimes.pyversions import sdk_packages, sdk_version

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


def layer_current(layer: Path, install: PythonInstall) -> bool:
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
    if layer_current(layer, install):
        return layer
    with fsutil.file_lock(runtimes_dir / f".python{install.minor_str}.lock"):
        if layer_current(layer, install):
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
            fsutil.write_file(tmp / LAYER_STAMP_NAME, json.dumps(stamp, indent=1) + "\n", 0o644)
            fsutil.replace_dir(layer, tmp)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return layer


def layer_isolates(layer: Path) -> bool:
    """True when the layer hides the host's site-packages (its dirs are opaque)."""
    stamp = read_layer_stamp(layer)
    return bool(stamp and stamp.get("opaque"))
