"""External extensions shipped in layers: Extensions, Telemetry and Logs APIs end to end.

Every extension here is our own, written against AWS's documentation: Python
ones using only the standard library, and a bash one using curl.  They are
published with PublishLayerVersion and attached with CreateFunction.
"""

from __future__ import annotations

import http.server
import json
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from tests.integration.harness import (
    Server,
    create,
    free_port,
    invoke,
    make_zip,
    unique,
)

pytestmark = pytest.mark.integration

EXT_LIB = r"""
import json, os, sys, time, urllib.request

API = os.environ["AWS_LAMBDA_RUNTIME_API"]
NAME = os.path.basename(sys.argv[0])


def call(method, path, body=None, headers=None):
    req = urllib.request.Request(f"http://{API}{path}", data=body, method=method,
                                 headers=headers or {})
    try:
        with urllib.request.urlopen(req) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def register(events, features=""):
    hdrs = {"Lambda-Extension-Name": NAME}
    if features:
        hdrs["Lambda-Extension-Accept-Feature"] = features
    st, h, body = call("POST", "/2020-01-01/extension/register",
                       json.dumps({"events": events}).encode(), hdrs)
    return st, h.get("Lambda-Extension-Identifier"), json.loads(body)


def next_event(ext_id):
    st, h, body = call("GET", "/2020-01-01/extension/event/next",
                       headers={"Lambda-Extension-Identifier": ext_id})
    return json.loads(body), h


def record(path, obj):
    with open(path, "a") as f:
        f.write(json.dumps(obj) + "\n")


def report_to_host(obj):
    port = os.environ.get("HOST_REPORT_PORT")
    if not port:
        return
    req = urllib.request.Request(f"http://host.lambdalet.internal:{port}/",
                                 data=json.dumps(obj).encode(), method="POST")
    urllib.request.urlopen(req, timeout=2).read()
"""

RECORDER = r"""#!/usr/bin/env python3
import sys
sys.path.insert(0, "/opt/lib")
from extlib import *

st, ext_id, body = register(["INVOKE", "SHUTDOWN"], "accountId")
record("/tmp/ext-events.jsonl", {"registered": body, "status": st, "id": ext_id})
while True:
    ev, headers = next_event(ext_id)
    ev["_eventIdHeader"] = headers.get("Lambda-Extension-Event-Identifier")
    record("/tmp/ext-events.jsonl", ev)
    if ev["eventType"] == "SHUTDOWN":
        report_to_host(ev)
        sys.exit(0)
"""

TELEMETRY_LISTENER = r"""#!/usr/bin/env python3
import http.server, json, os, sys, threading
sys.path.insert(0, "/opt/lib")
from extlib import *

PORT = int(os.environ.get("LISTENER_PORT", "4243"))
API_KIND = os.environ.get("LISTENER_API", "telemetry")


class H(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        data = self.rfile.read(int(self.headers["Content-Length"]))
        with open("/tmp/telemetry.jsonl", "a") as f:
            f.write(data.decode() + "\n")
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()
        if os.environ.get("HOST_REPORT_PORT"):
            report_to_host({"batch": json.loads(data)})

    def log_message(self, *a):
        pass


srv = http.server.ThreadingHTTPServer(("sandbox.localdomain", PORT), H)
threading.Thread(target=srv.serve_forever, daemon=True).start()
st, ext_id, _ = register(["INVOKE", "SHUTDOWN"])
if API_KIND == "telemetry":
    sub = {"schemaVersion": "2022-12-13", "types": ["platform", "function", "extension"],
           "buffering": {"maxItems": 1000, "maxBytes": 262144, "timeoutMs": 25},
           "destination": {"protocol": "HTTP", "URI": f"http://sandbox.localdomain:{PORT}"}}
    path = "/2022-07-01/telemetry"
else:
    sub = {"schemaVersion": "2021-03-18", "types": ["platform", "function"],
           "buffering": {"maxItems": 1000, "maxBytes": 262144, "timeoutMs": 25},
           "destination": {"protocol": "HTTP", "URI": f"http://sandbox:{PORT}/logs"}}
    path = "/2020-08-15/logs"
st, _, body = call("PUT", path, json.dumps(sub).encode(),
                   {"Lambda-Extension-Identifier": ext_id, "Content-Type": "application/json"})
print(f"listener subscribed: {st} {body.decode()}", flush=True)
while True:
    ev, _ = next_event(ext_id)
    if ev["eventType"] == "SHUTDOWN":
        import time
        time.sleep(0.3)  # let the last batch arrive, then go
        sys.exit(0)
"""

