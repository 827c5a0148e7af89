"""The Runtime API's HTTP layer against real sockets: bodies, headers and error answers.

The target here is a small recording double: what these tests check is the
HTTP handling (chunked bodies with trailers, ``Expect: 100-continue``, headers
near 1 MiB, size limits), not the lifecycle, which the integration tests drive
through real runtimes.
"""

from __future__ import annotations

import asyncio
import json
import socket
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

import lambdalet.runtimes
from lambdalet.env import rapi_protocol as rp
from lambdalet.env.runtime_api import InSandboxServer, RapiRefused, build_app

EVENT = rp.Event(
    "req-1", b'{"k":1}', 1700000000000, "arn:aws:lambda:us-east-1:1:function:f", "Root=1"
)


class Sink:
    def __init__(self, calls: list[tuple[str, object]]) -> None:
        self.calls = calls

    def write(self, chunk: bytes) -> None:
        self.calls.append(("chunk", chunk))

    async def room(self) -> None:
        pass

    def end(self, error_type: str | None, error_body: bytes | None) -> None:
        self.calls.append(("end", (error_type, error_body)))


class Target:
    def __init__(self) -> None:
        self.calls: list[tuple[str, object]] = []

    async def runtime_next(self) -> rp.Event:
        self.calls.append(("next", None))
        return EVENT

    def runtime_answer_started(self) -> None:
        pass

    def runtime_response(self, request_id: str, body: bytes, content_type: str | None) -> None:
        if request_id != "req-1":
            raise RapiRefused(rp.INVALID_REQUEST_ID)
        if any(c[0] == "response" for c in self.calls):
            raise RapiRefused(
                rp.invalid_transition("RuntimeResponseSentState", "InvocationResponse")
            )
        self.calls.append(("response", body))

    def runtime_response_too_large(self, request_id: str) -> None:
        self.calls.append(("too_large", request_id))

    def runtime_stream_start(self, request_id: str, content_type: str | None) -> Sink:
        if request_id != "req-1":
            raise RapiRefused(rp.INVALID_REQUEST_ID)
        self.calls.append(("stream", content_type))
        return Sink(self.calls)

    def runtime_error(
        self, request_id: str, body: bytes, content_type: str | None, error_type: str | None
    ) -> None:
        self.calls.append(("error", (body, error_type)))

    def runtime_init_error(
        self, body: bytes, content_type: str | None, error_type: str | None
    ) -> None:
        self.calls.append(("init_error", (body, error_type)))

    def runtime_function_init(self) -> None:
        self.calls.append(("function_init", None))


@pytest.fixture
async def server() -> AsyncIterator[tuple[Target, int]]:
    target = Target()
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    srv = InSandboxServer(build_app(target), sock)
    await srv.start()
    try:
        yield target, sock.getsockname()[1]
    finally:
        await srv.close()
        sock.close()


