"""lambdalet.runtimes.node without installing anything: discovery, the generated files,
the bootstrap's command line, and the description for ``lambdalet runtimes``."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from lambdalet.config import ServerConfig
from lambdalet.runtimes import node, nodehosts


def _fake_node(prefix: Path, version: str, *, headers: bool = True) -> Path:
    exe = prefix / "bin" / "node"
    exe.parent.mkdir(parents=True)
    exe.write_text(f"#!/bin/sh\necho v{version}\n")
    exe.chmod(0o755)
    if headers:
        (prefix / "include" / "node").mkdir(parents=True)
        (prefix / "include" / "node" / "common.gypi").write_text("{}")
    return exe


def test_runtime_ids_and_clients() -> None:
    assert node.is_node_runtime("nodejs22.x") and not node.is_node_runtime("nodejs18.x")
    assert node.node_major("nodejs24.x") == 24
    with pytest.raises(ValueError):
        node.node_major("python3.12")
    # 20 and 22 run the 3.x client (Lambda's managed 20/22 code), 24 the 4.x one
    assert node.ric_version(20).startswith("3.") and node.ric_version(22).startswith("3.")
    assert node.ric_version(24).startswith("4.")


def test_host_node_needs_the_right_major_and_its_headers(tmp_path: Path) -> None:
    old = _fake_node(tmp_path / "a", "20.1.0")
    bare = _fake_node(tmp_path / "b", "22.3.1", headers=False)
    good = _fake_node(tmp_path / "c", "22.9.0")
    assert node.host_node(22, [old, bare, good]) == node.NodeInstall(
        tmp_path / "c", "22.9.0", "host"
    )
    assert node.host_node(24, [old, bare, good]) is None


def test_host_node_gets_a_small_lang_prefix(tmp_path: Path) -> None:
    exe = _fake_node(tmp_path / "usr", "20.5.0")
    install = node.NodeInstall(tmp_path / "usr", "20.5.0", "host")
    prefix = node.lang_prefix(tmp_path / "cache", install)
    assert os.readlink(prefix / "bin" / "node") == str(exe)
    pypi = node.NodeInstall(tmp_path / "w", "24.1.0", "pypi")
    assert node.lang_prefix(tmp_path / "cache", pypi) == tmp_path / "w"


def _bootstrap_argv(tmp_path: Path, runtime_id: str, env: dict[str, str]) -> list[str]:
    """Run the generated bootstrap with a fake node that prints its argv."""
    rt = tmp_path / "runtime"
    rt.mkdir()
    for name, text, mode in node._files(runtime_id):
        (rt / name).write_text(text)
        (rt / name).chmod(mode)
    lang = tmp_path / "lang" / "bin"
    lang.mkdir(parents=True)
    (lang / "node").write_text(
        '#!/bin/sh\nfor a in "$@"; do echo "$a"; done\n'
        'echo "CA=${NODE_EXTRA_CA_CERTS-}"\necho "NODE_PATH=$NODE_PATH"\n'
    )
    (rt / "ca-cert.pem").write_text("pem")
    (lang / "node").chmod(0o755)
    task = tmp_path / "task"
    task.mkdir()
    done = subprocess.run(
        [str(rt / "bootstrap")],
        env={"PATH": "/usr/bin:/bin", "LAMBDA_TASK_ROOT": str(task), **env},
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.splitlines()


def test_bootstrap_flags_as_lambda_sets_them(tmp_path: Path) -> None:
    out = _bootstrap_argv(tmp_path, "nodejs22.x", {"AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "512"})
    assert out[:3] == ["--expose-gc", "--max-http-header-size", "81920"]
    assert "--max-semi-space-size=25" in out and "--max-old-space-size=461" in out
    assert "--no-experimental-require-module" in out
    assert "--no-experimental-detect-module" in out
    assert out[-3].endswith("/runtime/index.mjs")
    assert out[-2] == f"CA={tmp_path}/runtime/ca-cert.pem"
    assert out[-1] == (
        f"NODE_PATH=/opt/nodejs/node22/node_modules:/opt/nodejs/node_modules:"
        f"{tmp_path}/runtime/node_modules:{tmp_path}/runtime:{tmp_path}/task"
    )


def test_bootstrap_leaves_what_node_options_and_the_function_set(tmp_path: Path) -> None:
    out = _bootstrap_argv(
        tmp_path,
        "nodejs22.x",
        {
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "512",
            "NODE_OPTIONS": "--max-old-space-size=300 --experimental-require-module",
            "NODE_PATH": "/mine",
        },
    )
    assert not any(a.startswith("--max-") and "space" in a for a in out)
    assert "--no-experimental-require-module" not in out
    assert "--no-experimental-detect-module" in out
    assert out[-1] == "NODE_PATH=/mine"


def test_describe_lists_every_node_runtime(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LAMBDALET_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(nodehosts, "host_node", lambda major, candidates=None: None)
    infos = node.describe_node_runtimes(ServerConfig(data_dir=tmp_path / "data"))
    assert [i.runtime_id for i in infos] == ["nodejs20.x", "nodejs22.x", "nodejs24.x"]
    assert all(not i.installed and i.node_version is None for i in infos)
    assert infos[2].as_dict()["RicVersion"] == node.ric_version(24)
