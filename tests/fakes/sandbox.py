"""A fake sandbox backend: scripted in-process "processes" that speak real HTTP.

An :class:`~lambdalet.env.environment.Environment` built on :class:`FakeBackend`
serves its real Runtime and Extensions APIs on a real loopback socket; the
"runtime" and "extensions" it spawns are asyncio tasks running a script (a
coroutine taking a :class:`FakeProcess`) that calls those APIs with an aiohttp
client, as awslambdaric or an extension would.  What a real sandbox does to its
processes is simulated and recorded in :attr:`FakeSandbox.ops`: signals (SIGKILL
ends a process, SIGTERM ends it unless its script handles it), freeze (a frozen
process makes no API call until thawed), kill_all, destroy, the memory peak and
OOM kills, so tests assert on them without a kernel.

Nothing here sleeps: scripts wait on HTTP answers or on events the test sets.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import signal
import socket
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from lambdalet.env.launch import LaunchPlan, RuntimeMounts
from lambdalet.model import FunctionRecord
from lambdalet.sandbox.base import (
    BackendInfo,
    ExitSink,
    LogSink,
    ProcessExit,
    ProcessRole,
    SandboxError,
    SandboxSpec,
    SandboxView,
    SpawnError,
)

#: A scripted process: runs until it returns its exit status (None: 0).
Script = Callable[["FakeProcess"], Awaitable[int | None]]

RAPI = "/2018-06-01/runtime"
EXT = "/2020-01-01/extension"

_pids = itertools.count(4000)


class Killed(BaseException):
    """Ends a script as if by a signal (raised into it, or by it for an OOM kill)."""

    def __init__(self, sig: int) -> None:
        super().__init__(sig)
        self.sig = sig


@dataclass(frozen=True)
class Invocation:
    request_id: str
    payload: bytes
    headers: Mapping[str, str]

    @property
    def deadline_ms(self) -> int:
        return int(self.headers["Lambda-Runtime-Deadline-Ms"])


class FakeProcess:
    """What a script sees: its identity, its environment and HTTP helpers for the APIs."""

    def __init__(
        self,
        sandbox: FakeSandbox,
        pid: int,
        role: ProcessRole,
        name: str,
        argv: Sequence[str],
        env: Mapping[str, str],
    ) -> None:
        self.sandbox = sandbox
        self.pid = pid
        self.role = role
        self.name = name
        self.argv = tuple(argv)
        self.env = dict(env)
        self.base = f"http://{sandbox.view.runtime_api}"
        #: a script that sets this handles SIGTERM itself (it is called, the process lives on)
        self.on_sigterm: Callable[[], None] | None = None
        self.ext_id = ""
        self._session: aiohttp.ClientSession | None = None

    def print(self, text: str) -> None:
        """One line of output, as if written to stdout."""
        self.sandbox.on_log(self.role, self.name, text.encode() + b"\n")

    def mark(self, name: str) -> None:
        """Tell the test this script reached ``name`` (see ``FakeBackend.reached``)."""
        self.sandbox.backend.mark(name)

    def oom(self) -> None:
        """Be killed by the kernel's OOM killer (call from the script)."""
        self.sandbox.oom_count += 1
        raise Killed(signal.SIGKILL)

    # ------------------------------------------------------------------ HTTP

    async def request(
        self, method: str, path: str, body: bytes = b"", headers: Mapping[str, str] | None = None
    ) -> tuple[int, Mapping[str, str], bytes]:
        await self.sandbox.running.wait()  # a frozen process does nothing
        assert self._session is not None
        async with self._session.request(
            method, self.base + path, data=body, headers=dict(headers or {})
        ) as resp:
            data = await resp.read()
            return resp.status, dict(resp.headers), data

    # ------------------------------------------------------------------ Runtime API

    async def next(self) -> Invocation:
        status, headers, body = await self.request("GET", f"{RAPI}/invocation/next")
        assert status == 200, (status, body)
        return Invocation(headers["Lambda-Runtime-Aws-Request-Id"], body, headers)

    async def respond(self, request_id: str, body: bytes) -> int:
        status, _, _ = await self.request("POST", f"{RAPI}/invocation/{request_id}/response", body)
        return status

    async def fail(self, request_id: str, error_type: str, message: str) -> int:
        body = json.dumps({"errorType": error_type, "errorMessage": message}).encode()
        status, _, _ = await self.request(
            "POST",
            f"{RAPI}/invocation/{request_id}/error",
            body,
            {"Lambda-Runtime-Function-Error-Type": error_type},
        )
        return status

    async def init_error(self, error_type: str, message: str) -> int:
        body = json.dumps({"errorType": error_type, "errorMessage": message}).encode()
        status, _, _ = await self.request(
            "POST", f"{RAPI}/init/error", body, {"Lambda-Runtime-Function-Error-Type": error_type}
        )
        return status

    # ------------------------------------------------------------------ Extensions API

    async def register(self, events: Sequence[str] = ("INVOKE", "SHUTDOWN")) -> dict[str, Any]:
        status, headers, body = await self.request(
            "POST",
            f"{EXT}/register",
            json.dumps({"events": list(events)}).encode(),
            {"Lambda-Extension-Name": self.name},
        )
        assert status == 200, (status, body)
        self.ext_id = headers["Lambda-Extension-Identifier"]
        result: dict[str, Any] = json.loads(body)
        return result

    async def ext_next(self) -> dict[str, Any]:
        status, _, body = await self.request(
            "GET", f"{EXT}/event/next", headers={"Lambda-Extension-Identifier": self.ext_id}
        )
        assert status == 200, (status, body)
        event: dict[str, Any] = json.loads(body)
        return event

    async def ext_error(self, kind: str, error_type: str) -> int:
        status, _, _ = await self.request(
            "POST",
            f"{EXT}/{kind}/error",
            b"{}",
            {
                "Lambda-Extension-Identifier": self.ext_id,
                "Lambda-Extension-Function-Error-Type": error_type,
            },
        )
        return status


