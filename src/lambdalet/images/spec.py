"""What an image's config says about running it, and ``ImageConfig``'s overrides (pure).

Lambda honours only ``ENTRYPOINT``, ``CMD``, ``WORKDIR`` and ``ENV`` of an image (``USER``,
``EXPOSE``, ``VOLUME``, ... are ignored).  ``ImageConfig`` replaces each of the first three
separately; an ``EntryPoint`` override keeps the image's ``CMD`` unless ``Command`` is
given too (Lambda documents the three as independent overrides, unlike ``docker run
--entrypoint``, which drops the image's CMD).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

#: Lambda's architecture names and the OCI ones they pull.
OCI_ARCH = {"x86_64": "amd64", "arm64": "arm64"}


class BadImage(ValueError):
    """The image's manifest or config cannot be used (Lambda's InvalidImage)."""


@dataclass(frozen=True)
class ImageConfig:
    """``ImageConfig`` of a function: ``None`` keeps the image's value."""

    entry_point: tuple[str, ...] | None = None
    command: tuple[str, ...] | None = None
    working_directory: str | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.entry_point is not None:
            out["EntryPoint"] = list(self.entry_point)
        if self.command is not None:
            out["Command"] = list(self.command)
        if self.working_directory is not None:
            out["WorkingDirectory"] = self.working_directory
        return out

    @classmethod
    def from_json(cls, value: Mapping[str, Any]) -> ImageConfig:
        ep, cmd = value.get("EntryPoint"), value.get("Command")
        return cls(
            tuple(ep) if ep is not None else None,
            tuple(cmd) if cmd is not None else None,
            value.get("WorkingDirectory"),
        )


@dataclass(frozen=True)
class ImageRunSpec:
    """The part of an image config Lambda uses."""

    entrypoint: tuple[str, ...] = ()
    cmd: tuple[str, ...] = ()
    env: tuple[tuple[str, str], ...] = ()
    workdir: str = ""
    architecture: str = "amd64"
    os: str = "linux"
    extra: Mapping[str, Any] = field(default_factory=dict)

    def argv(self, override: ImageConfig) -> list[str]:
        entry = override.entry_point if override.entry_point is not None else self.entrypoint
        cmd = override.command if override.command is not None else self.cmd
        return [*entry, *cmd]

    def cwd(self, override: ImageConfig) -> str:
        return override.working_directory or self.workdir or "/"

    def env_map(self) -> dict[str, str]:
        return dict(self.env)


def run_spec(config_json: bytes | str) -> ImageRunSpec:
    """Parse an OCI / Docker image config blob."""
    try:
        doc = json.loads(config_json)
    except ValueError as e:
        raise BadImage(f"image config is not JSON: {e}") from None
    if not isinstance(doc, dict):
        raise BadImage("image config is not a JSON object")
    cfg = doc.get("config") or {}
    if not isinstance(cfg, dict):
        raise BadImage("image config's 'config' is not an object")
    env: list[tuple[str, str]] = []
    for item in cfg.get("Env") or []:
        if not isinstance(item, str):
            raise BadImage("image config's Env holds a non-string")
        k, _, v = item.partition("=")
        env.append((k, v))
    return ImageRunSpec(
        entrypoint=_strs(cfg.get("Entrypoint"), "Entrypoint"),
        cmd=_strs(cfg.get("Cmd"), "Cmd"),
        env=tuple(env),
        workdir=str(cfg.get("WorkingDir") or ""),
        architecture=str(doc.get("architecture") or "amd64"),
        os=str(doc.get("os") or "linux"),
    )


def _strs(value: object, field_name: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(x, str) for x in value):
        raise BadImage(f"image config's {field_name} is not a list of strings")
    return tuple(value)


def check_platform(spec: ImageRunSpec, architecture: str) -> None:
    """The image must be a Linux image of the function's architecture."""
    want = OCI_ARCH.get(architecture, architecture)
    if spec.os != "linux" or spec.architecture != want:
        raise BadImage(
            f"image is for {spec.os}/{spec.architecture}, the function's architecture is "
            f"{architecture} (linux/{want})"
        )


def merged_env(
    spec: ImageRunSpec,
    lambda_env: Mapping[str, str],
    function_vars: Mapping[str, str],
    defaults: Sequence[str],
) -> dict[str, str]:
    """The runtime's environment, later wins: Lambda's defaults for the ``defaults`` keys
    (PATH, LANG, ...), the image's ENV, the function's variables, Lambda's reserved ones.

    ``lambda_env`` is the environment a zip function would get (function variables
    included); its ``defaults`` keys only fill what the image leaves unset."""
    image_env = spec.env_map()
    out = {k: lambda_env[k] for k in defaults if k in lambda_env and k not in image_env}
    out.update(image_env)
    out.update(function_vars)
    out.update({k: v for k, v in lambda_env.items() if k not in defaults})
    return out
