"""How an environment starts its runtime: the seam between lifecycle and runtimes.

The environment asks a :class:`Launcher` twice: before the sandbox exists
(which runtime and language directories to mount) and once it knows the
sandbox's view (the argv and environment of the runtime process).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from lambdalet.model import FunctionRecord
from lambdalet.sandbox.base import SandboxSpec, SandboxView


@dataclass(frozen=True)
class RuntimeMounts:
    runtime_dir: Path | None
    lang_dir: Path | None
    #: e.g. ``python:3.11.v1`` for the INIT_START line
    runtime_version: str
    runtime_version_arn: str
    #: lines the function log shows at every Init (e.g. a Python version fallback)
    notes: Sequence[str] = field(default_factory=tuple)
    #: laid over ``lang_dir`` at /var/lang (see ``SandboxSpec.lang_layers``)
    lang_layers: Sequence[Path] = field(default_factory=tuple)
    #: a container image function's unpacked image: the sandbox's whole root
    image_rootfs: Path | None = None


@dataclass(frozen=True)
class LaunchPlan:
    argv: Sequence[str]
    env: Mapping[str, str]
    cwd: str
    #: set when the runtime cannot be started at all (e.g. no bootstrap): (errorType, detail)
    entrypoint_error: tuple[str, str] | None = None


class Launcher(Protocol):
    async def mounts(self, function: FunctionRecord) -> RuntimeMounts:
        """Prepare (install if needed) the runtime for this function."""
        ...

    def plan(
        self,
        function: FunctionRecord,
        view: SandboxView,
        log_stream: str,
        init_type: str,
    ) -> LaunchPlan: ...

    def extension_env(
        self, function: FunctionRecord, view: SandboxView, init_type: str
    ) -> Mapping[str, str]:
        """The environment of external extension processes (contract §2.10)."""
        ...

    async def with_debugger(
        self, plan: LaunchPlan, function: FunctionRecord, view: SandboxView, port: int
    ) -> LaunchPlan:
        """The plan of a runtime that waits for a debugger on ``port`` (env/debug.py);
        installs the debugger into the runtime first if needed."""
        ...


def sandbox_spec(env_id: str, function: FunctionRecord, mounts: RuntimeMounts) -> SandboxSpec:
    """What the backend builds for an environment of ``function`` with these mounts."""
    return SandboxSpec(
        env_id=env_id,
        memory_mb=function.memory_mb,
        ephemeral_mb=function.ephemeral_mb,
        code_dir=function.code_dir,
        layer_dirs=tuple(layer.code_dir for layer in function.layers),
        runtime_dir=mounts.runtime_dir,
        lang_dir=mounts.lang_dir,
        lang_layers=tuple(mounts.lang_layers),
        image_rootfs=mounts.image_rootfs,
    )