BASH_EXT = r"""#!/bin/bash
set -euo pipefail
NAME=$(basename "$0")
API="http://${AWS_LAMBDA_RUNTIME_API}/2020-01-01/extension"
H=$(mktemp)
curl -sS -D "$H" -XPOST "$API/register" -H "Lambda-Extension-Name: $NAME" \
  -d '{"events":["INVOKE","SHUTDOWN"]}' >/dev/null
ID=$(grep -Fi Lambda-Extension-Identifier "$H" | tr -d '[:space:]' | cut -d: -f2)
echo "bash extension registered as $ID"
while true; do
  EV=$(curl -sS "$API/event/next" -H "Lambda-Extension-Identifier: $ID")
  echo "$EV" >> /tmp/bash-ext.jsonl
  echo "bash extension got $(echo "$EV" | cut -c1-40)"
  case "$EV" in *SHUTDOWN*) exit 0 ;; esac
done
"""

SLOW_AFTER_INVOKE = r"""#!/usr/bin/env python3
import sys, time
sys.path.insert(0, "/opt/lib")
from extlib import *
st, ext_id, _ = register(["INVOKE"])
while True:
    ev, _ = next_event(ext_id)
    time.sleep(float(open("/opt/slow-seconds").read()))
"""

CRASHER = r"""#!/usr/bin/env python3
import os, sys, time
sys.path.insert(0, "/opt/lib")
from extlib import *
st, ext_id, _ = register(["INVOKE"])
while True:
    ev, _ = next_event(ext_id)
    for _ in range(20):
        if os.path.exists("/tmp/crash-now"):
            os.unlink("/tmp/crash-now")
            os._exit(7)
        time.sleep(0.05)
"""

NEVER_REGISTERS = "#!/bin/sh\nsleep 600\n"

IGNORES_SHUTDOWN = r"""#!/usr/bin/env python3
import sys, time
sys.path.insert(0, "/opt/lib")
from extlib import *
st, ext_id, _ = register(["SHUTDOWN"])
ev, _ = next_event(ext_id)
report_to_host({"got": ev, "at": time.time()})
time.sleep(600)
"""

HANDLER = r"""
import json, os, time
def handler(event, context):
    time.sleep(event.get("sleep", 0))
    if event.get("crash"):
        open("/tmp/crash-now", "w").close()
        time.sleep(2)
    out = {"request_id": context.aws_request_id}
    for name in ("ext-events.jsonl", "telemetry.jsonl", "bash-ext.jsonl"):
        p = "/tmp/" + name
        out[name] = [json.loads(l) for l in open(p)] if os.path.exists(p) else []
    return out
"""


def layer(lam: Any, files: dict[str, str], executable: tuple[str, ...]) -> str:
    files = {"lib/extlib.py": EXT_LIB, **files}
    resp = lam.publish_layer_version(
        LayerName=unique("ext"), Content={"ZipFile": make_zip(files, executable)}
    )
    return str(resp["LayerVersionArn"])


def ext_layer(lam: Any, name: str, script: str, extra: dict[str, str] | None = None) -> str:
    return layer(lam, {f"extensions/{name}": script, **(extra or {})}, (f"extensions/{name}",))


