"""What a runc sandbox needs from its backend: the settings every sandbox is built from,
and the few calls it makes (:class:`SandboxHost`, the whole of their coupling)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from .. import cgroups
from .command import Runc
from .mounts import TmpImages

if TYPE_CHECKING:
    from .sandbox import RuncSandbox


@dataclass(frozen=True)
class BuildSettings:
    """What every sandbox of one backend is built from (fixed once the backend started)."""

    runc: Runc
    tag: str  # the server instance's (oci.instance_tag)
    cgsys: cgroups.CgroupSystem
    base_rootfs: Path
    agent_dir: Path
    agent_compiled: bool
    agent_python: str
    agent_prefix: Path
    seccomp: Mapping[str, Any] | None
    host_network: bool
    loop_tmp: bool  # /tmp is a loop-mounted ext4 image (else a tmpfs)


class SandboxHost(Protocol):
    """What a sandbox asks of its backend: the whole of their coupling."""

    @property
    def settings(self) -> BuildSettings: ...

    @property
    def tmp_images(self) -> TmpImages: ...

    def likely_mounts(self) -> dict[str, str | None]:
        """The attach points' sources spares mount in advance."""
        ...

    def prestart_env(self) -> dict[str, str] | None:
        """The environment a pre-started runtime starts with (None: do not pre-start)."""
        ...

    def learn_runtime_env(self, env: Mapping[str, str]) -> None: ...

    def is_waiting_spare(self, sb: RuncSandbox) -> bool: ...

    async def mount_readonly(self, source: str, target: str) -> None: ...

    def forget(self, sb: RuncSandbox) -> None:
        """``sb`` is being destroyed: no longer the backend's."""
        ...
