"""One behaviour suite for every sandbox backend (runc with real runc, and process).

A capability a backend lacks is asserted to be *reported* as lacking.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from lambdalet.config import ServerConfig
from lambdalet.sandbox.base import (
    Capability,
    ProcessExit,
    ProcessRole,
    Sandbox,
    SandboxBackend,
    SandboxSpec,
    SpawnError,
)
from tests.needs import NO_CGROUP_STATS, NO_SPARES, require, rootless_lacks

LANG = Path(os.path.realpath(sys.executable)).parent.parent
#: runc-spare: every sandbox is a spare built in advance, then attached by create()
BACKENDS = ["runc", "runc-spare", "process"]


def runc_missing() -> str | None:
    if os.geteuid() != 0:
        from lambdalet.sandbox import userns

        blockers = userns.blockers(userns.gather())
        if blockers:  # not root: the runc variants run rootless where the host allows
            return "not root, and rootless sandboxes cannot run: " + "; ".join(blockers)
    if shutil.which("runc") is None:
        return "runc not installed"
    return None


@dataclass
class Env:
    """One sandbox plus what it reported."""

    kind: str
    backend: SandboxBackend
    sb: Sandbox
    spec: SandboxSpec
    logs: list[tuple[ProcessRole, str, bytes]] = field(default_factory=list)
    exits: list[ProcessExit] = field(default_factory=list)

    @property
    def python(self) -> str:
        return f"{self.sb.view.lang_dir}/bin/python3.11"

    @property
    def env(self) -> dict[str, str]:
        return {"LD_LIBRARY_PATH": f"{self.sb.view.lang_dir}/lib", "PATH": "/usr/bin:/bin"}

    async def py(self, code: str, name: str = "p", role: ProcessRole = ProcessRole.RUNTIME) -> int:
        return await self.sb.spawn(
            role, name, [self.python, "-c", code], self.env, self.sb.view.task_root
        )

    def output(self, name: str) -> str:
        return b"".join(line for _, n, line in self.logs if n == name).decode()

    async def wait_exit(self, pid: int, limit_s: float = 10.0) -> ProcessExit:
        await until(lambda: any(e.pid == pid for e in self.exits), limit_s)
        return next(e for e in self.exits if e.pid == pid)

    async def run(
        self, code: str, name: str = "p", limit_s: float = 10.0
    ) -> tuple[ProcessExit, str]:
        pid = await self.py(code, name)
        ex = await self.wait_exit(pid, limit_s)
        return ex, self.output(name)


def has(env: Env, capability: Capability) -> bool:
    """Whether ``env``'s backend declares ``capability`` (each test checks it holds, or
    that its absence shows)."""
    return capability in env.backend.info().capabilities


#: what rootless sandboxes lack on a host without a delegated cgroup (tests/needs.py)
ROOTLESS_LACKS = {
    Capability.MEMORY_LIMIT,
    Capability.MEMORY_ACCOUNTING,
    Capability.FREEZER,
    Capability.CONTAINER_IMAGES,
}


def expected(env: Env, capability: Capability) -> bool:
    """Whether ``env``'s kind of sandbox should have ``capability`` on this host."""
    if env.kind != "runc":
        return False
    return os.geteuid() == 0 or capability not in ROOTLESS_LACKS


async def until(cond: Callable[[], bool], limit_s: float = 10.0) -> None:
    deadline = time.monotonic() + limit_s
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)


@pytest.fixture(scope="module")
def code_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("code")
    d.chmod(0o755)
    (d / "notexec.sh").write_text("#!/bin/sh\necho no\n")
    (d / "notexec.sh").chmod(0o644)
    (d / "garbage.bin").write_bytes(b"\x00\x01garbage")
    (d / "garbage.bin").chmod(0o755)
    return d