class Recorder:
    """A loopback HTTP listener on the host that extensions report to."""

    def __init__(self) -> None:
        self.posts: list[Any] = []
        self.times: list[float] = []
        outer = self

        class H(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                data = self.rfile.read(int(self.headers["Content-Length"]))
                outer.posts.append(json.loads(data))
                outer.times.append(time.time())
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *a: object) -> None:
                pass

        self.port = free_port()
        self.srv = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), H)
        self.thread = threading.Thread(target=self.srv.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.srv.shutdown()
        self.srv.server_close()

    def wait_for(self, pred: Any, timeout: float = 10) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for p in list(self.posts):
                if pred(p):
                    return p
            time.sleep(0.05)
        raise AssertionError(f"nothing matched in {self.posts}")


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    r = Recorder()
    yield r
    r.close()


def function_log(server: Server, name: str) -> str:
    return server.function_log(name)


def test_extension_registers_and_receives_invoke_events(lam: Any, server: Server) -> None:
    arn = ext_layer(lam, "recorder", RECORDER)
    name = create(lam, {"app.py": HANDLER}, Layers=[arn])
    first = invoke(lam, name)
    assert first.function_error is None, first.payload
    second = invoke(lam, name, {"sleep": 0.5})
    events = second.json()["ext-events.jsonl"]
    reg = events[0]
    assert reg["status"] == 200
    assert reg["registered"] == {
        "functionName": name,
        "functionVersion": "$LATEST",
        "handler": "app.handler",
        "accountId": "123456789012",
    }
    invokes = [e for e in events if e.get("eventType") == "INVOKE"]
    assert [e["requestId"] for e in invokes] == [first.request_id, second.request_id]
    inv = invokes[0]
    assert inv["invokedFunctionArn"] == f"arn:aws:lambda:us-east-1:123456789012:function:{name}"
    assert inv["tracing"]["type"] == "X-Amzn-Trace-Id"
    assert inv["tracing"]["value"].startswith("Root=1-")
    assert abs(inv["deadlineMs"] - time.time() * 1000) < 10_000
    assert inv["_eventIdHeader"] == first.request_id
    log = function_log(server, name)
    assert "EXTENSION\tName: recorder\tState: Ready\tEvents: [INVOKE, SHUTDOWN]" in log
    assert log.index("INIT_START") < log.index("EXTENSION\t") < log.index("START RequestId")


def test_bash_extension_with_curl(lam: Any) -> None:
    arn = ext_layer(lam, "bash-ext", BASH_EXT)
    name = create(lam, {"app.py": HANDLER}, Layers=[arn])
    first = invoke(lam, name)
    assert first.function_error is None, first.payload
    # the extension writes its event down concurrently with the handler: give it a moment
    out = invoke(lam, name, {"sleep": 0.5}).json()
    got = [e["requestId"] for e in out["bash-ext.jsonl"]]
    assert got == [first.request_id, out["request_id"]]


def test_telemetry_listener_sees_every_record_in_order(lam: Any, server: Server) -> None:
    arn = ext_layer(lam, "listener", TELEMETRY_LISTENER)
    name = create(lam, {"app.py": HANDLER}, Layers=[arn], MemorySize=256)
    first = invoke(lam, name)
    assert first.function_error is None, first.payload
    assert (
        "TELEMETRY\tName: listener\tState: Subscribed\tTypes: [Platform, Function, Extension]"
        in function_log(server, name)
    )
    invoke(lam, name, {"sleep": 0.3})
    out = invoke(lam, name, {"sleep": 0.3}).json()
    events = [e for batch in out["telemetry.jsonl"] for e in batch]
    types = [e["type"] for e in events]
    # Init, in order, delivered though it happened before the subscription
    assert types.index("platform.initStart") < types.index("platform.telemetrySubscription")
    assert types.index("platform.telemetrySubscription") < types.index("platform.initRuntimeDone")
    assert types.index("platform.initRuntimeDone") < types.index("platform.initReport")
    init_start = next(e for e in events if e["type"] == "platform.initStart")["record"]
    assert init_start["initializationType"] == "on-demand"
    assert init_start["phase"] == "init"
    assert init_start["functionName"] == name
    ext_events = [e["record"] for e in events if e["type"] == "platform.extension"]
    assert {"name": "listener", "state": "Ready", "events": ["INVOKE", "SHUTDOWN"]} in ext_events
    assert any(
        "listener subscribed: 200" in e["record"] for e in events if e["type"] == "extension"
    )
    # the first invoke, start to report
    mine = [
        e
        for e in events
        if isinstance(e["record"], dict) and e["record"].get("requestId") == first.request_id
    ]
    assert [e["type"] for e in mine] == [
        "platform.start",
        "platform.runtimeDone",
        "platform.report",
    ]
    start, done, report = (e["record"] for e in mine)
    assert start["version"] == "$LATEST"
    assert done["status"] == "success"
    assert done["metrics"]["producedBytes"] == len(first.payload)
    assert done["metrics"]["durationMs"] >= 0
    m = report["metrics"]
    assert report["status"] == "success"
    assert m["memorySizeMB"] == 256
    assert 0 < m["maxMemoryUsedMB"] <= 256
    assert m["billedDurationMs"] >= m["durationMs"]
    assert "initDurationMs" in m
    for e in events:
        assert e["time"].endswith("Z") and len(e["time"]) == 24, e["time"]


def test_logs_api_subscriber(lam: Any) -> None:
    arn = ext_layer(lam, "logs-listener", TELEMETRY_LISTENER)
    code = HANDLER.replace(
        "def handler(event, context):",
        "def handler(event, context):\n    print('function says hello')",
    )
    name = create(
        lam, {"app.py": code}, Layers=[arn], Environment={"Variables": {"LISTENER_API": "logs"}}
    )
    first = invoke(lam, name)
    invoke(lam, name, {"sleep": 0.3})
    out = invoke(lam, name, {"sleep": 0.3}).json()
    events = [e for batch in out["telemetry.jsonl"] for e in batch]
    types = {e["type"] for e in events}
    assert "platform.initStart" not in types and "platform.telemetrySubscription" not in types
    mine = [
        e
        for e in events
        if isinstance(e["record"], dict) and e["record"].get("requestId") == first.request_id
    ]
    assert [e["type"] for e in mine] == [
        "platform.start",
        "platform.runtimeDone",
        "platform.end",
        "platform.report",
    ]
    assert set(mine[3]["record"]) == {"requestId", "metrics"}
    assert mine[1]["record"] == {"requestId": first.request_id, "status": "success"}
    assert any(e["type"] == "function" and e["record"] == "function says hello\n" for e in events)


def test_slow_extension_does_not_hold_the_caller_but_counts_in_the_report(
    lam: Any, server: Server
) -> None:
    arn = layer(
        lam, {"extensions/slow": SLOW_AFTER_INVOKE, "slow-seconds": "1.5"}, ("extensions/slow",)
    )
    name = create(lam, {"app.py": HANDLER}, Layers=[arn], Timeout=10)
    invoke(lam, name, tail=False)  # cold start out of the way
    r = invoke(lam, name, tail=False)
    # the caller has its answer while the extension still works: the invoke's REPORT (written
    # when the extension calls next, 1.5 s after the answer) is not there yet
    assert f"REPORT RequestId: {r.request_id}" not in server.function_log(name), (
        "the caller waited for the extension"
    )
    assert r.function_error is None
    deadline = time.monotonic() + 10
    while f"REPORT RequestId: {r.request_id}" not in server.function_log(name):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    line = next(
        x
        for x in server.function_log(name).splitlines()
        if x.startswith(f"REPORT RequestId: {r.request_id}")
    )
    duration = float(line.split("Duration: ")[1].split(" ms")[0])
    assert duration >= 1500, line

    # the function timeout covers the extension's post-invoke work
    short = create(lam, {"app.py": HANDLER}, Layers=[arn], Timeout=1)
    invoke(lam, short, tail=False)
    t = invoke(lam, short, tail=True)
    assert t.function_error is None, "the runtime's answer stands"
    assert "Status: timeout" in t.log, t.log


def test_extension_crash_mid_invoke_resets(lam: Any, server: Server) -> None:
    arn = ext_layer(lam, "crasher", CRASHER)
    name = create(lam, {"app.py": HANDLER}, Layers=[arn], Timeout=10)
    assert invoke(lam, name).function_error is None
    # the extension's post-invoke wait: one environment, its invoke phase over
    server.wait_environments(name, "Idle")
    r = invoke(lam, name, {"crash": True})
    assert r.function_error == "Unhandled"
    body = r.json()
    assert body["errorType"] == "Extension.Crash", body
    assert "Error Type: Extension.Crash" in r.log, r.log
    # reset (NeedsInit) and back in the pool: its invoke is counted as it settles, after the
    # reset (the state alone shows while the runc backend still pre-starts the runtime)
    deadline = time.monotonic() + 20
    while [(e["state"], e["invocations"]) for e in server.environments(name)] != [("NeedsInit", 2)]:
        assert time.monotonic() < deadline, server.environments(name)
        time.sleep(0.02)
    # the reset environment re-runs Init inside the next invoke
    again = invoke(lam, name)
    assert again.function_error is None, again.payload
    assert "INIT_START" in again.log and "Init Duration" not in again.log, again.log


def test_extension_that_never_registers_fails_init(short_limits_server: Server) -> None:
    lam = short_limits_server.client()
    arn = ext_layer(lam, "silent", NEVER_REGISTERS)
    name = create(lam, {"app.py": HANDLER}, Layers=[arn], Timeout=2)
    r = invoke(lam, name)
    assert r.function_error == "Unhandled"
    assert r.json()["errorType"] == "Sandbox.Timedout"
    # the Init limit (2 s on this server), then the 2 s function timeout for the
    # suppressed init
    log = short_limits_server.function_log(name)
    assert "Phase: init\tStatus: timeout" in log, log
    assert "INIT_REPORT" in r.log and "Phase: invoke\tStatus: timeout" in r.log, r.log


def test_two_environments_bind_the_same_port(lam: Any, server: Server) -> None:
    arn = ext_layer(lam, "listener", TELEMETRY_LISTENER)
    name = create(lam, {"app.py": HANDLER}, Layers=[arn], Timeout=10)
    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(lambda _: invoke(lam, name, {"sleep": 1}), range(2)))
    for r in results:
        assert r.function_error is None, r.payload
    assert function_log(server, name).count("listener subscribed: 200") == 2


