"""Function URLs in ``InvokeMode: RESPONSE_STREAM``: a real Node function using
``awslambda.streamifyResponse`` and ``HttpResponseStream.from``, read with http.client as
the body arrives."""

from __future__ import annotations

import http.client
import json
import urllib.parse
from collections.abc import Iterator
from typing import Any

import pytest

from tests.integration.harness import Server, create
from tests.integration.node import ensure_node
from tests.integration.test_streaming import Gate

pytestmark = pytest.mark.integration

RUNTIME = "nodejs22.x"

STREAMER = """
import http from 'node:http';
export const handler = awslambda.streamifyResponse(async (event, responseStream) => {
  const q = event.queryStringParameters || {};
  if (q.mode === 'fail-early') throw new Error('early');
  if (q.mode === 'plain') {
    responseStream.setContentType('text/plain');
    responseStream.write('plain;');
    responseStream.end();
    return;
  }
  const out = awslambda.HttpResponseStream.from(responseStream, {
    statusCode: 201,
    headers: {'content-type': 'text/event-stream', 'x-a': 'b'},
    cookies: ['c=1', 'd=2'],
  });
  out.write('first;');
  if (q.gate) {
    // the test opens the gate only after it has read 'first;'
    await new Promise((resolve, reject) => {
      http.get(q.gate, (r) => { r.resume(); r.on('end', resolve); }).on('error', reject);
    });
  }
  out.write('second;');
  if (q.mode === 'fail-late') throw new Error('late');
  out.end();
});
"""

BUFFERED = """
def handler(event, context):
    return {"statusCode": 404, "headers": {"x-a": "b"}, "body": "not read"}
"""


@pytest.fixture(scope="module")
def node(server: Server) -> None:
    ensure_node(server, RUNTIME)


@pytest.fixture
def gate() -> Iterator[Gate]:
    g = Gate()
    try:
        yield g
    finally:
        g.opened.set()
        g.server.shutdown()
        g.server.server_close()


def stream_url(lam: Any, name: str, **kwargs: Any) -> str:
    url: str = lam.create_function_url_config(
        FunctionName=name, AuthType="NONE", InvokeMode="RESPONSE_STREAM", **kwargs
    )["FunctionUrl"]
    lam.add_permission(
        FunctionName=name,
        StatementId="FunctionURLAllowPublicAccess",
        Action="lambda:InvokeFunctionUrl",
        Principal="*",
        FunctionUrlAuthType="NONE",
    )
    return url


class Client:
    """GETs with http.client, whose responses are read as the body arrives."""

    def __init__(self) -> None:
        self.connections: list[http.client.HTTPConnection] = []

    def get(
        self, url: str, query: dict[str, str], headers: dict[str, str] | None = None
    ) -> http.client.HTTPResponse:
        parts = urllib.parse.urlsplit(url)
        conn = http.client.HTTPConnection(parts.netloc, timeout=60)
        self.connections.append(conn)
        path = f"{parts.path}?{urllib.parse.urlencode(query)}"
        conn.request("GET", path, headers=headers or {})
        return conn.getresponse()


@pytest.fixture
def client() -> Iterator[Client]:
    c = Client()
    try:
        yield c
    finally:
        for conn in c.connections:
            conn.close()


@pytest.mark.usefixtures("node")
def test_streamed_url_answers_as_the_function_writes(lam: Any, gate: Gate, client: Client) -> None:
    name = create(
        lam, {"index.mjs": STREAMER}, handler="index.handler", runtime=RUNTIME, Timeout=60
    )
    url = stream_url(lam, name, Cors={"AllowOrigins": ["https://app.example"]})
    resp = client.get(url, {"gate": gate.url}, {"Origin": "https://app.example"})
    # status, headers and cookies from HttpResponseStream.from's prelude
    assert resp.status == 201
    assert resp.getheader("Content-Type") == "text/event-stream"
    assert resp.getheader("x-a") == "b"
    assert resp.headers.get_all("Set-Cookie") == ["c=1", "d=2"]
    assert resp.getheader("Transfer-Encoding") == "chunked"
    assert resp.getheader("Access-Control-Allow-Origin") == "https://app.example"
    assert resp.getheader("x-amzn-RequestId")
    assert resp.read(len(b"first;")) == b"first;"
    # the function is blocked on the gate, which opens only now: the body was streamed
    assert gate.waiting.wait(30) and not gate.released.is_set()
    gate.opened.set()
    assert resp.read() == b"second;"

    # no prelude: 200 with the function's content type
    resp = client.get(url, {"mode": "plain"})
    assert (resp.status, resp.getheader("Content-Type"), resp.read()) == (
        200,
        "text/plain",
        b"plain;",
    )
    # an error before the first byte is a 502, as in BUFFERED mode
    resp = client.get(url, {"mode": "fail-early"})
    assert (resp.status, resp.read()) == (502, b"Internal Server Error")
    # an error after it cuts the body off
    resp = client.get(url, {"mode": "fail-late"})
    assert resp.status == 201
    with pytest.raises(http.client.IncompleteRead) as cut:
        resp.read()
    assert cut.value.partial == b"first;second;"


def test_a_buffered_function_behind_a_streamed_url(lam: Any, client: Client) -> None:
    """As on AWS: the answer is the function's JSON as it is; statusCode is not read."""
    name = create(lam, {"app.py": BUFFERED})
    resp = client.get(stream_url(lam, name), {})
    assert resp.status == 200
    assert resp.getheader("Content-Type") == "application/json"
    assert json.loads(resp.read()) == {
        "statusCode": 404,
        "headers": {"x-a": "b"},
        "body": "not read",
    }
