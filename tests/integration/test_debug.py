"""``lambdalet invoke --debug-port``: the runtime waits for a real debugger (debugpy),
reached from the host through the sandbox's network namespace.

The test is the debugger: it speaks the Debug Adapter Protocol to the port, as VS Code's
"Remote Attach" does (initialize, attach, configurationDone, threads), and the invoke,
blocked until then, goes on.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from typing import Any

from tests.integration.harness import ROOT, Server, create, free_port, lam, server

__all__ = ["lam", "server"]

HANDLER = """
def handler(event, context):
    answer = {"debugged": event.get("n")}
    return answer
"""


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
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT / "src"),
        "NO_COLOR": "1",
        "AWS_ACCESS_KEY_ID": "x",
        "AWS_SECRET_ACCESS_KEY": "x",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    cli = subprocess.Popen(
        [sys.executable, "-m", "lambdalet.cli", "invoke", name, "--payload", '{"n": 7}',
         "--debug-port", str(port), "--json", "--endpoint", server.url],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
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