@dataclass
class _Live:
    proc: FakeProcess
    task: asyncio.Task[None]
    killed_by: int | None = None


class FakeSandbox:
    """One sandbox: a loopback socket for the in-sandbox APIs and scripted processes."""

    def __init__(
        self, backend: FakeBackend, spec: SandboxSpec, on_log: LogSink, on_exit: ExitSink
    ) -> None:
        self.backend = backend
        self.spec = spec
        self.on_log = on_log
        self._on_exit = on_exit
        #: what the environment did to this sandbox, in order: ("spawn", role, name),
        #: ("signal", name, signum), ("freeze",), ("thaw",), ("kill_all",),
        #: ("prepare_restart",), ("destroy",)
        self.ops: list[tuple[object, ...]] = []
        self._op_added = asyncio.Event()
        #: every process that ended, in order
        self.exits: list[ProcessExit] = []
        self.memory_peak = 0
        self.oom_count = 0
        self.destroyed = False
        #: set while not frozen
        self.running = asyncio.Event()
        self.running.set()
        self._live: dict[int, _Live] = {}
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        sock.listen(64)
        sock.setblocking(False)
        self._sock = sock
        tmp = backend.root / spec.env_id / "tmp"
        tmp.mkdir(parents=True, exist_ok=True)
        self.tmp_dir = tmp
        self._view = SandboxView(
            task_root=str(spec.code_dir),
            opt_dir=str(backend.root / spec.env_id / "opt"),
            runtime_dir="/var/runtime",
            lang_dir="/var/lang",
            tmp_dir=str(tmp),
            runtime_api=f"127.0.0.1:{sock.getsockname()[1]}",
        )

    def __repr__(self) -> str:
        return f"FakeSandbox({self.spec.env_id!r}, live={self.live_names()})"

    # ------------------------------------------------------------------ queries for tests

    def live_names(self) -> list[str]:
        return sorted(live.proc.name for live in self._live.values())

    def count(self, *op: object) -> int:
        return sum(1 for o in self.ops if o[: len(op)] == op)

    async def wait_op(self, *op: object, times: int = 1) -> None:
        """Until ``op`` (a prefix, e.g. ``"freeze"``) was done ``times`` times."""
        while self.count(*op) < times:
            self._op_added.clear()
            await self._op_added.wait()

    def _record(self, *op: object) -> None:
        self.ops.append(op)
        self._op_added.set()

    @property
    def frozen(self) -> bool:
        return not self.running.is_set()

    # ------------------------------------------------------------------ Sandbox

    @property
    def view(self) -> SandboxView:
        return self._view

    @property
    def runtime_api_socket(self) -> socket.socket:
        return self._sock

    def socket_inside(self, family: int = socket.AF_INET) -> socket.socket:
        return socket.socket(family, socket.SOCK_STREAM)

    async def spawn(
        self,
        role: ProcessRole,
        name: str,
        argv: Sequence[str],
        env: Mapping[str, str],
        cwd: str,
    ) -> int:
        if self.destroyed:
            raise SandboxError("sandbox destroyed")
        self._record("spawn", role, name)
        script = self.backend.script_for(role, name)
        if script is None:
            raise SpawnError(f"{argv[0]}: no such file or directory")
        pid = next(_pids)
        proc = FakeProcess(self, pid, role, name, argv, env)
        task = asyncio.create_task(self._run(proc, script), name=f"fake-{name}-{pid}")
        self._live[pid] = _Live(proc, task)
        return pid

    async def _run(self, proc: FakeProcess, script: Script) -> None:
        code: int | None = 0
        sig: int | None = None
        try:
            async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None)) as s:
                proc._session = s
                try:
                    code = (await script(proc)) or 0
                except Killed as k:
                    code, sig = None, k.sig
                except asyncio.CancelledError:
                    live = self._live.get(proc.pid)
                    code, sig = None, (live.killed_by if live else None) or signal.SIGKILL
                except Exception as e:  # a script bug shows as a crash with its message
                    proc.print(f"fake process failed: {e!r}")
                    code = 1
        finally:
            self._live.pop(proc.pid, None)
            ended = ProcessExit(proc.pid, proc.role, proc.name, code, sig)
            self.exits.append(ended)
            self._on_exit(ended)

    def _kill(self, pid: int, sig: int) -> asyncio.Task[None] | None:
        """Deliver a fatal signal; the exit is reported later, as a reaper would."""
        live = self._live.get(pid)
        if live is None:
            return None
        if live.killed_by is None:
            live.killed_by = sig
        live.task.cancel()
        return live.task

    async def _kill_and_wait(self) -> None:
        tasks = [t for pid in list(self._live) if (t := self._kill(pid, signal.SIGKILL))]
        await asyncio.gather(*tasks, return_exceptions=True)

    async def signal(self, pid: int, sig: int) -> None:
        live = self._live.get(pid)
        self._record("signal", live.proc.name if live else pid, sig)
        if live is None:
            return
        if sig == signal.SIGTERM and live.proc.on_sigterm is not None:
            live.proc.on_sigterm()
            return
        if sig in (signal.SIGKILL, signal.SIGTERM):
            self._kill(pid, sig)

    async def kill_all(self) -> None:
        self._record("kill_all")
        self.running.set()
        await self._kill_and_wait()

    async def prepare_restart(self) -> None:
        self._record("prepare_restart")

    def freeze(self) -> None:
        self._record("freeze")
        self.running.clear()

    def thaw(self) -> None:
        self._record("thaw")
        self.running.set()

    def memory_peak_bytes(self) -> int:
        return self.memory_peak

    def oom_kills(self) -> int:
        return self.oom_count

    async def destroy(self) -> None:
        if self.destroyed:
            return
        self._record("destroy")
        await self._kill_and_wait()
        self.destroyed = True
        self._sock.close()


