"""Both sandbox agents (agent.py and the compiled agent.c) speak one protocol.

Each runs as PID 1 of a fresh pid namespace (``unshare --pid --fork``), as in a
sandbox, driven through runc.agent_message over a SOCK_SEQPACKET socket.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from lambdalet.sandbox import runc
from lambdalet.sandbox.runc import agent_message, compile_agent
from tests.needs import require

SANDBOX = runc.agentfiles.SOURCES_DIR


def _needs_root() -> None:
    require(
        "a pid namespace for the agents",
        "needs root and unshare (util-linux)"
        if os.geteuid() != 0 or shutil.which("unshare") is None
        else None,
    )


class Agent:
    def __init__(self, argv: list[str], log: Path) -> None:
        self.host, inside = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.host.settimeout(10)
        with log.open("wb") as out:
            self.proc = subprocess.Popen(
                ["unshare", "--pid", "--fork", "--mount", "--mount-proc", "--kill-child", *argv],
                stdin=inside.fileno(),
                stdout=out,
                stderr=out,
            )
        inside.close()
        self.seq = 0

    def words(self) -> list[str]:
        return self.host.recv(256).decode().split()

    def send(self, *fields: object, fds: list[int] | None = None) -> None:
        socket.send_fds(self.host, [agent_message(fields)], fds or [])

    def spawn(
        self, argv: list[str], env: dict[str, str] | None = None, extra: int | None = None
    ) -> tuple[list[str], int]:
        """(the agent's answer, read end of the child's output)."""
        self.seq += 1
        r, w = os.pipe()
        fds = [w] if extra is None else [w, extra]
        self.send("spawn", self.seq, argv, env or {}, "/tmp", fds=fds)
        os.close(w)
        return self.words(), r

    def close(self) -> None:
        self.host.close()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def _read_all(fd: int) -> str:
    chunks = []
    while chunk := os.read(fd, 4096):
        chunks.append(chunk)
    os.close(fd)
    return b"".join(chunks).decode()


@pytest.fixture(params=["python", "compiled"])
def agent(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Agent]:
    _needs_root()
    if request.param == "compiled":
        problem = compile_agent(SANDBOX / "agent.c", tmp_path / "agent")
        assert problem is None, problem
        argv = [str(tmp_path / "agent")]
    else:
        argv = [os.path.realpath(sys.executable), "-I", "-S", "-B", str(SANDBOX / "agent.py")]
    a = Agent(argv, tmp_path / "agent.log")
    try:
        assert a.words() == ["R"], (tmp_path / "agent.log").read_text()
        yield a
    finally:
        a.close()


def test_spawn_output_environment_and_exit_status(agent: Agent) -> None:
    answer, out = agent.spawn(["/bin/sh", "-c", 'echo "$A $(pwd)"; exit 3'], {"A": "x=1"})
    assert answer[:2] == ["S", "1"]
    pid = answer[2]
    assert _read_all(out) == "x=1 /tmp\n"
    assert agent.words() == ["X", pid, "3", "-1"]


def test_a_program_that_cannot_start_is_an_errno(agent: Agent) -> None:
    answer, out = agent.spawn(["/nonexistent/program"])
    assert answer == ["E", "1", "2"]  # ENOENT
    assert _read_all(out) == ""


def test_only_the_standard_descriptors_and_fd_3_reach_the_program(agent: Agent) -> None:
    listing = "ls /proc/$$/fd; true"  # the shell's own descriptors (ls adds its own)
    answer, out = agent.spawn(["/bin/sh", "-c", listing])
    assert answer[0] == "S"
    assert _read_all(out).split() == ["0", "1", "2"]
    agent.words()  # its exit
    r, w = os.pipe()
    os.write(w, b"handed over")
    os.close(w)
    answer, out = agent.spawn(["/bin/sh", "-c", "cat <&3; echo; " + listing], extra=r)
    os.close(r)
    assert answer[0] == "S"
    assert _read_all(out).split() == ["handed", "over", "0", "1", "2", "3"]


def test_signal_and_killall_reach_every_process(agent: Agent) -> None:
    answer, out = agent.spawn(["/bin/sleep", "30"])
    os.close(out)
    sleeper = answer[2]
    agent.send("signal", sleeper, 15)
    assert agent.words() == ["X", sleeper, "-1", "15"]
    answer, out = agent.spawn(["/bin/sh", "-c", "sleep 30 & exec sleep 31"])
    os.close(out)
    agent.send("killall", 7)
    # the tracked one is reported, the orphaned grandchild is reaped silently
    assert agent.words() == ["X", answer[2], "-1", "9"]
    assert agent.words() == ["K", "7"]


def test_the_agent_exits_when_the_host_goes(agent: Agent) -> None:
    answer, out = agent.spawn(["/bin/sleep", "30"])
    assert answer[0] == "S"
    agent.host.close()
    assert agent.proc.wait(5) is not None
    # PID 1 gone: the kernel killed the rest of the namespace, so the pipe is closed
    assert _read_all(out) == ""
