"""Dependency builds: manifests, command lines, cache keys and error messages (no tools run)."""

from __future__ import annotations

from pathlib import Path

from lambdalet.ops import build
from lambdalet.ops.build import Manifest


def test_manifests_follow_the_runtime(tmp_path: Path) -> None:
    assert build.find_manifest("python3.12", tmp_path) is None
    (tmp_path / "requirements.txt").write_text("six==1.16.0\n")
    (tmp_path / "package.json").write_text('{"dependencies": {}}')
    py = build.find_manifest("python3.12", tmp_path)
    assert py is not None and py.kind == "pip" and py.python_version == "3.12"
    assert py.files == {"requirements.txt": b"six==1.16.0\n"}
    node = build.find_manifest("nodejs22.x", tmp_path, "nodejs")
    assert node is not None and node.kind == "npm" and node.subdir == "nodejs"
    assert set(node.files) == {"package.json"}
    (tmp_path / "package-lock.json").write_text("{}")
    node = build.find_manifest("nodejs22.x", tmp_path)
    assert node is not None and set(node.files) == {"package.json", "package-lock.json"}
    assert build.find_manifest("provided.al2023", tmp_path) is None


def test_layer_build_methods() -> None:
    assert build.layer_build_runtime(None) is None
    assert build.layer_build_runtime("python3.12") == ("python3.12", "python")
    assert build.layer_build_runtime("nodejs20.x") == ("nodejs20.x", "nodejs")
    assert build.layer_build_runtime("makefile") is None


def test_cache_key_changes_with_every_input(tmp_path: Path) -> None:
    base = Manifest("pip", "python3.12", tmp_path, {"requirements.txt": b"six==1.16.0\n"})
    same = Manifest("pip", "python3.12", tmp_path / "elsewhere", dict(base.files))
    assert build.cache_key(base) == build.cache_key(same)  # content, not location
    others = [
        Manifest("pip", "python3.13", tmp_path, dict(base.files)),
        Manifest("pip", "python3.12", tmp_path, {"requirements.txt": b"six==1.17.0\n"}),
        Manifest("npm", "python3.12", tmp_path, dict(base.files)),
    ]
    keys = {build.cache_key(m) for m in others}
    assert build.cache_key(base) not in keys and len(keys) == 3
    lock = Manifest("npm", "nodejs22.x", tmp_path, {"package.json": b"{}"})
    locked = Manifest(
        "npm", "nodejs22.x", tmp_path, {"package.json": b"{}", "package-lock.json": b"{}"}
    )
    assert build.cache_key(lock) != build.cache_key(locked)


def test_pip_command_is_lambdas_platform_binary_only(tmp_path: Path) -> None:
    cmd = build.pip_command("/py", tmp_path / "requirements.txt", tmp_path / "out", "3.12")
    assert cmd[:4] == ["/py", "-m", "pip", "install"]
    assert cmd[cmd.index("--platform") + 1] == "manylinux2014_x86_64"
    assert cmd[cmd.index("--implementation") + 1] == "cp"
    assert cmd[cmd.index("--python-version") + 1] == "3.12"
    assert "--only-binary=:all:" in cmd
    assert cmd[cmd.index("--target") + 1] == str(tmp_path / "out")
    assert cmd[cmd.index("-r") + 1] == str(tmp_path / "requirements.txt")


def test_npm_command_honours_the_lockfile() -> None:
    assert build.npm_command(["package.json", "package-lock.json"])[:2] == ["npm", "ci"]
    assert build.npm_command(["package.json", "npm-shrinkwrap.json"])[:2] == ["npm", "ci"]
    plain = build.npm_command(["package.json", ".npmrc"])
    assert plain[:2] == ["npm", "install"] and "--no-save" in plain
    for cmd in (plain, build.npm_command(["package.json", "package-lock.json"])):
        assert "--omit=dev" in cmd


def test_npm_of_the_runtimes_node_builds_against_that_node(tmp_path: Path) -> None:
    prefix = tmp_path / "node22"
    cli = prefix / "lib/node_modules/npm/bin/npm-cli.js"
    npm = build.npm_for(prefix / "bin/node", cli, prefix, "22.11.0")
    assert build.npm_command(["package.json"], npm)[:3] == [
        str(prefix / "bin/node"),
        str(cli),
        "install",
    ]
    assert npm.detail == "Node.js 22.11.0"
    env = npm.env({"PATH": "/usr/bin", "NODE_OPTIONS": "--inspect", "NODE_PATH": "/x"})
    assert env["PATH"] == f"{prefix / 'bin'}:/usr/bin"  # install scripts' `node`
    assert env["npm_config_nodedir"] == str(prefix)  # node-gyp: this Node's headers
    assert "NODE_OPTIONS" not in env and "NODE_PATH" not in env
    # no Node of the runtime's version (or one without npm): npm on PATH, PATH as it was
    for plain in (
        build.npm_for(None, None, None, None),
        build.npm_for(prefix / "bin/node", None, prefix, "22.11.0"),
    ):
        assert plain.argv == ("npm",) and plain.detail == "npm on PATH"
        assert plain.env({"PATH": "/usr/bin"}) == {"PATH": "/usr/bin"}
    assert build.npm_command(["package.json"])[0] == "npm"


def test_failures_name_the_package(tmp_path: Path) -> None:
    pip_out = (
        "ERROR: Could not find a version that satisfies the requirement nopkg==1.0 "
        "(from versions: none)\nERROR: No matching distribution found for nopkg==1.0\n"
    )
    assert build.failed_package("pip", pip_out) == "nopkg==1.0"
    npm_out = (
        "npm error code E404\nnpm error 404 Not Found - GET "
        "https://registry.npmjs.org/no-such-pkg-4711 - Not found\n"
    )
    assert build.failed_package("npm", npm_out) == "no-such-pkg-4711"
    scoped = "npm error 404 Not Found - GET https://registry.npmjs.org/@acme%2fwidget - x\n"
    assert build.failed_package("npm", scoped) == "@acme/widget"
    assert build.failed_package("pip", "something else") is None
    manifest = Manifest("pip", "python3.12", tmp_path, {"requirements.txt": b""})
    message = build.failure_message(manifest, 1, pip_out)
    assert message.startswith("pip could not install 'nopkg==1.0' from requirements.txt")
    assert "No matching distribution found for nopkg==1.0" in message
    unnamed = build.failure_message(manifest, 2, "boom")
    assert unnamed.startswith("pip failed on requirements.txt (exit status 2)")
