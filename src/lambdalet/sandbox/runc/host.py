"""What a runc sandbox needs from its backend: the settings every sandbox is built from,
and the few calls it makes (:class:`SandboxHost`, the whole of their coupling)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from .. import cgroups
from ..base import SandboxSpec
from .command import Runc
from .mounts import TmpImages
from .oci import BundlePlan, nproc_limit

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

    def bundle_plan(
        self,
        spec: SandboxSpec,
        netns_path: Path,
        tmp_source: Path | None,
        attach_dir: Path | None,
        container_id: str,
    ) -> BundlePlan:
        """What :func:`~.oci.oci_config` needs for one sandbox built from these settings."""
        return BundlePlan(
            spec=spec,
            rootfs=self.base_rootfs,
            netns_path=netns_path,
            cgroup_version=self.cgsys.version,
            agent_python=self.agent_python,
            agent_python_prefix=self.agent_prefix,
            agent_dir=self.agent_dir,
            agent_compiled=self.agent_compiled,
            tmp_source=tmp_source,
            nproc=nproc_limit(),
            instance=self.tag,
            attach_dir=attach_dir,
            container_id=container_id,
            seccomp=self.seccomp,
            base_rootfs=self.base_rootfs,
        )


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
