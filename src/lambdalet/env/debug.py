"""An environment whose runtime waits for a debugger, reachable from the host.

``lambdalet invoke --debug-port N`` (or the function setting ``LAMBDALET_DEBUG_PORT=N``)
starts the next environment with:

* Python: ``LAMBDALET_DEBUG_PORT`` and ``LAMBDALET_DEBUGPY_PATH`` in the runtime's
  environment; ``lambdalet_launch`` then calls ``debugpy.listen(("127.0.0.1", N))`` and
  ``debugpy.wait_for_client()`` before the Runtime Interface Client starts.
* Node.js: ``LAMBDALET_DEBUG_PORT``; the runtime's ``index.mjs`` then opens the inspector
  on ``127.0.0.1:N`` and calls ``inspector.waitForDebugger()`` before the Runtime Interface
  Client loads: it goes on when a debugger sends ``Runtime.runIfWaitingForDebugger``,
  which VS Code's attach sends once its breakpoints are set.  Not ``--inspect-brk``: that
  would stop on the first line of lambdalet's ``index.mjs`` and the user would have to
  continue past code that is not theirs; not ``NODE_OPTIONS`` either, which the function
  may set itself (``--enable-source-maps``) and which child processes would inherit.

Inside a sandbox the debugger listens on the sandbox's own loopback, in its network
namespace; :class:`PortForward` listens on the host's ``127.0.0.1:N`` and connects each
client through a socket created inside the namespace (as telemetry does), so no port of
the sandbox is exposed beyond the host's loopback.  Without a network namespace (the
``process`` backend) the debugger's own port is the host's, and nothing is forwarded.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Callable, Mapping

log = logging.getLogger(__name__)

DEBUG_PORT_VAR = "LAMBDALET_DEBUG_PORT"
DEBUGPY_PATH_VAR = "LAMBDALET_DEBUGPY_PATH"
#: how long Init and each invoke may take while someone steps through them (Lambda's max)
DEBUG_TIMEOUT_S = 900.0


def port_setting(environment: Mapping[str, str]) -> int | None:
    """The function setting: ``LAMBDALET_DEBUG_PORT`` in its environment variables."""
    raw = environment.get(DEBUG_PORT_VAR, "")
    if raw.isdigit() and 0 < int(raw) < 65536:
        return int(raw)
    return None


def runtime_debug_env(runtime: str, port: int, debugpy_path: str | None) -> dict[str, str]:
    """What a runtime's environment gains to wait for a debugger on ``port``."""
    if runtime.startswith("python"):
        env = {DEBUG_PORT_VAR: str(port)}
        if debugpy_path:
            env[DEBUGPY_PATH_VAR] = debugpy_path
        return env
    if runtime.startswith("nodejs"):
        return {DEBUG_PORT_VAR: str(port)}
    return {}


class PortForward:
    """``127.0.0.1:port`` on the host to ``127.0.0.1:port`` inside a network namespace."""

    def __init__(self, port: int, socket_inside: Callable[[], socket.socket]) -> None:
        self.port = port
        self._socket_inside = socket_inside
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)
        log.info("debugger port 127.0.0.1:%d forwarded into the sandbox", self.port)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        inner_writer: asyncio.StreamWriter | None = None
        try:
            sock = self._socket_inside()
            sock.setblocking(False)
            try:
                await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", self.port))
            except OSError:
                sock.close()
                raise
            inner_reader, inner_writer = await asyncio.open_connection(sock=sock)
            await asyncio.gather(
                _pipe(reader, inner_writer), _pipe(inner_reader, writer), return_exceptions=True
            )
        except OSError as e:
            log.warning("debugger connection to port %d inside the sandbox: %s", self.port, e)
        finally:
            for w in (writer, inner_writer):
                if w is not None:
                    w.close()
            self._tasks.discard(task)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                async with asyncio.timeout(2.0):
                    await self._server.wait_closed()
            self._server = None


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    finally:
        with contextlib.suppress(Exception):
            writer.write_eof()