@pytest.fixture(scope="module")
def layers(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    out = []
    for i in range(2):
        d = tmp_path_factory.mktemp(f"layer{i}")
        d.chmod(0o755)
        (d / "both.txt").write_text(f"layer{i}\n")
        (d / f"only{i}.txt").write_text("x\n")
        for f in d.iterdir():
            f.chmod(0o644)
        out.append(d)
    return out


@pytest.fixture(params=BACKENDS)
async def make_env(
    request: pytest.FixtureRequest, tmp_path: Path, code_dir: Path, layers: list[Path]
) -> AsyncIterator[Callable[..., Awaitable[Env]]]:
    variant: str = request.param
    kind = "runc" if variant.startswith("runc") else variant
    config = ServerConfig(data_dir=tmp_path / "data")
    backend: SandboxBackend
    spares = variant == "runc-spare"
    if kind == "runc":
        require("the runc backend", runc_missing())
        from lambdalet.sandbox.runc import RuncBackend

        if os.geteuid() == 0:
            rb = RuncBackend(config, spares=1 if spares else 0, spare_ephemeral_mb=16)
        else:
            from lambdalet.sandbox import userns
            from lambdalet.sandbox.rootless import RootlessBackend

            if spares:
                rootless_lacks(NO_SPARES)
            rb = RootlessBackend(config, userns.gather())
        await rb.start()
        backend = rb
    else:
        from lambdalet.sandbox.process import ProcessBackend

        backend = ProcessBackend(config)
    envs: list[Env] = []
    n = 0

    async def make(**kw: object) -> Env:
        nonlocal n
        n += 1
        args: dict[str, object] = dict(
            env_id=f"t{os.getpid()}-{n}",
            memory_mb=128,
            ephemeral_mb=16,
            code_dir=code_dir,
            layer_dirs=layers,
            runtime_dir=None,
            lang_dir=LANG,
            pids_limit=64,
        )
        args.update(kw)
        spec = SandboxSpec(**args)  # type: ignore[arg-type]
        e = Env(kind, backend, None, spec)  # type: ignore[arg-type]
        if spares and spec.ephemeral_mb == 16:
            from lambdalet.sandbox.runc import RuncBackend

            assert isinstance(backend, RuncBackend)
            await backend.wait_spares()
            assert backend.spare_count() == 1
        e.sb = await backend.create(
            spec, lambda r, name, line: e.logs.append((r, name, line)), e.exits.append
        )
        envs.append(e)
        return e

    yield make
    for e in envs:
        await e.sb.destroy()
    await backend.close()
    # the system data dir (/run/netns etc.) must not keep anything of ours
    leftovers = list((tmp_path / "data" / "envs").glob("*")) if kind == "runc" else []
    assert leftovers == []


@pytest.fixture
async def env(make_env: Callable[..., Awaitable[Env]]) -> Env:
    return await make_env()


async def test_spawn_logs_and_exit_code(env: Env) -> None:
    ex, out = await env.run("import sys; print('out'); print('err', file=sys.stderr); sys.exit(3)")
    assert ex.exit_code == 3 and ex.signal is None
    assert ex.role is ProcessRole.RUNTIME and ex.name == "p"
    assert sorted(out.splitlines()) == ["err", "out"]
    assert all(role is ProcessRole.RUNTIME for role, _, _ in env.logs)


async def test_exit_by_signal_and_signal_goes_to_group(env: Env) -> None:
    pid = await env.py("import time; print('up', flush=True); time.sleep(60)", name="s")
    await until(lambda: "up" in env.output("s"))
    await env.sb.signal(pid, signal.SIGTERM)
    ex = await env.wait_exit(pid)
    assert ex.signal == signal.SIGTERM and ex.exit_code is None
    assert ex.describe() == "signal: terminated"
    await env.sb.signal(pid, signal.SIGTERM)  # gone: no error


async def test_long_lines(env: Env) -> None:
    ex, out = await env.run("import sys; sys.stdout.write('a' * 1_000_000 + '\\nend')", "big")
    assert ex.exit_code == 0
    assert out == "a" * 1_000_000 + "\nend"
    assert max(len(line) for _, _, line in env.logs) <= 256 * 1024


async def test_spawn_errors(env: Env) -> None:
    with pytest.raises(SpawnError, match=r"[Pp]ermission denied"):
        await env.sb.spawn(
            ProcessRole.RUNTIME, "x", [f"{env.sb.view.task_root}/notexec.sh"], {}, "/"
        )
    with pytest.raises(SpawnError, match="No such file"):
        await env.sb.spawn(ProcessRole.RUNTIME, "x", [f"{env.sb.view.task_root}/nope"], {}, "/")
    # an executable file that is neither ELF nor a #! script
    with pytest.raises(SpawnError, match="Exec format"):
        await env.sb.spawn(
            ProcessRole.RUNTIME, "x", [f"{env.sb.view.task_root}/garbage.bin"], {}, "/"
        )
    assert env.exits == []


async def test_freeze_stops_and_thaw_resumes(env: Env) -> None:
    code = (
        "import time, sys\n"
        "i = 0\n"
        "while True:\n"
        "    i += 1; print(i, flush=True); time.sleep(0.005)\n"
    )
    await env.py(code, "c")
    await until(lambda: env.output("c").count("\n") > 3)
    env.sb.freeze()
    await asyncio.sleep(0.05)
    n = len(env.logs)
    await asyncio.sleep(0.3)
    assert len(env.logs) == n, "output advanced while frozen"
    env.sb.thaw()
    await until(lambda: len(env.logs) > n + 3)
    await env.sb.kill_all()


async def test_memory_limit(env: Env) -> None:
    code = "b = []\nfor i in range(384):\n    b.append(bytearray(1024*1024))\nprint('survived')"
    ex, out = await env.run(code, "hog", limit_s=30)
    assert has(env, Capability.MEMORY_LIMIT) is expected(env, Capability.MEMORY_LIMIT)
    if env.kind == "runc" and os.geteuid() != 0:
        # rootless without a delegated cgroup: RLIMIT_DATA refuses the allocation
        assert ex.exit_code == 1 and "MemoryError" in out and "survived" not in out, out
        assert not has(env, Capability.MEMORY_ACCOUNTING)
        rootless_lacks(NO_CGROUP_STATS)
    if has(env, Capability.MEMORY_LIMIT):
        assert ex.signal == signal.SIGKILL and "survived" not in out
        assert env.sb.oom_kills() > 0
        assert env.sb.memory_peak_bytes() > 100 * 1024 * 1024
    else:
        assert not has(env, Capability.MEMORY_ACCOUNTING)
        assert ex.exit_code == 0 and env.sb.oom_kills() == 0
        # sampled from /proc while processes live
        await env.py(code + "\nimport sys, time; sys.stdout.flush(); time.sleep(30)", "hog2")
        await until(lambda: "survived" in env.output("hog2"), 30)
        assert env.sb.memory_peak_bytes() > 300 * 1024 * 1024


async def test_pids_limit_stops_fork_bomb(env: Env) -> None:
    code = (
        "import os\n"
        "n = 0\n"
        "try:\n"
        "    for _ in range(200):\n"
        "        if os.fork() == 0:\n"
        "            import time; time.sleep(30); os._exit(0)\n"
        "        n += 1\n"
        "except OSError as e:\n"
        "    print('fork failed', n, e.errno, flush=True)\n"
    )
    _, out = await env.run(code, "bomb")
    assert has(env, Capability.PIDS_LIMIT) is expected(env, Capability.PIDS_LIMIT)
    if has(env, Capability.PIDS_LIMIT):
        assert "fork failed" in out
        assert int(out.split()[2]) < 64
    else:
        assert out == ""  # all 200 forks worked
    await env.sb.kill_all()
    _, out2 = await env.run("print('alive')", "after")  # the sandbox still works
    assert out2 == "alive\n"


async def test_filesystem_view(env: Env) -> None:
    v = env.sb.view
    code = (
        "import os, errno\n"
        "def w(p):\n"
        "    try:\n"
        "        open(p, 'w').write('x'); return 'ok'\n"
        "    except OSError as e:\n"
        "        return errno.errorcode[e.errno]\n"
        f"print(w('{v.task_root}/new'), w('/usr/new'), w('{v.tmp_dir}/f'))\n"
        f"print(open('{v.opt_dir}/both.txt').read().strip(), "
        f"os.path.exists('{v.opt_dir}/only0.txt'))\n"
        "print(os.path.exists('/work'), os.path.exists('/root/.pyenv'), "
        f"os.path.exists({__file__!r}))\n"
    )
    _, out = await env.run(code, "fs")
    lines = out.splitlines()
    assert lines[1] == "layer1 True"  # later layers win
    assert has(env, Capability.READ_ONLY_ROOT) is expected(env, Capability.READ_ONLY_ROOT)
    assert has(env, Capability.PRIVATE_FILESYSTEM) is expected(env, Capability.PRIVATE_FILESYSTEM)
    if has(env, Capability.READ_ONLY_ROOT):
        assert lines[0] == "EROFS EROFS ok"
    else:
        task, _, tmp = lines[0].split()
        assert (task, tmp) == ("ok", "ok")
    if has(env, Capability.PRIVATE_FILESYSTEM):
        assert lines[2] == "False False False"
    else:
        assert lines[2].split()[2] == "True"  # this file, on the host


async def test_tmp_capped_and_kept_across_kill_all(env: Env) -> None:
    v = env.sb.view
    code = (
        "import errno\n"
        f"f = open('{v.tmp_dir}/big', 'wb')\n"
        "try:\n"
        "    for _ in range(64):\n"
        "        f.write(b'x' * 1024 * 1024); f.flush()\n"
        "    print('wrote all')\n"
        "except OSError as e:\n"
        "    print(errno.errorcode[e.errno])\n"
        "import os\n"
        "os.ftruncate(f.fileno(), 0)  # a full tmpfs has no room left for 'keep'\n"
        f"open('{v.tmp_dir}/keep', 'w').write('kept')\n"
    )
    _, out = await env.run(code, "tmp")
    assert has(env, Capability.TMP_CAP) is expected(env, Capability.TMP_CAP)
    if has(env, Capability.TMP_CAP):
        assert out.strip() == "ENOSPC"
    else:
        assert out.strip() == "wrote all"
    await env.sb.kill_all()
    _, out = await env.run(f"print(open('{v.tmp_dir}/keep').read())", "tmp2")
    assert out.strip() == "kept"


async def test_identity_and_namespaces(env: Env) -> None:
    code = (
        "import os, socket\n"
        "cap = [l.split()[1] for l in open('/proc/self/status') if l.startswith('CapEff')][0]\n"
        "pids = [p for p in os.listdir('/proc') if p.isdigit()]\n"
        "print(os.getuid(), os.getgid(), cap, socket.gethostname(), len(pids))\n"
    )
    _, out = await env.run(code, "id")
    uid, gid, cap, host, npids = out.split()
    assert has(env, Capability.SANDBOX_USER) is expected(env, Capability.SANDBOX_USER)
    if has(env, Capability.SANDBOX_USER):
        assert (uid, gid, cap, host) == ("993", "990", "0000000000000000", "sandbox")
        assert int(npids) < 10  # the agent, this process, maybe a shell
    else:
        assert env.backend.info().isolation == "none"
        assert (uid, gid) == (str(os.getuid()), str(os.getgid()))


async def test_sandbox_localdomain_bind_and_reach(env: Env) -> None:
    assert has(env, Capability.PRIVATE_NETWORK) is expected(env, Capability.PRIVATE_NETWORK)
    if not has(env, Capability.PRIVATE_NETWORK):
        assert env.backend.info().network == "host"
        return
    code = (
        "import socket\n"
        "s = socket.socket(); s.bind(('sandbox.localdomain', 4243)); s.listen()\n"
        "print(s.getsockname()[0], flush=True)\n"
        "c, _ = s.accept(); c.sendall(b'hello'); c.close()\n"
    )
    pid = await env.py(code, "ext", ProcessRole.EXTENSION)
    await until(lambda: env.output("ext") != "")
    addr = env.output("ext").strip()
    sock = env.sb.socket_inside()
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, (addr, 4243))
    data = await asyncio.get_running_loop().sock_recv(sock, 10)
    sock.close()
    assert data == b"hello"
    ex = await env.wait_exit(pid)
    assert ex.role is ProcessRole.EXTENSION and ex.exit_code == 0


