"""The CLI's settings from its environment: read once, in one place, and passed down.

The client side of lambdalet (``ops/``) reads no environment variable anywhere else;
the server reads its own configuration in ``cli.py`` into a frozen ``ServerConfig``.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

DEFAULT_ENDPOINT = "http://127.0.0.1:9000"


@dataclass(frozen=True)
class ClientSettings:
    #: the server the commands talk to unless ``--endpoint`` says otherwise
    #: ($LAMBDALET_ENDPOINT)
    endpoint: str
    #: ANSI colours are allowed on a terminal (https://no-color.org: $NO_COLOR unset or empty)
    colour: bool
    #: buildah's storage for SAM image functions ($LAMBDALET_BUILDAH_ROOT, else
    #: $XDG_CACHE_HOME/lambdalet/buildah)
    buildah_root: Path
    #: the CLI's environment as it started: the base of the tools' own (pip, npm)
    environ: Mapping[str, str]


def load(environ: Mapping[str, str], home: Path) -> ClientSettings:
    """Settings from ``environ`` (the process's environment), ``home`` its user's home."""
    buildah = environ.get("LAMBDALET_BUILDAH_ROOT")
    cache = Path(environ.get("XDG_CACHE_HOME", home / ".cache"))
    return ClientSettings(
        endpoint=environ.get("LAMBDALET_ENDPOINT", DEFAULT_ENDPOINT),
        colour=not environ.get("NO_COLOR"),
        buildah_root=Path(buildah) if buildah else cache / "lambdalet/buildah",
        environ=MappingProxyType(dict(environ)),
    )


@functools.cache
def client_settings() -> ClientSettings:
    """This process's settings, read from its environment on first use."""
    return load(os.environ, Path.home())