def test_shutdown_events_and_deadline(short_limits_server: Server, recorder: Recorder) -> None:
    lam = short_limits_server.client()
    env = {"Variables": {"HOST_REPORT_PORT": str(recorder.port)}}
    rec = ext_layer(lam, "recorder", RECORDER)
    name = create(lam, {"app.py": HANDLER}, Layers=[rec], Environment=env, Timeout=1)
    assert invoke(lam, name).function_error is None
    # idle spin-down after 1 s: SHUTDOWN with reason spindown
    ev = recorder.wait_for(lambda p: p.get("eventType") == "SHUTDOWN")
    assert ev["shutdownReason"] == "spindown"
    assert 0 < ev["deadlineMs"] - time.time() * 1000 <= 2100

    # a timeout resets the environment: SHUTDOWN with reason timeout
    recorder.posts.clear()
    t = invoke(lam, name, {"sleep": 3})
    assert t.json()["errorType"] == "Sandbox.Timedout"
    ev = recorder.wait_for(lambda p: p.get("eventType") == "SHUTDOWN")
    assert ev["shutdownReason"] == "timeout"

    # an extension that ignores SHUTDOWN is killed at the deadline
    recorder.posts.clear()
    ign = ext_layer(lam, "stubborn", IGNORES_SHUTDOWN)
    name2 = create(lam, {"app.py": HANDLER}, Layers=[ign], Environment=env)
    assert invoke(lam, name2).function_error is None
    got = recorder.wait_for(lambda p: "got" in p)
    deadline_s = got["got"]["deadlineMs"] / 1000
    admin = f"{short_limits_server.url}/lambdalet/admin/environments"
    import urllib.request

    while True:
        with urllib.request.urlopen(admin) as r:
            if not json.loads(r.read())["Environments"]:
                break
        assert time.time() < deadline_s + 3, "the stubborn extension was not killed"
        time.sleep(0.05)
    assert time.time() >= deadline_s - 0.2, "killed before its SHUTDOWN deadline"


