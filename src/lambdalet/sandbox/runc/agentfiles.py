"""The sandbox agent's files on the host: agent.py, agent.c and the agent compiled from
it (``rapid/<hash>/``), and the interpreter that runs agent.py where there is no
compiled agent."""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from lambdalet.config import PYTHON_AGENT_ENV

from .. import rootfs
from ..base import SandboxError

#: where agent.py and agent.c are (the sandbox package)
SOURCES_DIR = Path(__file__).resolve().parent.parent
AGENT_SOURCES = ("agent.py", "agent.c")


def agent_interpreter() -> tuple[Path, str]:
    """(host prefix to mount, interpreter path inside) for running the agent."""
    exe = Path(os.path.realpath(sys.executable))
    prefix = Path(os.path.realpath(sys.base_prefix))
    try:
        rel = exe.relative_to(prefix)
    except ValueError:
        raise SandboxError(f"python {exe} is not under its prefix {prefix}") from None
    return prefix, f"{rootfs.AGENT_PYTHON_PREFIX}/{rel}"


def compile_agent(source: Path, binary: Path) -> str | None:
    """Build the compiled agent (static when the C library allows); None, or why not."""
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        return "no C compiler (cc) found"
    tmp = binary.with_name(f".{binary.name}.{os.getpid()}")
    flags = ["-O2", "-Wall", "-Werror", "-o", str(tmp), str(source)]
    err = ""
    for link in (["-static"], []):
        done = subprocess.run(
            [cc, *link, *flags], capture_output=True, text=True, timeout=60, check=False
        )
        if done.returncode == 0:
            tmp.chmod(0o755)
            tmp.rename(binary)
            return None
        err = done.stderr.strip().splitlines()[-1] if done.stderr.strip() else str(done.returncode)
    with contextlib.suppress(OSError):
        tmp.unlink()
    return f"{cc} failed: {err}"


@dataclass(frozen=True)
class InstalledAgent:
    dir: Path  # holds agent.py, agent.c and (when compiled) agent
    compiled: bool  # sandboxes run the compiled agent
    warning: str | None = None  # why they run agent.py instead, when they should not


def install_agent(data_dir: Path, python_agent: bool = False) -> InstalledAgent:
    """``rapid/<hash>/``: agent.py, agent.c and, when the host has a C compiler, the
    compiled agent (``agent``), which every sandbox then runs as PID 1 instead.

    ``python_agent`` (configuration) asks for agent.py on purpose.  Blocking.
    """
    sources = {name: (SOURCES_DIR / name).read_bytes() for name in AGENT_SOURCES}
    digest = hashlib.sha256(b"".join(sources.values())).hexdigest()[:16]
    d = data_dir / "rapid" / digest
    if not (d / "agent.py").exists():
        d.mkdir(parents=True, exist_ok=True)
        for name, text in sources.items():
            tmp = d / f".{name}.{os.getpid()}"
            tmp.write_bytes(text)
            tmp.chmod(0o644)
            tmp.rename(d / name)
        d.chmod(0o755)
    binary = d / "agent"
    if python_agent:
        # the fallback on purpose (troubleshooting, comparisons)
        return InstalledAgent(
            d,
            False,
            "the sandbox agent runs on Python (3.3 MB more per sandbox): "
            f"{PYTHON_AGENT_ENV} is set",
        )
    warning = None
    if not binary.exists():
        problem = compile_agent(d / "agent.c", binary)
        if problem is not None:
            warning = f"the sandbox agent runs on Python (3.3 MB more per sandbox): {problem}"
    return InstalledAgent(d, binary.exists(), warning)
