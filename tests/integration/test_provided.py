"""Custom runtimes: a bash + curl bootstrap talking to the Runtime API, as in AWS's tutorial."""

from __future__ import annotations

import time
from typing import Any

import pytest

from tests.integration.harness import Server, create, invoke

pytestmark = pytest.mark.integration

BOOTSTRAP = r"""#!/bin/bash
set -euo pipefail
source "$LAMBDA_TASK_ROOT/$(echo "$_HANDLER" | cut -d. -f1).sh"
while true; do
  HEADERS="$(mktemp)"
  EVENT_DATA=$(curl -sS -LD "$HEADERS" "http://${AWS_LAMBDA_RUNTIME_API}/2018-06-01/runtime/invocation/next")
  REQUEST_ID=$(grep -Fi Lambda-Runtime-Aws-Request-Id "$HEADERS" | tr -d '[:space:]' | cut -d: -f2)
  RESPONSE=$($(echo "$_HANDLER" | cut -d. -f2) "$EVENT_DATA")
  curl -sS "http://${AWS_LAMBDA_RUNTIME_API}/2018-06-01/runtime/invocation/$REQUEST_ID/response" \
    -d "$RESPONSE" >/dev/null
done
"""

FUNCTION = r"""
function handler () {
  EVENT_DATA=$1
  echo "$EVENT_DATA" 1>&2
  echo "Echoing request: '$EVENT_DATA'"
}
"""


@pytest.mark.parametrize("runtime", ["provided", "provided.al2", "provided.al2023"])
def test_bash_bootstrap(lam: Any, runtime: str) -> None:
    name = create(
        lam,
        {"bootstrap": BOOTSTRAP, "function.sh": FUNCTION},
        executable=("bootstrap",),
        runtime=runtime,
        handler="function.handler",
    )
    r = invoke(lam, name, {"hello": "world"})
    assert r.function_error is None, r.payload
    assert r.payload == b"""Echoing request: '{"hello": "world"}'"""
    assert '{"hello": "world"}' in r.log  # the function's stderr is in the log
    assert f"START RequestId: {r.request_id} Version: $LATEST" in r.log
    assert f"END RequestId: {r.request_id}" in r.log
    assert f"REPORT RequestId: {r.request_id}\tDuration: " in r.log
    again = invoke(lam, name, {"n": 2})
    assert again.payload == b"""Echoing request: '{"n": 2}'"""


def test_bootstrap_from_layer_and_missing_bootstrap(lam: Any) -> None:
    import io
    import zipfile

    missing = create(
        lam, {"function.sh": FUNCTION}, runtime="provided.al2023", handler="function.handler"
    )
    r = invoke(lam, missing)
    assert r.function_error == "Unhandled"
    body = r.json()
    assert body["errorType"] == "Runtime.InvalidEntrypoint"
    assert (
        "Couldn't find valid bootstrap(s): [/var/task/bootstrap /opt/bootstrap]"
        in (body["errorMessage"])
    )

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        info = zipfile.ZipInfo("bootstrap")
        info.external_attr = (0o100755) << 16
        zf.writestr(info, BOOTSTRAP)
    layer = lam.publish_layer_version(LayerName="bash-runtime", Content={"ZipFile": buf.getvalue()})
    name = create(
        lam,
        {"function.sh": FUNCTION},
        runtime="provided.al2023",
        handler="function.handler",
        Layers=[layer["LayerVersionArn"]],
    )
    r = invoke(lam, name, "x")
    assert r.payload == b"""Echoing request: '"x"'""", r.payload


def test_runtime_api_errors_from_inside(lam: Any, server: Server) -> None:
    """Wrong request id, a second response and a late init/error, as a real runtime sees them."""
    bootstrap = r"""#!/bin/bash
set -uo pipefail
API="http://${AWS_LAMBDA_RUNTIME_API}/2018-06-01/runtime"
while true; do
  H="$(mktemp)"
  curl -sS -D "$H" "$API/invocation/next" >/dev/null
  ID=$(grep -Fi Lambda-Runtime-Aws-Request-Id "$H" | tr -d '[:space:]' | cut -d: -f2)
  WRONG=$(curl -s -o /dev/null -w '%{http_code}' "$API/invocation/not-$ID/response" -d x)
  INITERR=$(curl -s -o /dev/null -w '%{http_code}' "$API/init/error" -d x)
  FIRST=$(curl -s -o /dev/null -w '%{http_code}' "$API/invocation/$ID/response" \
    -d "{\"wrong\":$WRONG,\"initerr\":$INITERR}")
  SECOND=$(curl -s "$API/invocation/$ID/response" -d again)
  echo "second: $SECOND" >&2
done
"""
    name = create(
        lam,
        {"bootstrap": bootstrap},
        executable=("bootstrap",),
        runtime="provided.al2023",
        handler="x.y",
    )
    r = invoke(lam, name)
    assert r.json() == {"wrong": 400, "initerr": 403}
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        text = server.function_log(name)
        if "second: " in text:
            break
        time.sleep(0.05)
    assert '"errorType": "InvalidStateTransition"' in text, text
