"""The participants' processes in one sandbox: started, followed until they exit, and
what an exit means.

One :class:`Processes` per sandbox.  It starts the extensions found in
``/opt/extensions`` and the runtime (a failure to start is an
:class:`~lambdalet.env.failure.Answer` the Init phase reports), keeps a future per live
process for the Shutdown phase to wait on, and tells a runtime killed by the cgroup's
OOM killer (``Runtime.OutOfMemory``) from one that exited (``Runtime.ExitError``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

from lambdalet.env import failure as fl
from lambdalet.env import rapi_protocol as rp
from lambdalet.env.extensions import Extensions
from lambdalet.env.failure import Answer, AnswerKind
from lambdalet.env.launch import LaunchPlan
from lambdalet.env.outcome import ErrorType
from lambdalet.sandbox.base import ProcessExit, ProcessRole, Sandbox, SpawnError


class Processes:
    def __init__(self, sandbox: Sandbox) -> None:
        self.sandbox = sandbox
        self.runtime_pid: int | None = None
        self._exits: dict[int, asyncio.Future[ProcessExit]] = {}
        self._oom_seen = 0

    async def launch_extensions(
        self,
        names: list[str],
        env: Mapping[str, str],
        extensions: Extensions,
        request_id: str,
    ) -> Answer | None:
        """Start every extension, all at once, each in its own process group."""
        opt = self.sandbox.view.opt_dir
        for name in names:
            argv = [f"{opt}/extensions/{name}"]
            try:
                pid = await self.sandbox.spawn(ProcessRole.EXTENSION, name, argv, env, "/")
            except SpawnError as e:
                detail = f"extension {name}: {e}"
                return fl.crash(ErrorType.EXTENSION_LAUNCH_ERROR, request_id, detail)
            self._track(pid)
            extensions.launch(name, pid)
        return None

    async def start_runtime(self, plan: LaunchPlan, request_id: str) -> Answer | None:
        if plan.entrypoint_error is not None:
            etype, detail = plan.entrypoint_error
            body = rp.function_error(etype, request_id, detail)
            return Answer(AnswerKind.CRASH, error_type=etype, body=body)
        try:
            pid = await self.sandbox.spawn(
                ProcessRole.RUNTIME, "runtime", plan.argv, plan.env, plan.cwd
            )
        except SpawnError as e:
            return fl.crash(ErrorType.RUNTIME_INVALID_ENTRYPOINT, request_id, str(e))
        self.runtime_pid = pid
        self._track(pid)
        return None

    def _track(self, pid: int) -> None:
        self._exits[pid] = asyncio.get_running_loop().create_future()

    def exited(self, exit: ProcessExit) -> bool:
        """Note an exit; True when it was the current runtime's."""
        fut = self._exits.pop(exit.pid, None)
        if fut is not None and not fut.done():
            fut.set_result(exit)
        if exit.role is ProcessRole.RUNTIME and exit.pid == self.runtime_pid:
            self.runtime_pid = None
            return True
        return False

    def exit_of(self, pid: int) -> asyncio.Future[ProcessExit] | None:
        """Resolved when the process exits; None if it is not alive (as far as known)."""
        return self._exits.get(pid)

    def forget(self) -> None:
        """Everything in the sandbox was killed."""
        self._exits.clear()
        self.runtime_pid = None

    def exit_type(self) -> ErrorType:
        ooms = self.sandbox.oom_kills()
        if ooms > self._oom_seen:
            self._oom_seen = ooms
            return ErrorType.RUNTIME_OUT_OF_MEMORY
        return ErrorType.RUNTIME_EXIT_ERROR