class FakeBackend:
    """Makes :class:`FakeSandbox` es whose runtime and extensions run the scripts set here.

    ``runtime`` and ``extensions`` are read at each spawn, so a test may change what the
    next Init starts.  An extension is launched only if the function has a layer with
    ``extensions/<name>`` (see :func:`extension_layer`), as the environment finds them.
    """

    def __init__(
        self,
        root: Path,
        runtime: Script | None = None,
        extensions: Mapping[str, Script] | None = None,
    ) -> None:
        self.root = root
        self.runtime = runtime
        self.extensions: dict[str, Script] = dict(extensions or {})
        self.sandboxes: list[FakeSandbox] = []
        #: raised by the next ``create`` (a backend failure), then cleared
        self.fail_next_create: Exception | None = None
        self._marks: dict[str, asyncio.Event] = {}

    def _mark_event(self, name: str) -> asyncio.Event:
        return self._marks.setdefault(name, asyncio.Event())

    def mark(self, name: str) -> None:
        """A script says it reached a point (e.g. ``"hanging"``): tests wait on it."""
        self._mark_event(name).set()

    async def reached(self, name: str) -> None:
        """Until a script marked ``name`` (then the mark is spent)."""
        await self._mark_event(name).wait()
        del self._marks[name]

    def script_for(self, role: ProcessRole, name: str) -> Script | None:
        if role is ProcessRole.RUNTIME:
            return self.runtime
        return self.extensions.get(name)

    def info(self) -> BackendInfo:
        return BackendInfo(backend="fake", isolation="none", cgroup="none", network="host")

    async def create(self, spec: SandboxSpec, on_log: LogSink, on_exit: ExitSink) -> FakeSandbox:
        if self.fail_next_create is not None:
            e, self.fail_next_create = self.fail_next_create, None
            raise e
        sb = FakeSandbox(self, spec, on_log, on_exit)
        self.sandboxes.append(sb)
        return sb

    async def close(self) -> None:
        for sb in self.sandboxes:
            await sb.destroy()

    def spare_view(self) -> SandboxView | None:
        return None

    def expect_runtime(
        self,
        runtime_dir: Path | None,
        lang_dir: Path | None,
        env: Mapping[str, str],
        lang_layers: Sequence[Path] = (),
    ) -> None:
        pass


