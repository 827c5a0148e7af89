"""The Node Runtime Interface Client (aws-lambda-ric), built once per machine and
version with npm against a Node install's own headers."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from lambdalet.runtimes.installcmd import RuntimeInstallError
from lambdalet.runtimes.nodehosts import NodeInstall, _run


def ric_dir(cache: Path, version: str) -> Path:
    return cache / "node-ric" / version


def ric_built(ric: Path, version: str) -> bool:
    pkg = ric / "node_modules" / "aws-lambda-ric"
    try:
        meta = json.loads((pkg / "package.json").read_text())
    except (OSError, ValueError):
        return False
    addon = pkg / ("rapid-client.node" if version.startswith("4.") else "dist/rapid-client.node")
    return meta.get("version") == version and addon.is_file()


def _npm_env(install: NodeInstall, cache: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = f"{install.prefix / 'bin'}:{env.get('PATH', '/usr/bin:/bin')}"
    # node-gyp builds against this Node's own headers: nothing is downloaded from nodejs.org
    env["npm_config_nodedir"] = str(install.prefix)
    env["npm_config_cache"] = str(cache / "npm")
    # 3.x's build runs plain `make`
    env.setdefault("MAKEFLAGS", f"-j{os.cpu_count() or 1}")
    env["npm_config_update_notifier"] = "false"
    env["npm_config_fund"] = "false"
    env["npm_config_audit"] = "false"
    env.pop("NODE_OPTIONS", None)
    env.pop("NODE_PATH", None)
    return env


def build_ric(cache: Path, install: NodeInstall, version: str) -> Path:
    """Install (and build) ``aws-lambda-ric@version`` with ``install``'s npm; returns its dir."""
    ric = ric_dir(cache, version)
    if ric_built(ric, version):
        return ric
    tmp = ric.with_name(f".{version}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        (tmp / "package.json").write_text('{"name": "lambdalet-node-runtime", "private": true}\n')
        npm = install.npm()
        cmd = (
            [str(install.executable), str(npm)]
            if npm is not None and npm.suffix == ".js"
            else [str(npm or "npm")]
        )
        _run(
            [
                *cmd,
                "install",
                "--no-save",
                "--no-package-lock",
                "--omit=dev",
                f"aws-lambda-ric@{version}",
            ],
            f"build aws-lambda-ric {version} from npm with Node.js {install.version} "
            "(needs npm's registry, cmake, make, g++, autoconf and libtool)",
            env=_npm_env(install, cache),
            cwd=tmp,
        )
        if not ric_built(tmp, version):
            raise RuntimeInstallError(
                f"lambdalet: aws-lambda-ric {version} installed without its native client"
            )
        shutil.rmtree(ric, ignore_errors=True)
        os.rename(tmp, ric)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return ric
