"""Our own runc: its command line (a state directory of our own) and deleting a container."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

from .. import spawn
from ..base import SandboxError


@dataclass(frozen=True)
class Runc:
    """How to run our own runc: its binary and its ``--root`` (state) directory."""

    binary: str
    state_dir: Path

    def cmd(self, *args: str) -> list[str]:
        return [self.binary, "--root", str(self.state_dir), *args]

    async def delete(self, container_id: str) -> None:
        """``runc delete --force``; a container already gone is no error."""
        rc, err = await spawn.run(
            self.cmd("delete", "--force", container_id),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        text = err.decode(errors="replace")
        if rc != 0 and "does not exist" not in text:
            raise SandboxError(f"runc delete {container_id}: {text.strip()}")