async def test_two_sandboxes_same_port(make_env: Callable[..., Awaitable[Env]]) -> None:
    a, b = await make_env(), await make_env()
    if not has(a, Capability.PRIVATE_NETWORK):
        # the process backend reports it shares the host's network: the second bind of
        # one port fails (on a port the kernel picked, so nothing else holds it)
        assert a.backend.info().network == "host"
        await a.py(
            "import socket, time; s = socket.socket(); s.bind(('127.0.0.1', 0))\n"
            "print(s.getsockname()[1], flush=True); time.sleep(30)",
            "x",
        )
        await until(lambda: a.output("x").endswith("\n"))
        port = int(a.output("x"))
        ex, out = await b.run(
            "import errno, socket\n"
            "try:\n"
            f"    socket.socket().bind(('127.0.0.1', {port})); print('bound')\n"
            "except OSError as e:\n"
            "    print(errno.errorcode[e.errno])\n",
            "y",
        )
        assert (ex.exit_code, out) == (0, "EADDRINUSE\n")
        await a.sb.kill_all()
        return
    code = (
        "import socket, time; s = socket.socket(); s.bind(('127.0.0.1', 4243))\n"
        "print('bound', flush=True); time.sleep(30)"
    )
    await a.py(code, "x")
    await b.py(code, "x")
    await until(lambda: a.output("x") == "bound\n" and b.output("x") == "bound\n")