def test_extensions_api_errors(lam: Any) -> None:
    script = r"""#!/usr/bin/env python3
import json, sys, uuid
sys.path.insert(0, "/opt/lib")
from extlib import *
out = {}
out["no_id"] = call("GET", "/2020-01-01/extension/event/next")[0:1]
out["bad_id"] = json.loads(call("GET", "/2020-01-01/extension/event/next",
                                headers={"Lambda-Extension-Identifier": "nope"})[2])["errorType"]
out["unknown_id"] = json.loads(call("GET", "/2020-01-01/extension/event/next",
    headers={"Lambda-Extension-Identifier": str(uuid.uuid4())})[2])["errorType"]
st, h, b = call("POST", "/2020-01-01/extension/register", b'{"events":["BOGUS"]}',
                {"Lambda-Extension-Name": NAME})
out["bad_event"] = [st, json.loads(b)["errorType"]]
st, ext_id, _ = register(["INVOKE"])
st2, h2, b2 = call("POST", "/2020-01-01/extension/register", b'{"events":[]}',
                   {"Lambda-Extension-Name": NAME})
out["duplicate"] = [st2, json.loads(b2)["errorType"]]
st3, _, b3 = call("POST", "/2020-01-01/extension/exit/error", b"",
                  {"Lambda-Extension-Identifier": ext_id})
out["missing_type"] = [st3, json.loads(b3)["errorType"]]
st4, _, b4 = call("PUT", "/2022-07-01/telemetry", b'{"schemaVersion":"1999-01-01"}',
                  {"Lambda-Extension-Identifier": ext_id})
out["bad_subscription"] = [st4, json.loads(b4)["errorType"]]
record("/tmp/ext-events.jsonl", out)
while True:
    next_event(ext_id)
"""
    arn = ext_layer(lam, "prober", script)
    name = create(lam, {"app.py": HANDLER}, Layers=[arn])
    r = invoke(lam, name)
    assert r.function_error is None, r.payload
    out = r.json()["ext-events.jsonl"][0]
    assert out["no_id"] == [403]
    assert out["bad_id"] == "Extension.InvalidExtensionIdentifier"
    assert out["unknown_id"] == "Extension.UnknownExtensionIdentifier"
    assert out["bad_event"] == [403, "Extension.InvalidEventType"]
    assert out["duplicate"] == [403, "Extension.InvalidExtensionState"]
    assert out["missing_type"] == [403, "Extension.MissingHeader"]
    assert out["bad_subscription"] == [400, "ValidationError"]


