"""Warm and cold invoke latency through the AWS Lambda API, measured once.

    .venv/bin/python bench/latency.py [--warm 500] [--cold 20] [--backend auto]

Starts a real ``lambdalet serve`` on a free port with a fresh data dir, creates
no-op Python functions and measures, over one keep-alive HTTP connection:

* warm: sequential invokes of one function (its environment is reused);
* cold: CreateFunction + first invoke of a new function, each time;
* floor: a loopback round trip to a minimal stdlib HTTP server, same machine, same run.

Prints medians and p99 in milliseconds, and writes them as JSON with --json.
"""

from __future__ import annotations

import argparse
import base64
import http.client
import http.server
import io
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import zipfile
from pathlib import Path

HANDLER = "def handler(event, context):\n    return None\n"


def _zip() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("app.py", HANDLER)
    return buf.getvalue()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, round(p / 100 * (len(xs) - 1)))]


def _summary(xs: list[float]) -> dict[str, float]:
    return {"n": len(xs), "p50_ms": statistics.median(xs), "p99_ms": _pct(xs, 99)}


class _Conn:
    def __init__(self, port: int) -> None:
        self.c = http.client.HTTPConnection("127.0.0.1", port)
        self.c.connect()
        self.c.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def call(self, method: str, path: str, body: bytes = b"") -> tuple[int, bytes]:
        self.c.request(method, path, body=body, headers={"Content-Type": "application/json"})
        r = self.c.getresponse()
        return r.status, r.read()


def floor_rtt(n: int) -> list[float]:
    class H(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            self.send_response(200)
            self.send_header("Content-Length", "4")
            self.end_headers()
            self.wfile.write(b"null")

        def log_message(self, *a: object) -> None:
            pass

    class S(http.server.HTTPServer):
        def server_bind(self) -> None:
            self.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            super().server_bind()

    srv = S(("127.0.0.1", 0), H)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    conn = _Conn(srv.server_address[1])
    out = []
    for _ in range(n):
        t = time.perf_counter()
        conn.call("POST", "/", b"{}")
        out.append((time.perf_counter() - t) * 1000)
    srv.shutdown()
    return out


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--warm", type=int, default=500)
    ap.add_argument("--cold", type=int, default=20)
    ap.add_argument("--backend", default="auto")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()

    port = _free_port()
    data = Path(tempfile.mkdtemp(prefix="lambdalet-bench-"))
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "lambdalet.cli",
            "serve",
            "--port",
            str(port),
            "--data-dir",
            str(data),
            "--backend",
            args.backend,
            "--log-level",
            "WARNING",
        ],
    )
    try:
        for _ in range(600):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/2015-03-31/functions/", timeout=1)
                break
            except OSError:
                time.sleep(0.05)
        conn = _Conn(port)
        code = base64.b64encode(_zip()).decode()
        runtime = f"python{sys.version_info.major}.{sys.version_info.minor}"

        def create(name: str) -> None:
            body = json.dumps(
                {
                    "FunctionName": name,
                    "Runtime": runtime,
                    "Handler": "app.handler",
                    "Role": "arn:aws:iam::123456789012:role/r",
                    "Code": {"ZipFile": code},
                }
            ).encode()
            status, out = conn.call("POST", "/2015-03-31/functions", body)
            assert status == 201, out
            for _ in range(200):
                _st, cfg = conn.call("GET", f"/2015-03-31/functions/{name}/configuration")
                if json.loads(cfg).get("State") == "Active":
                    return
                time.sleep(0.001)

        def inv(name: str) -> None:
            status, out = conn.call("POST", f"/2015-03-31/functions/{name}/invocations", b"{}")
            assert status == 200 and out == b"null", (status, out)

        # warm-up: installs the runtime on first use, unpacks code
        create("warmup")
        inv("warmup")
        cold_create, cold_first = [], []
        for i in range(args.cold):
            name = f"cold{i}"
            t0 = time.perf_counter()
            create(name)
            t1 = time.perf_counter()
            inv(name)
            t2 = time.perf_counter()
            cold_create.append((t1 - t0) * 1000)
            cold_first.append((t2 - t1) * 1000)
        warm = []
        for _ in range(args.warm):
            t = time.perf_counter()
            inv("warmup")
            warm.append((time.perf_counter() - t) * 1000)
        floor = floor_rtt(args.warm)
        result = {
            "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0]},
            "floor_loopback_rtt": _summary(floor),
            "warm_invoke": _summary(warm),
            "cold_first_invoke": _summary(cold_first),
            "cold_create_plus_first_invoke": _summary(
                [a + b for a, b in zip(cold_create, cold_first, strict=True)]
            ),
        }
        for k, v in result.items():
            if k != "machine":
                print(f"{k:32s} n={v['n']:<5} p50={v['p50_ms']:8.3f} ms  p99={v['p99_ms']:8.3f} ms")
        if args.json:
            args.json.write_text(json.dumps(result, indent=2))
        return 0
    finally:
        proc.terminate()
        proc.wait(30)


if __name__ == "__main__":
    raise SystemExit(main())