async def test_runtime_api_socket_reachable_inside(env: Env) -> None:
    lsock = env.sb.runtime_api_socket
    loop = asyncio.get_running_loop()
    host, port = env.sb.view.runtime_api.rsplit(":", 1)
    code = (
        "import socket\n"
        f"c = socket.create_connection(('{host}', {port}), timeout=5)\n"
        "print(c.recv(10).decode())\n"
    )
    pid = await env.py(code, "api")
    conn, _ = await asyncio.wait_for(loop.sock_accept(lsock), 10)
    await loop.sock_sendall(conn, b"pong")
    conn.close()
    ex = await env.wait_exit(pid)
    assert ex.exit_code == 0 and env.output("api").strip() == "pong"


async def test_host_loopback_reachable(env: Env) -> None:
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen()
    srv.setblocking(False)
    port = srv.getsockname()[1]
    name = "host.lambdalet.internal" if env.kind == "runc" else "127.0.0.1"
    code = (
        "import socket\n"
        f"c = socket.create_connection(('{name}', {port}), timeout=5)\n"
        "print(c.recv(10).decode())\n"
    )
    pid = await env.py(code, "hostnet")
    conn, _ = await asyncio.wait_for(asyncio.get_running_loop().sock_accept(srv), 10)
    await asyncio.get_running_loop().sock_sendall(conn, b"fromhost")
    conn.close()
    srv.close()
    ex = await env.wait_exit(pid)
    assert ex.exit_code == 0 and env.output("hostnet").strip() == "fromhost"