INTERNAL = r"""
import json, os, threading, urllib.request, urllib.error

API = os.environ["AWS_LAMBDA_RUNTIME_API"]
SEEN = []


def _call(method, path, body=None, headers=None):
    req = urllib.request.Request(f"http://{API}{path}", data=body, method=method,
                                 headers=headers or {})
    try:
        with urllib.request.urlopen(req) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


REFUSED = _call("POST", "/2020-01-01/extension/register", b'{"events":["SHUTDOWN"]}',
                {"Lambda-Extension-Name": "in-process-agent"})
STATUS, HEADERS, BODY = _call("POST", "/2020-01-01/extension/register", b'{"events":["INVOKE"]}',
                              {"Lambda-Extension-Name": "in-process-agent"})
EXT_ID = HEADERS["Lambda-Extension-Identifier"]


def _loop():
    while True:
        _, _, ev = _call("GET", "/2020-01-01/extension/event/next",
                         headers={"Lambda-Extension-Identifier": EXT_ID})
        SEEN.append(json.loads(ev)["requestId"])


threading.Thread(target=_loop, daemon=True).start()


def handler(event, context):
    import time
    time.sleep(0.2)
    return {"refused": [REFUSED[0], json.loads(REFUSED[2])["errorType"]], "status": STATUS,
            "seen": list(SEEN), "me": context.aws_request_id}
"""


def test_internal_extension_registers_from_the_runtime(lam: Any) -> None:
    name = create(lam, {"app.py": INTERNAL})
    r = invoke(lam, name)
    assert r.function_error is None, r.payload
    out = r.json()
    assert out["status"] == 200
    assert out["refused"] == [403, "Extension.InvalidEventType"]
    assert out["seen"] == [out["me"]]
    r2 = invoke(lam, name)
    assert r2.json()["seen"] == [out["me"], r2.json()["me"]]


INIT_FAILS = r"""#!/usr/bin/env python3
import sys
sys.path.insert(0, "/opt/lib")
from extlib import *
st, ext_id, _ = register(["INVOKE", "SHUTDOWN"])
call("POST", "/2020-01-01/extension/init/error", b'{"errorMessage":"no config","errorType":"X"}',
     {"Lambda-Extension-Identifier": ext_id,
      "Lambda-Extension-Function-Error-Type": "Extension.ConfigMissing"})
sys.exit(1)
"""


def test_extension_init_error_fails_init(lam: Any) -> None:
    arn = ext_layer(lam, "needs-config", INIT_FAILS)
    name = create(lam, {"app.py": HANDLER}, Layers=[arn])
    r = invoke(lam, name)
    assert r.function_error == "Unhandled"
    body = r.json()
    assert body["errorType"] == "Extension.InitError", body
    assert body["errorMessage"].startswith(f"RequestId: {r.request_id} Error: ")
    assert "Phase: invoke\tStatus: error\tError Type: Extension.InitError" in r.log, r.log


