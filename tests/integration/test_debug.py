"""``lambdalet invoke --debug-port``: the runtime waits for a real debugger, reached from
the host through the sandbox's network namespace.

The tests are the debuggers.  Python: the test speaks the Debug Adapter Protocol to
debugpy, as VS Code's "Remote Attach" does (initialize, attach, configurationDone,
threads), and the invoke, blocked until then, goes on.  Node.js: the test speaks the
Chrome DevTools Protocol to the inspector, as VS Code's "Attach" does (``/json/list``,
then the websocket: enable, set a breakpoint in the handler, run), stops in the handler,
changes the event and resumes; the invoke's answer carries the change.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import time
from typing import Any

import aiohttp

from tests.integration.harness import ROOT, Server, create, free_port, lam, server
from tests.integration.node import ensure_node

__all__ = ["lam", "server"]

HANDLER = """
def handler(event, context):
    answer = {"debugged": event.get("n")}
    return answer
"""

NODE_RUNTIME = "nodejs22.x"
#: the breakpoint goes on line 1 (0-based, as the DevTools Protocol counts)
NODE_HANDLER = """export const handler = async (event) => {
  const answer = { debugged: event.n };
  return answer;
};
"""


def invoke_cli(server: Server, name: str, payload: str, port: int) -> subprocess.Popen[str]:
    """``lambdalet invoke NAME --debug-port PORT --json`` against the test's server."""
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT / "src"),
        "NO_COLOR": "1",
        "AWS_ACCESS_KEY_ID": "x",
        "AWS_SECRET_ACCESS_KEY": "x",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    return subprocess.Popen(
        [sys.executable, "-m", "lambdalet.cli", "invoke", name, "--payload", payload,
         "--debug-port", str(port), "--json", "--endpoint", server.url],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip


class Dap:
    """A minimal Debug Adapter Protocol client."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buf = b""
        self.seq = 0

    def send(self, command: str, arguments: dict[str, Any] | None = None) -> int:
        self.seq += 1
        body = json.dumps(
            {"seq": self.seq, "type": "request", "command": command, "arguments": arguments or {}}
        ).encode()
        self.sock.sendall(b"Content-Length: %d\r\n\r\n" % len(body) + body)
        return self.seq

    def receive(self) -> dict[str, Any]:
        while b"\r\n\r\n" not in self.buf:
            self._fill()
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        length = int(head.split(b":")[1])
        while len(self.buf) < length:
            self._fill()
        body, self.buf = self.buf[:length], self.buf[length:]
        message: dict[str, Any] = json.loads(body)
        return message

    def _fill(self) -> None:
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionError("the debugger's port closed the connection")
        self.buf += chunk

    def until(self, want: Any) -> dict[str, Any]:
        while True:
            m = self.receive()
            if want(m):
                return m


def attach(port: int, deadline: float) -> Dap:
    """Connect, initialize and attach as VS Code does (until the ``initialized`` event),
    retrying until debugpy listens behind the forwarded port."""
    while True:
        sock = None
        try:
            sock = socket.create_connection(("127.0.0.1", port), timeout=5)
            dap = Dap(sock)
            dap.send("initialize", {"adapterID": "debugpy", "clientID": "lambdalet-test"})
            dap.until(lambda m: m.get("type") == "response" and m.get("request_seq") == 1)
            dap.send("attach", {"justMyCode": False})
            dap.until(lambda m: m.get("type") == "event" and m.get("event") == "initialized")
            return dap
        except (OSError, ConnectionError):
            if sock is not None:
                sock.close()
            assert time.monotonic() < deadline, "the debugger port never answered"
            time.sleep(0.3)


def test_invoke_waits_for_a_debugger_that_attaches_from_the_host(server: Server, lam: Any) -> None:
    name = create(lam, {"app.py": HANDLER})
    port = free_port()
    cli = invoke_cli(server, name, '{"n": 7}', port)
    try:
        # debugpy is installed into the runtime on first use: give pip its time
        try:
            dap = attach(port, time.monotonic() + 240)
        except AssertionError:
            cli.kill()
            _, err = cli.communicate()
            raise AssertionError(
                f"{err}\nfunction log: {server.function_log(name)}\nserver: {server.log_tail()}"
            ) from None
        # attached, not yet configured: the function is held; the debugger sees its threads
        assert cli.poll() is None, "the invoke did not wait for the debugger"
        threads_seq = dap.send("threads")
        threads = dap.until(
            lambda m: m.get("type") == "response" and m.get("request_seq") == threads_seq
        )
        assert threads["success"] and threads["body"]["threads"], threads
        dap.send("configurationDone")  # and the invoke goes on
        out, err = cli.communicate(timeout=120)
        dap.sock.close()
    finally:
        if cli.poll() is None:
            cli.kill()
            cli.communicate()
    assert cli.returncode == 0, err
    assert json.loads(out)["Payload"] == {"debugged": 7}
    assert f"waits for a debugger on 127.0.0.1:{port}" in err
    # the debugger's first install into the runtime: progress in the CLI and the server log
    assert "server: installing debugpy" in err, err
    assert (
        "debugpy ready in" in server.log_tail() or "debugpy ready in" in server.log_path.read_text()
    )
    log = server.function_log(name)
    # Init waited for the debugger: the invoke started only once it had attached
    assert log.index("waiting for a debugger") < log.index("lambdalet: debugger attached")
    assert log.index("lambdalet: debugger attached") < log.index("START RequestId"), log
    # the debugging environment is gone after its invoke: the next invoke is an ordinary one
    r = lam.invoke(FunctionName=name, Payload=b'{"n": 8}')
    assert json.loads(r["Payload"].read()) == {"debugged": 8}


class Cdp:
    """A minimal Chrome DevTools Protocol client over the inspector's websocket."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.id = 0
        self.events: list[dict[str, Any]] = []

    async def call(self, method: str, **params: Any) -> dict[str, Any]:
        self.id += 1
        await self.ws.send_json({"id": self.id, "method": method, "params": params})
        while True:
            m = await self.ws.receive_json()
            if m.get("id") == self.id:
                assert "error" not in m, (method, m)
                result: dict[str, Any] = m["result"]
                return result
            self.events.append(m)

    def script_url(self, script_id: str) -> str | None:
        """The URL of a script the debugger was told of (``Debugger.scriptParsed``)."""
        for m in self.events:
            if m.get("method") == "Debugger.scriptParsed" and m["params"]["scriptId"] == script_id:
                url: str = m["params"]["url"]
                return url
        return None

    async def event(self, method: str) -> dict[str, Any]:
        for i, m in enumerate(self.events):
            if m.get("method") == method:
                return self.events.pop(i)
        while True:
            m = await self.ws.receive_json()
            if m.get("method") == method:
                params: dict[str, Any] = m["params"]
                return params
            self.events.append(m)


async def inspector_targets(
    http: aiohttp.ClientSession, port: int, cli: subprocess.Popen[str]
) -> list[dict[str, Any]]:
    """``/json/list`` of the inspector behind the forwarded port, once it answers."""
    deadline = time.monotonic() + 120
    while True:
        try:
            async with http.get(f"http://127.0.0.1:{port}/json/list") as r:
                if r.status == 200:
                    targets: list[dict[str, Any]] = await r.json(content_type=None)
                    if targets:
                        return targets
        except (aiohttp.ClientError, OSError):
            pass
        assert cli.poll() is None, "the invoke ended without waiting for a debugger"
        assert time.monotonic() < deadline, "the inspector's port never answered"
        await asyncio.sleep(0.3)


async def debug_node_handler(port: int, cli: subprocess.Popen[str]) -> dict[str, Any]:
    """Attach as VS Code does, stop in the handler, change the event, resume."""
    async with aiohttp.ClientSession() as http:
        targets = await inspector_targets(http, port, cli)
        ws_url = targets[0]["webSocketDebuggerUrl"]
        # reachable from the host as the inspector names itself
        assert ws_url.startswith(f"ws://127.0.0.1:{port}/"), targets
        async with asyncio.timeout(120), http.ws_connect(ws_url, max_msg_size=0) as ws:
            cdp = Cdp(ws)
            await cdp.call("Runtime.enable")
            await cdp.call("Debugger.enable")
            bp = await cdp.call(
                "Debugger.setBreakpointByUrl", lineNumber=1, urlRegex=r"/var/task/app\.mjs$"
            )
            # the handler's file is not loaded yet: the runtime waits before the client runs
            assert bp["locations"] == [], bp
            assert cli.poll() is None, "the invoke did not wait for the debugger"
            await cdp.call("Runtime.runIfWaitingForDebugger")
            paused = await cdp.event("Debugger.paused")
            # the first stop is the handler's breakpoint (not the runtime's first line)
            assert paused["hitBreakpoints"] == [bp["breakpointId"]], paused
            frame = paused["callFrames"][0]
            assert frame["functionName"] == "handler", frame
            assert cdp.script_url(frame["location"]["scriptId"]) == "file:///var/task/app.mjs"
            assert cli.poll() is None, "the invoke answered while its handler was stopped"
            changed = await cdp.call(
                "Debugger.evaluateOnCallFrame",
                callFrameId=frame["callFrameId"],
                expression="event.n = event.n * 10",
            )
            await cdp.call("Debugger.resume")
            return changed


def test_node_invoke_waits_for_a_debugger_that_stops_in_the_handler(
    server: Server, lam: Any
) -> None:
    ensure_node(server, NODE_RUNTIME)
    name = create(lam, {"app.mjs": NODE_HANDLER}, handler="app.handler", runtime=NODE_RUNTIME)
    port = free_port()
    cli = invoke_cli(server, name, '{"n": 7}', port)
    try:
        try:
            changed = asyncio.run(debug_node_handler(port, cli))
        except (AssertionError, TimeoutError) as e:
            cli.kill()
            _, err = cli.communicate()
            raise AssertionError(
                f"{e!r}\n{err}\nfunction log: {server.function_log(name)}\n"
                f"server: {server.log_tail()}"
            ) from e
        out, err = cli.communicate(timeout=120)
    finally:
        if cli.poll() is None:
            cli.kill()
            cli.communicate()
    assert changed["result"]["value"] == 70, changed
    assert cli.returncode == 0, err
    # the debugger changed the event while the handler was stopped: the answer shows it
    assert json.loads(out)["Payload"] == {"debugged": 70}
    assert f"waits for a debugger on 127.0.0.1:{port}" in err
    log = server.function_log(name)
    assert log.index("lambdalet: waiting for a debugger") < log.index(
        "lambdalet: debugger attached"
    )
    assert log.index("lambdalet: debugger attached") < log.index("START RequestId"), log
    # the debugging environment is gone after its invoke: the next invoke is an ordinary one
    r = lam.invoke(FunctionName=name, Payload=b'{"n": 8}')
    assert json.loads(r["Payload"].read()) == {"debugged": 8}