async def test_kill_all_and_destroy_leave_nothing(make_env: Callable[..., Awaitable[Env]]) -> None:
    e = await make_env()
    pids = [await e.py("import os,time; os.fork(); time.sleep(60)", f"k{i}") for i in range(3)]
    await e.sb.kill_all()
    assert {x.pid for x in e.exits} >= set(pids)
    assert all(x.signal == signal.SIGKILL for x in e.exits)
    if e.kind == "runc":
        # the checks below look for what this sandbox really holds: first see it there
        await asyncio.to_thread(_assert_held, e, True)
    await e.sb.destroy()
    await e.sb.destroy()  # idempotent
    if e.kind == "runc":
        await asyncio.to_thread(_assert_held, e, False)


def _assert_held(e: Env, held: bool) -> None:
    """Whether the host still holds ``e``'s container, cgroup, netns, mounts and files,
    by the names the backend gave them (a spare keeps its own build-time names)."""
    from lambdalet.sandbox.runc import RuncBackend, RuncSandbox, cgroup_relpath

    b, sb = e.backend, e.sb
    assert isinstance(b, RuncBackend) and isinstance(sb, RuncSandbox)
    env_dir = str(sb.env_dir)
    if os.geteuid() == 0:
        mounts = Path("/proc/self/mounts").read_text()
        assert (env_dir in mounts) is held
        netns_out = subprocess.run(["ip", "netns"], capture_output=True, text=True).stdout
        assert (sb.net.name in netns_out.split()) is held, netns_out
        assert b.cgsys.group(cgroup_relpath(b.tag, sb.cid)).exists() is held
    else:  # rootless: mounts and netns are the container's own, no cgroup
        assert (sb.net.runtime_api_socket is not None) is held
    runc_list = subprocess.run(b.runc_cmd("list", "-q"), capture_output=True, text=True).stdout
    assert (sb.cid in runc_list.split()) is held, runc_list
    assert sb.env_dir.exists() is held
    if not held:
        with contextlib.suppress(FileNotFoundError):
            losetup = subprocess.run(["losetup", "-a"], capture_output=True, text=True).stdout
            assert env_dir not in losetup
