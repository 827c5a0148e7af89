"""Container image functions in the benchmark (not in ``--tiny``: it needs buildah,
docker-registry and a C compiler, and builds an image).

A FROM-scratch image around the static probe runtime of the image tests is pushed to a
docker-registry on loopback; then, through the Lambda API:

image_create_to_active   CreateFunction until State Active (resolve, pull, unpack)
image_cold_first_invoke  the first invoke of a new function of an already pulled image
                         (no spare fits an image: the sandbox is built on demand)
image_warm_invoke        back-to-back invokes of one image function
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PROBE_C = ROOT / "tests/integration/images/probe.c"
TOOLS = ("buildah", "docker-registry", "skopeo", "umoci", "gcc")
DOCKERFILE = 'FROM scratch\nCOPY probe /bin/probe\nENTRYPOINT ["/bin/probe"]\nCMD ["a.b"]\n'


def missing_tools() -> list[str]:
    return [t for t in TOOLS if shutil.which(t) is None]


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _push_image(work: Path, port: int) -> str:
    ctx = work / "ctx"
    ctx.mkdir()
    subprocess.run(["gcc", "-static", "-O2", "-o", str(ctx / "probe"), str(PROBE_C)], check=True)
    (ctx / "Dockerfile").write_text(DOCKERFILE)
    bud = ["buildah", "--root", str(work / "st"), "--runroot", str(work / "run")]
    bud += ["--storage-driver", "vfs"]
    subprocess.run([*bud, "bud", "--quiet", "-t", "localhost/bench:v1", str(ctx)], check=True)
    uri = f"127.0.0.1:{port}/bench:v1"
    subprocess.run(
        [*bud, "push", "--quiet", "--tls-verify=false", "localhost/bench:v1", f"docker://{uri}"],
        check=True,
    )
    return uri


def measure(srv: Any, n: int, role: str) -> dict[str, Any]:
    """The image figures against the bench's running server ``srv`` (bench.run.Server)."""
    from bench.run import summary

    work = Path(tempfile.mkdtemp(prefix="lambdalet-bench-image-"))
    port = _free_port()
    (work / "reg.yml").write_text(
        "version: 0.1\nlog:\n  level: error\n"
        f"storage:\n  filesystem:\n    rootdirectory: {work / 'reg'}\n"
        f"http:\n  addr: 127.0.0.1:{port}\n"
    )
    reg = subprocess.Popen(
        ["docker-registry", "serve", str(work / "reg.yml")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        time.sleep(0.5)
        uri = _push_image(work, port)
        create_ms, cold_ms = [], []
        for i in range(n):
            name = f"image-{i}"
            body = {
                "FunctionName": name,
                "Role": role,
                "PackageType": "Image",
                "Code": {"ImageUri": uri},
            }
            t0 = time.perf_counter()
            st, out = srv.conn.call("POST", "/2015-03-31/functions", json.dumps(body).encode())
            assert st == 201, (st, out)
            while True:
                st, out = srv.conn.call("GET", f"/2015-03-31/functions/{name}/configuration")
                state = json.loads(out)["State"]
                if state != "Pending":
                    break
                time.sleep(0.002)
            assert state == "Active", out
            t1 = time.perf_counter()
            srv.invoke(name)
            t2 = time.perf_counter()
            create_ms.append((t1 - t0) * 1000)
            cold_ms.append((t2 - t1) * 1000)
        warm = []
        for _ in range(n * 20):
            t = time.perf_counter()
            srv.invoke("image-0")
            warm.append((time.perf_counter() - t) * 1000)
        return {
            # the first create pulls and unpacks; the later ones find the image cached
            "image_first_create_to_active_ms": round(create_ms[0], 1),
            "image_create_to_active_cached": summary(create_ms[1:] or create_ms),
            "image_cold_first_invoke": summary(cold_ms),
            "image_warm_invoke": summary(warm),
        }
    finally:
        reg.terminate()
        reg.wait(10)
        shutil.rmtree(work, ignore_errors=True)
