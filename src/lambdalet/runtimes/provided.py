"""OS-only runtimes (``provided``, ``provided.al2``, ``provided.al2023``): find the bootstrap.

The function brings its own runtime: an executable ``bootstrap`` in the function code
(``/var/task/bootstrap``) or, failing that, in a layer (``/opt/bootstrap``).  The check
runs on the host paths before anything is started; layers are merged in order, so the
last layer that has a ``bootstrap`` is the one ``/opt/bootstrap`` shows.

These runtimes need no ``/var/lang`` prefix and no ``/var/runtime`` directory.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from lambdalet.config import ServerConfig
from lambdalet.runtimes.description import BUILT_IN, RuntimeDescription, Say
from lambdalet.sandbox.base import SandboxView

PROVIDED_RUNTIMES = frozenset({"provided", "provided.al2", "provided.al2023"})

#: Where Lambda looks, in order, as its error message spells them.
BOOTSTRAP_SEARCH = ("/var/task/bootstrap", "/opt/bootstrap")
INVALID_ENTRYPOINT = "Runtime.InvalidEntrypoint"


def is_provided_runtime(runtime_id: str) -> bool:
    return runtime_id in PROVIDED_RUNTIMES


class InvalidEntrypoint(Exception):
    """No usable bootstrap: the invocation fails with ``Runtime.InvalidEntrypoint``."""

    error_type = INVALID_ENTRYPOINT

    def __init__(self) -> None:
        super().__init__(self.message("<id>"))

    @staticmethod
    def message(request_id: str) -> str:
        return (
            f"RequestId: {request_id} Error: Couldn't find valid bootstrap(s): "
            f"[{' '.join(BOOTSTRAP_SEARCH)}]"
        )

    def error_body(self, request_id: str) -> dict[str, object]:
        """The error document the caller receives (``X-Amz-Function-Error: Unhandled``)."""
        return {"errorType": self.error_type, "errorMessage": self.message(request_id)}


@dataclass(frozen=True)
class ProvidedBootstrap:
    host_path: Path  # the file on the host (in the code dir or in one layer's dir)
    inside: str  # the path the sandbox's processes see, e.g. /var/task/bootstrap

    def argv(self) -> list[str]:
        return [self.inside]


def _usable(path: Path) -> bool:
    """A regular file with an execute bit (following symlinks that resolve on the host).

    A symlink with an absolute target (``/var/task/...``, ``/opt/...``) only resolves
    inside the sandbox; it is accepted and left to the spawn to judge.
    """
    try:
        st = path.stat()
    except FileNotFoundError:
        return path.is_symlink() and os.path.isabs(os.readlink(path))
    except OSError:
        return False
    return stat.S_ISREG(st.st_mode) and bool(st.st_mode & 0o111)


def _present(path: Path) -> bool:
    return path.is_symlink() or path.exists()


def find_bootstrap(
    code_dir: Path, layer_dirs: Sequence[Path], view: SandboxView
) -> ProvidedBootstrap:
    """The bootstrap to start; raises :class:`InvalidEntrypoint` when there is none.

    The first usable one of ``/var/task/bootstrap`` and ``/opt/bootstrap`` wins; a file
    that is there but not executable (or a directory) does not count.
    """
    task_bootstrap = code_dir / "bootstrap"
    if _usable(task_bootstrap):
        return ProvidedBootstrap(task_bootstrap, f"{view.task_root}/bootstrap")
    # /opt is the merge of the layers, later ones on top: the last one that has it is the
    # file /opt/bootstrap shows, usable or not.
    for layer in reversed(layer_dirs):
        candidate = layer / "bootstrap"
        if _present(candidate):
            if _usable(candidate):
                return ProvidedBootstrap(candidate, f"{view.opt_dir}/bootstrap")
            break
    raise InvalidEntrypoint()


def describe(config: ServerConfig) -> list[RuntimeDescription]:
    """The OS-only runtimes: nothing to install, the function brings its bootstrap."""
    return [
        RuntimeDescription(
            rid,
            "provided",
            BUILT_IN,
            "its own bootstrap",
            notes=("the host's OS libraries, not Amazon Linux's",),
        )
        for rid in sorted(PROVIDED_RUNTIMES)
    ]


def install(config: ServerConfig, runtime_id: str, say: Say) -> RuntimeDescription:
    say(f"{runtime_id}: nothing to install (the function brings its own bootstrap)")
    return next(d for d in describe(config) if d.runtime == runtime_id)
