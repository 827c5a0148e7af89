from __future__ import annotations

import os
from pathlib import Path

import pytest

from lambdalet.runtimes.provided import (
    INVALID_ENTRYPOINT,
    InvalidEntrypoint,
    find_bootstrap,
    is_provided_runtime,
)
from lambdalet.sandbox.base import SandboxView

VIEW = SandboxView("/var/task", "/opt", "/var/runtime", "/var/lang", "/tmp", "169.254.100.1:9001")
HOST_VIEW = SandboxView("/h/code", "/h/opt", "/h/rt", "/h/lang", "/h/tmp", "127.0.0.1:1")
MESSAGE = (
    "RequestId: 1234 Error: Couldn't find valid bootstrap(s): [/var/task/bootstrap /opt/bootstrap]"
)


def make(path: Path, mode: int = 0o755) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\n")
    path.chmod(mode)
    return path


@pytest.fixture
def dirs(tmp_path: Path) -> tuple[Path, list[Path]]:
    code = tmp_path / "code"
    code.mkdir()
    layers = [tmp_path / f"layer{i}" for i in range(3)]
    for layer in layers:
        layer.mkdir()
    return code, layers


def test_task_bootstrap_wins(dirs: tuple[Path, list[Path]]) -> None:
    code, layers = dirs
    make(code / "bootstrap")
    make(layers[0] / "bootstrap")
    found = find_bootstrap(code, layers, VIEW)
    assert found.inside == "/var/task/bootstrap"
    assert found.host_path == code / "bootstrap"
    assert found.argv() == ["/var/task/bootstrap"]
    assert find_bootstrap(code, layers, HOST_VIEW).inside == "/h/code/bootstrap"


def test_last_layer_with_a_bootstrap_wins(dirs: tuple[Path, list[Path]]) -> None:
    code, layers = dirs
    make(layers[0] / "bootstrap")
    make(layers[1] / "bootstrap")
    found = find_bootstrap(code, layers, VIEW)
    assert found.inside == "/opt/bootstrap"
    assert found.host_path == layers[1] / "bootstrap"
    assert find_bootstrap(code, layers, HOST_VIEW).inside == "/h/opt/bootstrap"


def test_non_executable_task_bootstrap_falls_through_to_opt(dirs: tuple[Path, list[Path]]) -> None:
    code, layers = dirs
    make(code / "bootstrap", 0o644)
    make(layers[2] / "bootstrap")
    assert find_bootstrap(code, layers, VIEW).inside == "/opt/bootstrap"


def test_top_layer_hides_lower_ones_even_when_not_executable(
    dirs: tuple[Path, list[Path]],
) -> None:
    code, layers = dirs
    make(layers[0] / "bootstrap")
    make(layers[2] / "bootstrap", 0o644)
    with pytest.raises(InvalidEntrypoint):
        find_bootstrap(code, layers, VIEW)


@pytest.mark.parametrize("case", ["missing", "not-executable", "directory", "dangling"])
def test_invalid_entrypoint(dirs: tuple[Path, list[Path]], case: str) -> None:
    code, layers = dirs
    if case == "not-executable":
        make(code / "bootstrap", 0o644)
    elif case == "directory":
        (code / "bootstrap").mkdir()
    elif case == "dangling":
        os.symlink("missing-file", code / "bootstrap")
    with pytest.raises(InvalidEntrypoint) as info:
        find_bootstrap(code, layers, VIEW)
    err = info.value
    assert err.error_type == INVALID_ENTRYPOINT == "Runtime.InvalidEntrypoint"
    assert err.message("1234") == MESSAGE
    assert err.error_body("1234") == {
        "errorType": "Runtime.InvalidEntrypoint",
        "errorMessage": MESSAGE,
    }


def test_relative_symlink_is_followed(dirs: tuple[Path, list[Path]]) -> None:
    code, layers = dirs
    make(code / "bin" / "app")
    os.symlink("bin/app", code / "bootstrap")
    assert find_bootstrap(code, layers, VIEW).inside == "/var/task/bootstrap"


def test_absolute_symlink_is_left_to_the_sandbox(dirs: tuple[Path, list[Path]]) -> None:
    code, layers = dirs
    os.symlink("/var/task/bin/app-that-only-exists-inside", code / "bootstrap")
    assert find_bootstrap(code, layers, VIEW).inside == "/var/task/bootstrap"


def test_is_provided_runtime() -> None:
    for rid in ("provided", "provided.al2", "provided.al2023"):
        assert is_provided_runtime(rid)
    for rid in ("python3.12", "nodejs20.x", "provided.al3"):
        assert not is_provided_runtime(rid)
