"""``package.json`` builds for Node.js functions and layers, with the real npm (no server:
the package's contents are checked; running Node functions is the Node runtime's part)."""

from __future__ import annotations

import io
import json
import shutil
import zipfile
from pathlib import Path

import pytest

from lambdalet.ops import build
from lambdalet.ops.packaging import function_deps, function_zip, layer_zip
from lambdalet.ops.template import FunctionPlan, LayerPlan
from tests.needs import require

pytestmark = pytest.mark.integration

PACKAGE = {
    "name": "app",
    "version": "1.0.0",
    "dependencies": {"ms": "2.1.3"},
    "devDependencies": {"left-pad": "1.3.0"},
}


@pytest.fixture(autouse=True)
def _npm() -> None:
    require(
        "npm (Node.js dependency builds)",
        "npm is not installed" if shutil.which("npm") is None else None,
    )


def _names(data: bytes) -> set[str]:
    return set(zipfile.ZipFile(io.BytesIO(data)).namelist())


def test_function_package_gets_production_node_modules(tmp_path: Path) -> None:
    code = tmp_path / "src"
    (code / "node_modules" / "stale").mkdir(parents=True)  # the developer's own: not shipped
    (code / "node_modules" / "stale" / "index.js").write_text("")
    (code / "package.json").write_text(json.dumps(PACKAGE))
    (code / "index.mjs").write_text("export const handler = async () => 'ok';\n")
    plan = FunctionPlan("Fn", "fn", "nodejs22.x", "index.handler", code_dir=code)
    said: list[str] = []
    deps = function_deps(plan, tmp_path / "cache", said.append)
    assert deps is not None
    names = _names(function_zip(plan, (), deps))
    assert {"index.mjs", "package.json", "node_modules/ms/package.json"} <= names
    assert not any(n.startswith("node_modules/left-pad/") for n in names)  # dev only
    assert not any(n.startswith("node_modules/stale/") for n in names)
    assert any("installing package.json with npm install" in line for line in said), said

    said.clear()
    assert function_deps(plan, tmp_path / "cache", said.append) == deps
    assert said == [f"Fn: dependencies unchanged, using the build cache ({deps.name[:12]})"]


def test_layer_with_build_method_nodejs_gets_nodejs_node_modules(tmp_path: Path) -> None:
    content = tmp_path / "layer"
    content.mkdir()
    (content / "package.json").write_text(json.dumps(PACKAGE))
    plan = LayerPlan("Shared", "shared", content, build_method="nodejs20.x")
    names = _names(layer_zip(plan, tmp_path / "cache", lambda _: None))
    assert "nodejs/package.json" in names
    assert "nodejs/node_modules/ms/package.json" in names
    assert not any("left-pad" in n for n in names)


def test_a_missing_npm_package_is_named(tmp_path: Path) -> None:
    code = tmp_path / "src"
    code.mkdir()
    (code / "package.json").write_text(
        json.dumps(
            {"name": "x", "version": "1.0.0", "dependencies": {"lambdalet-no-such-4711": "1.0.0"}}
        )
    )
    plan = FunctionPlan("Fn", "fn", "nodejs22.x", "index.handler", code_dir=code)
    with pytest.raises(build.BuildError) as info:
        function_deps(plan, tmp_path / "cache", lambda _: None)
    assert str(info.value).startswith("npm could not install 'lambdalet-no-such-4711'")
    assert "404" in str(info.value)


def test_a_lockfile_is_installed_with_npm_ci(tmp_path: Path) -> None:
    import subprocess

    code = tmp_path / "src"
    code.mkdir()
    (code / "package.json").write_text(json.dumps(PACKAGE))
    subprocess.run(
        ["npm", "install", "--package-lock-only", "--no-audit", "--no-fund"],
        cwd=code,
        check=True,
        capture_output=True,
        timeout=300,
    )
    plan = FunctionPlan("Fn", "fn", "nodejs22.x", "index.handler", code_dir=code)
    said: list[str] = []
    deps = function_deps(plan, tmp_path / "cache", said.append)
    assert deps is not None
    assert any("installing package.json with npm ci" in line for line in said), said
    names = _names(function_zip(plan, (), deps))
    assert {"package-lock.json", "node_modules/ms/package.json"} <= names
