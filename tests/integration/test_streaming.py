"""Response streaming: Node's ``awslambda.streamifyResponse`` on the real aws-lambda-ric,
read with boto3's ``invoke_with_response_stream`` (AWS's event-stream framing)."""

from __future__ import annotations

import base64
import http.server
import json
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from tests.integration.harness import HOST_PY, create, invoke
from tests.integration.node import node_runtimes  # noqa: F401  (fixture)

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("node_runtimes")]

STREAMER = """
import http from 'node:http';
export const handler = awslambda.streamifyResponse(async (event, responseStream, context) => {
  responseStream.setContentType('text/plain');
  responseStream.write('first;');
  if (event.gate) {
    // wait until the test says so: it opens the gate only after it has read 'first;'
    await new Promise((resolve, reject) => {
      http.get(event.gate, (r) => { r.resume(); r.on('end', resolve); }).on('error', reject);
    });
  }
  if (event.sleep) await new Promise((resolve) => setTimeout(resolve, event.sleep * 1000));
  responseStream.write('second;');
  if (event.fail) throw new Error('mid-stream failure');
  responseStream.end();
});
"""

PRELUDE = """
export const handler = awslambda.streamifyResponse(async (event, responseStream) => {
  const out = awslambda.HttpResponseStream.from(responseStream, {
    statusCode: 201, headers: {'x-a': 'b'},
  });
  out.write('body');
  out.end();
});
"""


class Gate:
    """An HTTP endpoint on the host's loopback whose GET returns once the test opens it."""

    def __init__(self) -> None:
        self.opened = threading.Event()
        self.waiting = threading.Event()
        #: the GET returned (opened, or given up after 30 s): the function went on
        self.released = threading.Event()
        gate = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                gate.waiting.set()
                gate.opened.wait(30)
                gate.released.set()
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        # the host's loopback as the sandbox sees it (sandbox/netns.py)
        return f"http://host.lambdalet.internal:{self.server.server_port}/gate"


@pytest.fixture
def gate() -> Iterator[Gate]:
    g = Gate()
    try:
        yield g
    finally:
        g.opened.set()
        g.server.shutdown()
        g.server.server_close()


def _stream(lam: Any, name: str, event: Any, **kwargs: Any) -> tuple[dict[str, Any], Any]:
    resp = lam.invoke_with_response_stream(
        FunctionName=name, Payload=json.dumps(event).encode(), **kwargs
    )
    return resp, iter(resp["EventStream"])


@pytest.mark.parametrize("runtime", ["nodejs22.x", "nodejs24.x"])
def test_first_chunk_arrives_while_the_function_still_runs(
    lam: Any, gate: Gate, runtime: str
) -> None:
    name = create(
        lam, {"index.mjs": STREAMER}, handler="index.handler", runtime=runtime, Timeout=20
    )
    resp, events = _stream(lam, name, {"gate": gate.url}, LogType="Tail")
    assert resp["StatusCode"] == 200
    assert resp["ResponseStreamContentType"] == "text/plain"
    assert resp["ExecutedVersion"] == "$LATEST"
    first = next(events)
    assert first == {"PayloadChunk": {"Payload": b"first;"}}
    # the function is blocked on the gate (its GET arrived and has not returned), which
    # opens only now: the chunk was streamed, not held until the function went on
    assert gate.waiting.wait(30)
    assert not gate.released.is_set()
    gate.opened.set()
    rest = list(events)
    assert rest[:-1] == [{"PayloadChunk": {"Payload": b"second;"}}]
    complete = rest[-1]["InvokeComplete"]
    assert "ErrorCode" not in complete
    log = base64.b64decode(complete["LogResult"]).decode()
    assert "REPORT RequestId:" in log, log


def test_error_mid_stream_ends_with_invoke_complete_error(lam: Any) -> None:
    name = create(lam, {"index.mjs": STREAMER}, handler="index.handler", runtime="nodejs22.x")
    _, events = _stream(lam, name, {"fail": True})
    got = list(events)
    assert b"".join(e["PayloadChunk"]["Payload"] for e in got[:-1]) == b"first;second;"
    complete = got[-1]["InvokeComplete"]
    assert complete["ErrorCode"] == "Error"
    details = json.loads(complete["ErrorDetails"])
    assert details["errorType"] == "Error" and details["errorMessage"] == "mid-stream failure"


def test_timeout_mid_stream(lam: Any) -> None:
    name = create(
        lam, {"index.mjs": STREAMER}, handler="index.handler", runtime="nodejs22.x", Timeout=1
    )
    _, events = _stream(lam, name, {"sleep": 5})
    got = list(events)
    assert got[0] == {"PayloadChunk": {"Payload": b"first;"}}
    assert got[-1]["InvokeComplete"]["ErrorCode"] == "Sandbox.Timedout"


def test_buffered_invoke_of_a_streaming_function(lam: Any) -> None:
    name = create(lam, {"index.mjs": STREAMER}, handler="index.handler", runtime="nodejs22.x")
    r = invoke(lam, name)
    assert r.function_error is None and r.payload == b"first;second;"
    r = invoke(lam, name, {"fail": True})
    assert r.function_error == "Unhandled"
    assert r.json()["errorMessage"] == "mid-stream failure"


def test_http_prelude_passes_through_unchanged(lam: Any) -> None:
    name = create(lam, {"index.mjs": PRELUDE}, handler="index.handler", runtime="nodejs22.x")
    resp, events = _stream(lam, name, {})
    assert (
        resp["ResponseStreamContentType"] == "application/vnd.awslambda.http-integration-response"
    )
    data = b"".join(e["PayloadChunk"]["Payload"] for e in events if "PayloadChunk" in e)
    prelude, _, body = data.partition(b"\0" * 8)
    assert json.loads(prelude) == {"statusCode": 201, "headers": {"x-a": "b"}}
    assert body == b"body"


def test_a_buffered_function_answers_in_one_chunk(lam: Any) -> None:
    code = (
        "def handler(event, context):\n"
        "    if event.get('boom'):\n"
        "        raise KeyError('k')\n"
        "    return {'whole': True}\n"
    )
    name = create(lam, {"app.py": code}, runtime=HOST_PY)
    resp, events = _stream(lam, name, {})
    assert resp["ResponseStreamContentType"] == "application/json"
    assert list(events) == [
        {"PayloadChunk": {"Payload": b'{"whole": true}'}},
        {"InvokeComplete": {}},
    ]
    _, events = _stream(lam, name, {"boom": True})
    (complete,) = list(events)
    assert complete["InvokeComplete"]["ErrorCode"] == "KeyError"


def test_service_errors_come_before_the_stream(lam: Any) -> None:
    with pytest.raises(lam.exceptions.ResourceNotFoundException):
        lam.invoke_with_response_stream(FunctionName="no-such-function-anywhere")
    name = create(lam, {"index.mjs": STREAMER}, handler="index.handler", runtime="nodejs22.x")
    resp = lam.invoke_with_response_stream(FunctionName=name, InvocationType="DryRun")
    assert resp["StatusCode"] == 204
    resp["EventStream"].close()