def test_last_batch_reaches_a_subscriber_at_shutdown(
    short_limits_server: Server, recorder: Recorder
) -> None:
    lam = short_limits_server.client()
    arn = ext_layer(lam, "listener", TELEMETRY_LISTENER)
    env = {"Variables": {"HOST_REPORT_PORT": str(recorder.port)}}
    name = create(lam, {"app.py": HANDLER}, Layers=[arn], Environment=env)
    r = invoke(lam, name)
    assert r.function_error is None, r.payload

    def has_report(post: Any) -> bool:
        return any(
            e["type"] == "platform.report" and e["record"]["requestId"] == r.request_id
            for e in post.get("batch", [])
        )

    # frozen right after the invoke, the report goes out when the environment is
    # thawed for its spin-down, before SHUTDOWN
    post = recorder.wait_for(has_report, timeout=10)
    report = next(e for e in post["batch"] if e["type"] == "platform.report")["record"]
    assert report["status"] == "success"
    assert [s["name"] for s in report["spans"]] == ["extensionOverhead"]
    done = next(
        e["record"]
        for p in recorder.posts
        for e in p.get("batch", [])
        if e["type"] == "platform.runtimeDone" and e["record"]["requestId"] == r.request_id
    )
    assert [s["name"] for s in done["spans"]] == [
        "responseLatency",
        "responseDuration",
        "runtimeOverhead",
    ]
    assert all(s["durationMs"] >= 0 and s["start"].endswith("Z") for s in done["spans"])


EXIT_ERROR = r"""#!/usr/bin/env python3
import os, sys, time
sys.path.insert(0, "/opt/lib")
from extlib import *
st, ext_id, _ = register(["INVOKE", "SHUTDOWN"])
while True:
    ev, _ = next_event(ext_id)
    if ev["eventType"] == "SHUTDOWN":
        report_to_host(ev)
        sys.exit(0)
    for _ in range(40):
        if os.path.exists("/tmp/give-up"):
            os.unlink("/tmp/give-up")
            call("POST", "/2020-01-01/extension/exit/error", b'{"errorMessage":"lost my socket"}',
                 {"Lambda-Extension-Identifier": ext_id,
                  "Lambda-Extension-Function-Error-Type": "Extension.SocketGone"})
            sys.exit(3)
        time.sleep(0.025)
"""

TCP_LISTENER = r"""#!/usr/bin/env python3
import json, socket, sys, threading
sys.path.insert(0, "/opt/lib")
from extlib import *

srv = socket.socket()
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("sandbox.localdomain", 4244))
srv.listen(4)


def serve():
    while True:
        conn, _ = srv.accept()
        f = conn.makefile("rb")
        for line in f:
            with open("/tmp/telemetry.jsonl", "a") as out:
                out.write(json.dumps([json.loads(line)]) + "\n")


threading.Thread(target=serve, daemon=True).start()
st, ext_id, _ = register(["INVOKE"])
sub = {"schemaVersion": "2025-01-29", "types": ["platform"],
       "buffering": {"timeoutMs": 25},
       "destination": {"protocol": "TCP", "port": 4244}}
st, _, body = call("PUT", "/2022-07-01/telemetry", json.dumps(sub).encode(),
                   {"Lambda-Extension-Identifier": ext_id, "Content-Type": "application/json"})
print(f"tcp listener subscribed: {st}", flush=True)
while True:
    next_event(ext_id)
"""


def test_exit_error_resets_with_failure(short_limits_server: Server, recorder: Recorder) -> None:
    lam = short_limits_server.client()
    arn = ext_layer(lam, "quitter", EXIT_ERROR)
    env = {"Variables": {"HOST_REPORT_PORT": str(recorder.port)}}
    code = HANDLER.replace(
        '    if event.get("crash"):',
        "    if event.get(\"give_up\"):\n        open('/tmp/give-up', 'w').close()\n"
        '        time.sleep(2)\n    if event.get("crash"):',
    )
    name = create(lam, {"app.py": code}, Layers=[arn], Environment=env, Timeout=10)
    assert invoke(lam, name).function_error is None
    r = invoke(lam, name, {"give_up": True})
    assert r.function_error == "Unhandled", r.payload
    body = r.json()
    assert body["errorType"] == "Extension.ExitError", body
    assert "Error Type: Extension.ExitError" in r.log, r.log


def test_telemetry_over_tcp(lam: Any) -> None:
    arn = ext_layer(lam, "tcp-listener", TCP_LISTENER)
    name = create(lam, {"app.py": HANDLER}, Layers=[arn])
    first = invoke(lam, name)
    assert first.function_error is None, first.payload
    out = invoke(lam, name, {"sleep": 0.3}).json()
    events = [e for batch in out["telemetry.jsonl"] for e in batch]
    types = [e["type"] for e in events]
    assert "platform.initStart" in types and "platform.telemetrySubscription" in types
    assert any(
        e["type"] == "platform.report" and e["record"]["requestId"] == first.request_id
        for e in events
    ), types
