"""HostPaths: the one reading of the host-path variables (runtimes/ asks it)."""

from __future__ import annotations

from pathlib import Path

from lambdalet.config import HostPaths


def test_defaults_under_home() -> None:
    home = Path.home()
    assert HostPaths.from_environ({}) == HostPaths(
        cache_dir=home / ".cache" / "lambdalet",
        pyenv_versions=home / ".pyenv" / "versions",
        uv_pythons=home / ".local" / "share" / "uv" / "python",
    )


def test_each_variable_moves_its_place() -> None:
    paths = HostPaths.from_environ(
        {
            "XDG_CACHE_HOME": "/xc",
            "PYENV_ROOT": "/pe",
            "XDG_DATA_HOME": "/xd",
        }
    )
    assert paths == HostPaths(Path("/xc/lambdalet"), Path("/pe/versions"), Path("/xd/uv/python"))
    explicit = HostPaths.from_environ(
        {"LAMBDALET_CACHE_DIR": "/c", "XDG_CACHE_HOME": "/xc", "UV_PYTHON_INSTALL_DIR": "/uv"}
    )
    assert (explicit.cache_dir, explicit.uv_pythons) == (Path("/c"), Path("/uv"))


def test_empty_means_unset() -> None:
    assert HostPaths.from_environ({"LAMBDALET_CACHE_DIR": "", "XDG_CACHE_HOME": ""}).cache_dir == (
        Path.home() / ".cache" / "lambdalet"
    )