async def raw(port: int, data: bytes, *, read_interim: bool = False) -> tuple[int, bytes, bytes]:
    """Send raw bytes; return (status, headers, body) of the final response."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(data)
        await writer.drain()
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head.split(b" ", 2)[1])
            if status != 100:
                break
        length = 0
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":", 1)[1])
        body = await reader.readexactly(length)
        return status, head, body
    finally:
        writer.close()
        await writer.wait_closed()


async def test_next_returns_event_with_headers(server: tuple[Target, int]) -> None:
    _, port = server
    status, head, body = await raw(
        port, b"GET /2018-06-01/runtime/invocation/next HTTP/1.1\r\nHost: x\r\n\r\n"
    )
    assert status == 200 and body == b'{"k":1}'
    assert b"Lambda-Runtime-Aws-Request-Id: req-1\r\n" in head
    assert b"Content-Type: application/json" in head


async def test_chunked_body_with_trailers(server: tuple[Target, int]) -> None:
    target, port = server
    req = (
        b"POST /2018-06-01/runtime/invocation/req-1/response HTTP/1.1\r\nHost: x\r\n"
        b"Transfer-Encoding: chunked\r\nTrailer: Lambda-Runtime-Function-Error-Type\r\n\r\n"
        b"5\r\nhello\r\n6\r\n world\r\n0\r\nLambda-Runtime-Function-Error-Type: X\r\n\r\n"
    )
    status, _, body = await raw(port, req)
    assert status == 202 and json.loads(body) == {"status": "OK"}
    assert ("response", b"hello world") in target.calls


STREAM_HEAD = (
    b"POST /2018-06-01/runtime/invocation/req-1/response HTTP/1.1\r\nHost: x\r\n"
    b"Lambda-Runtime-Function-Response-Mode: streaming\r\nContent-Type: text/plain\r\n"
    b"Transfer-Encoding: chunked\r\n"
    b"Trailer: Lambda-Runtime-Function-Error-Type, Lambda-Runtime-Function-Error-Body\r\n\r\n"
)


async def test_streamed_response_passes_chunks_and_trailer_error(
    server: tuple[Target, int],
) -> None:
    target, port = server
    req = (
        STREAM_HEAD + b"6\r\nfirst;\r\n7\r\nsecond;\r\n0\r\n"
        b"Lambda-Runtime-Function-Error-Type: Error\r\n"
        b"Lambda-Runtime-Function-Error-Body: eyJlcnJvclR5cGUiOiJFcnJvciJ9\r\n\r\n"
    )
    status, _, body = await raw(port, req)
    assert status == 202 and json.loads(body) == {"status": "OK"}
    assert target.calls[0] == ("stream", "text/plain")
    assert b"".join(c[1] for c in target.calls if c[0] == "chunk") == b"first;second;"  # type: ignore[misc]
    assert target.calls[-1] == ("end", ("Error", b'{"errorType":"Error"}'))


async def test_streamed_response_without_trailers_ends_clean(
    server: tuple[Target, int],
) -> None:
    target, port = server
    status, _, _ = await raw(port, STREAM_HEAD + b"2\r\nok\r\n0\r\n\r\n")
    assert status == 202
    assert target.calls[-1] == ("end", (None, None))


async def test_expect_100_continue(server: tuple[Target, int]) -> None:
    target, port = server
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(
        b"POST /2018-06-01/runtime/invocation/req-1/response HTTP/1.1\r\nHost: x\r\n"
        b"Content-Length: 4\r\nExpect: 100-continue\r\n\r\n"
    )
    await writer.drain()
    interim = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    assert interim.startswith(b"HTTP/1.1 100")
    writer.write(b"abcd")
    final = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    assert final.startswith(b"HTTP/1.1 202")
    writer.close()
    await writer.wait_closed()
    assert ("response", b"abcd") in target.calls


async def test_header_near_one_mib_is_accepted(server: tuple[Target, int]) -> None:
    target, port = server
    cause = b"x" * (1024 * 1024 - 100)
    req = (
        b"POST /2018-06-01/runtime/invocation/req-1/error HTTP/1.1\r\nHost: x\r\n"
        b"Lambda-Runtime-Function-XRay-Error-Cause: " + cause + b"\r\n"
        b"Lambda-Runtime-Function-Error-Type: Runtime.Foo\r\nContent-Length: 2\r\n\r\n{}"
    )
    status, _, _ = await raw(port, req)
    assert status == 202
    assert ("error", (b"{}", "Runtime.Foo")) in target.calls


async def test_oversize_response_is_413_and_reported(server: tuple[Target, int]) -> None:
    target, port = server
    size = rp.MAX_RESPONSE_BYTES + 1
    head = (
        b"POST /2018-06-01/runtime/invocation/req-1/response HTTP/1.1\r\nHost: x\r\n"
        b"Content-Length: " + str(size).encode() + b"\r\n\r\n"
    )
    status, _, body = await raw(port, head + b"a" * size)
    assert status == 413
    assert json.loads(body)["errorType"] == "RequestEntityTooLarge"
    assert ("too_large", "req-1") in target.calls


async def test_exact_limit_is_accepted(server: tuple[Target, int]) -> None:
    _, port = server
    size = rp.MAX_RESPONSE_BYTES
    head = (
        b"POST /2018-06-01/runtime/invocation/req-1/response HTTP/1.1\r\nHost: x\r\n"
        b"Content-Length: " + str(size).encode() + b"\r\n\r\n"
    )
    status, _, _ = await raw(port, head + b"a" * size)
    assert status == 202


async def test_refusals_render_as_runtime_api_errors(server: tuple[Target, int]) -> None:
    _, port = server
    status, _, body = await raw(
        port,
        b"POST /2018-06-01/runtime/invocation/other/response HTTP/1.1\r\nHost: x\r\n"
        b"Content-Length: 0\r\n\r\n",
    )
    assert status == 400
    assert json.loads(body) == {
        "errorMessage": "Invalid request ID",
        "errorType": "InvalidRequestID",
    }
    ok = (
        b"POST /2018-06-01/runtime/invocation/req-1/response HTTP/1.1\r\nHost: x\r\n"
        b"Content-Length: 0\r\n\r\n"
    )
    assert (await raw(port, ok))[0] == 202
    status, _, body = await raw(port, ok)
    assert status == 403 and json.loads(body)["errorType"] == "InvalidStateTransition"


async def test_bad_response_mode(server: tuple[Target, int]) -> None:
    _, port = server
    status, _, body = await raw(
        port,
        b"POST /2018-06-01/runtime/invocation/req-1/response HTTP/1.1\r\nHost: x\r\n"
        b"Lambda-Runtime-Function-Response-Mode: sideways\r\nContent-Length: 0\r\n\r\n",
    )
    assert status == 400 and json.loads(body)["errorType"] == "InvalidFunctionResponseMode"


async def test_unknown_path_and_method(server: tuple[Target, int]) -> None:
    _, port = server
    assert (await raw(port, b"GET /nope HTTP/1.1\r\nHost: x\r\n\r\n"))[0] == 404
    status = (
        await raw(port, b"DELETE /2018-06-01/runtime/invocation/next HTTP/1.1\r\nHost: x\r\n\r\n")
    )[0]
    assert status == 405


async def test_function_init_mark_from_the_python_launcher(
    server: tuple[Target, int], tmp_path: Path
) -> None:
    """lambdalet_launch runs a package as ``python -m`` would and marks the handler import."""
    target, port = server
    fake = tmp_path / "awslambdaric"
    fake.mkdir()
    (fake / "__init__.py").write_text("")
    (fake / "__main__.py").write_text(
        "import importlib, json, sys\n"
        "before = 'socket' in sys.modules\n"
        "m = importlib.import_module('handler_mod')\n"
        "importlib.import_module('json')\n"
        "print(json.dumps({'argv': sys.argv, 'name': __name__, 'value': m.VALUE,\n"
        "    'socket': before or 'socket' in sys.modules,\n"
        "    'main': sorted(k for k in vars(sys.modules['__main__'])\n"
        "                   if not k.startswith('__'))}))\n"
    )
    (tmp_path / "handler_mod.py").write_text("VALUE = 7\n")
    launch = Path(lambdalet.runtimes.__file__).parent / "files" / "lambdalet_launch.py"
    (tmp_path / "lambdalet_launch.py").write_text(launch.read_text())
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "lambdalet_launch",
        "app.handler",
        cwd=tmp_path,
        env={"PYTHONPATH": str(tmp_path), "AWS_LAMBDA_RUNTIME_API": f"127.0.0.1:{port}"},
        stdout=asyncio.subprocess.PIPE,
    )
    out, _ = await proc.communicate()
    assert proc.returncode == 0
    seen = json.loads(out)
    assert seen["argv"] == [str(fake / "__main__.py"), "app.handler"]
    assert seen["name"] == "__main__" and seen["value"] == 7
    assert seen["socket"] is False  # the request's modules are gone again
    assert seen["main"] == ["before", "importlib", "json", "m", "sys"]
    assert target.calls.count(("function_init", None)) == 1
