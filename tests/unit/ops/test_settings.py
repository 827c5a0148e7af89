"""The CLI's settings, read from an environment given to the loader."""

from __future__ import annotations

from pathlib import Path

import pytest

from lambdalet.ops.settings import DEFAULT_ENDPOINT, load

HOME = Path("/home/someone")


def test_defaults_with_an_empty_environment() -> None:
    s = load({}, HOME)
    assert s.endpoint == DEFAULT_ENDPOINT
    assert s.colour
    assert s.buildah_root == HOME / ".cache/lambdalet/buildah"
    assert dict(s.environ) == {}


def test_each_variable_sets_its_field() -> None:
    env = {
        "LAMBDALET_ENDPOINT": "http://10.0.0.5:9100",
        "NO_COLOR": "1",
        "XDG_CACHE_HOME": "/var/cache/me",
        "PATH": "/usr/bin",
    }
    s = load(env, HOME)
    assert s.endpoint == "http://10.0.0.5:9100"
    assert not s.colour
    assert s.buildah_root == Path("/var/cache/me/lambdalet/buildah")
    assert dict(s.environ) == env


def test_an_explicit_buildah_root_wins_over_the_cache_home() -> None:
    s = load({"LAMBDALET_BUILDAH_ROOT": "/srv/buildah", "XDG_CACHE_HOME": "/c"}, HOME)
    assert s.buildah_root == Path("/srv/buildah")


def test_the_environment_is_a_snapshot_that_cannot_be_changed() -> None:
    env = {"A": "1"}
    s = load(env, HOME)
    env["A"] = "2"
    assert s.environ["A"] == "1"
    with pytest.raises(TypeError):
        s.environ["A"] = "3"  # type: ignore[index]