@dataclass
class FakeLauncher:
    """Plans a runtime at ``/var/runtime/bootstrap`` with the Runtime API address."""

    runtime_version: str = "python:3.12.v1"
    #: (errorType, detail): the runtime cannot be started at all (e.g. no bootstrap)
    entrypoint_error: tuple[str, str] | None = None
    plans: list[str] = field(default_factory=list)

    async def mounts(self, function: FunctionRecord) -> RuntimeMounts:
        return RuntimeMounts(
            runtime_dir=None,
            lang_dir=None,
            runtime_version=self.runtime_version,
            runtime_version_arn=f"arn:aws:lambda:us-east-1::runtime:{self.runtime_version}",
        )

    def plan(
        self, function: FunctionRecord, view: SandboxView, log_stream: str, init_type: str
    ) -> LaunchPlan:
        self.plans.append(init_type)
        env = {
            "AWS_LAMBDA_RUNTIME_API": view.runtime_api,
            "AWS_LAMBDA_INITIALIZATION_TYPE": init_type,
            **function.environment,
        }
        return LaunchPlan(
            ["/var/runtime/bootstrap"], env, view.task_root, entrypoint_error=self.entrypoint_error
        )

    def extension_env(
        self, function: FunctionRecord, view: SandboxView, init_type: str
    ) -> Mapping[str, str]:
        return {"AWS_LAMBDA_RUNTIME_API": view.runtime_api}

    async def with_debugger(
        self, plan: LaunchPlan, function: FunctionRecord, view: SandboxView, port: int
    ) -> LaunchPlan:
        return plan


def extension_layer(root: Path, *names: str) -> Path:
    """A layer folder with ``extensions/<name>`` files, as the environment looks for them."""
    d = root / "layer-ext"
    (d / "extensions").mkdir(parents=True, exist_ok=True)
    for name in names:
        (d / "extensions" / name).write_text("#!/bin/sh\n")
    return d


# ---------------------------------------------------------------------- scripts


def answering(reply: Callable[[bytes], bytes] = lambda payload: payload) -> Script:
    """A runtime that inits, then answers every invoke with ``reply(payload)``."""

    async def run(p: FakeProcess) -> int:
        while True:
            inv = await p.next()
            await p.respond(inv.request_id, reply(inv.payload))

    return run


def exits_in_init(code: int = 1, output: str = "") -> Script:
    async def run(p: FakeProcess) -> int:
        if output:
            p.print(output)
        return code

    return run


def exits_in_invoke(code: int = 1) -> Script:
    """Inits, takes an event and exits without answering."""

    async def run(p: FakeProcess) -> int:
        await p.next()
        return code

    return run


def hangs_in_init() -> Script:
    """Never calls next; marks ``"hanging"``."""

    async def run(p: FakeProcess) -> int:
        p.mark("hanging")
        await asyncio.Event().wait()
        return 0

    return run


def hangs_in_invoke() -> Script:
    """Takes an event and never answers; marks ``"hanging"`` once it holds the event."""

    async def run(p: FakeProcess) -> int:
        await p.next()
        p.mark("hanging")
        await asyncio.Event().wait()
        return 0

    return run


def reports_init_error(error_type: str = "Runtime.ImportModuleError", message: str = "") -> Script:
    """Posts /init/error, then exits 1 as awslambdaric does."""

    async def run(p: FakeProcess) -> int:
        await p.init_error(error_type, message or "Unable to import module 'app'")
        return 1

    return run


def extension(
    events: Sequence[str] = ("INVOKE", "SHUTDOWN"),
    on_event: Callable[[dict[str, Any]], Awaitable[None]] | None = None,
) -> Script:
    """An external extension that registers, then calls next until SHUTDOWN (then exits 0)."""

    async def run(p: FakeProcess) -> int:
        await p.register(events)
        while True:
            event = await p.ext_next()
            if on_event is not None:
                await on_event(event)
            if event.get("eventType") == "SHUTDOWN":
                return 0

    return run
