"""Cluster mode against the single process, on this machine, in one run.

    .venv/bin/python -m bench --cluster                  # ~2 minutes, needs root + runc
    .venv/bin/python -m bench --cluster --tiny           # seconds; no timing assertion
    .venv/bin/python -m bench --cluster --workers 1 2 3 4 --combined

Measures, over raw keep-alive HTTP/1.1 connections (``bench/run.py``'s client):

single   ``lambdalet serve`` alone (SQLite, sandboxes in-process): warm p50 over one
         connection, and no-op invokes/s with 8 client processes
cluster  a real PostgreSQL (``tests/cluster/pg.py``), one API replica (``serve --database``) and
         1, 2, 3 workers (``worker``), each a process (``scripts/cluster_local.py``), a fresh
         database each: the same warm p50 through the replica, and invokes/s with 8 clients
combined with ``--combined``: N nodes of both roles (``serve --database --worker``), the
         8 clients spread over them (the design's answer if the replica tier is the ceiling)

and prints the issue's targets (2 workers >= 1.7x one; warm p50 through a replica <= 1.3x the
single process's) as met or not, with the figures. Writes the JSON (default
bench-cluster.json). Never asserts a timing.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from scripts.cluster_local import LocalCluster, Node
from tests.cluster.pg import Postgres, missing, postgres

from bench.run import NOOP, ROLE, ROOT, Conn, Server, _zip, machine, summary, timed

FUNCTION = "noop"


@dataclass(frozen=True)
class Size:
    warm_n: int
    tput_s: float
    clients: int


SIZES = {"full": Size(2000, 5.0, 8), "tiny": Size(50, 0.5, 8)}


# ----------------------------------------------------------------------------- clients


def _port(node: Node) -> int:
    return int(node.address.rsplit(":", 1)[1])


def create_function(port: int, runtime: str) -> None:
    c = Conn(port)
    body = {
        "FunctionName": FUNCTION,
        "Runtime": runtime,
        "Handler": "app.handler",
        "Role": ROLE,
        "Code": {"ZipFile": _zip(NOOP)},
    }
    st, out = c.call("POST", "/2015-03-31/functions", json.dumps(body).encode())
    assert st == 201, (st, out)
    c.close()


def invoke_raw() -> bytes:
    return Conn.request("POST", f"/2015-03-31/functions/{FUNCTION}/invocations", b"{}")


def warm_p50(port: int, n: int) -> dict[str, float]:
    """Sequential invokes over one connection, after 50 to warm it (as ``bench/run.py``)."""
    c = Conn(port)
    raw = invoke_raw()

    def call() -> None:
        st, out = c.send(raw)
        assert st == 200, (st, out)

    for _ in range(50):
        call()
    out = timed(call, n)
    c.close()
    return summary(out)


def _client(port: int, until: float, q: Any) -> None:
    c = Conn(port)
    raw = invoke_raw()
    n, errors, lat = 0, 0, []
    while True:
        t = time.perf_counter()
        if t >= until:
            break
        st, _ = c.send(raw)
        if st == 200:
            n += 1
            lat.append((time.perf_counter() - t) * 1000)
        else:
            errors += 1
    q.put((n, errors, lat))


def throughput(ports: list[int], seconds: float, clients: int) -> dict[str, Any]:
    """No-op invokes/s with ``clients`` processes, client i on ``ports[i % len(ports)]``; a
    1 s warm-up round first (it also makes the environments the clients need)."""
    ctx = mp.get_context("fork")
    q = ctx.Queue()
    results: list[tuple[int, int, list[float]]] = []
    for phase in ("warmup", "measure"):
        secs = min(1.0, seconds) if phase == "warmup" else seconds
        until = time.perf_counter() + 0.2 + secs
        procs = [
            ctx.Process(target=_client, args=(ports[i % len(ports)], until, q))
            for i in range(clients)
        ]
        for p in procs:
            p.start()
        results = [q.get() for _ in procs]
        for p in procs:
            p.join()
    total = sum(n for n, _, _ in results)
    lat = [x for _, _, xs in results for x in xs]
    return {
        "clients": clients,
        "seconds": seconds,
        "invokes": total,
        "errors": sum(e for _, e, _ in results),
        "invokes_per_s": round(total / seconds, 1),
        "latency": summary(lat) if lat else {},
    }


# ----------------------------------------------------------------------------- set-ups


def _seed_runtimes(data: Path | None) -> None:
    """Hard-link the installed Python runtime into a node's data dir (a copy where links cannot
    be made), so no node runs pip; Node.js runtimes are left out (not measured here)."""
    cached = ROOT / ".lambdalet-data" / "runtimes"
    if data is None or not cached.is_dir() or (data / "runtimes").exists():
        return

    def link(src: str, dst: str) -> None:
        try:
            os.link(src, dst)
        except OSError:
            shutil.copy2(src, dst)

    shutil.copytree(
        cached,
        data / "runtimes",
        symlinks=True,
        ignore=shutil.ignore_patterns("nodejs*"),
        copy_function=link,
    )


@contextmanager
def cluster(
    pg: Postgres, index: int, workers: int, combined: bool, extra: list[str]
) -> Iterator[LocalCluster]:
    url = pg.create_database(f"bench{index}")
    root = Path(tempfile.mkdtemp(prefix="lambdalet-bench-cluster-"))
    c = LocalCluster(url, root, base_port=19100 + 20 * index, extra=extra)
    try:
        if combined:
            for _ in range(workers):
                c.add_api(with_worker=True)
        else:
            c.add_api()
            for _ in range(workers):
                c.add_worker()
        for node in c.nodes:
            _seed_runtimes(node.data_dir)
        c.start()
        yield c
    finally:
        c.stop()
        shutil.rmtree(root, ignore_errors=True)


def measure_cluster(
    pg: Postgres,
    index: int,
    workers: int,
    combined: bool,
    size: Size,
    runtime: str,
    extra: list[str],
) -> dict[str, Any]:
    with cluster(pg, index, workers, combined, extra) as c:
        ports = [_port(a) for a in c.apis]
        create_function(ports[0], runtime)
        st, out = Conn(ports[0]).call("POST", f"/2015-03-31/functions/{FUNCTION}/invocations")
        assert st == 200, (st, out)
        tput = throughput(ports, size.tput_s, size.clients)
        return {
            "workers": workers,
            "api_replicas": len(c.apis),
            "combined": combined,
            "warm": warm_p50(ports[0], size.warm_n),
            "throughput": tput,
        }


def measure_single(backend: str, size: Size, log: Path) -> dict[str, Any]:
    srv = Server(backend, log)
    try:
        srv.create(FUNCTION)
        srv.invoke(FUNCTION)
        return {
            "warm": warm_p50(srv.port, size.warm_n),
            "throughput": throughput([srv.port], size.tput_s, size.clients),
        }
    finally:
        srv.stop()


# ----------------------------------------------------------------------------- report


def targets(r: dict[str, Any]) -> dict[str, Any]:
    """The issue's targets as (measured, target, met); informational, never asserted."""
    out: dict[str, Any] = {}
    by_n = {c["workers"]: c for c in r["cluster"] if not c["combined"]}
    combined = {c["workers"]: c for c in r["cluster"] if c["combined"]}
    if 1 in combined and 2 in combined:  # the same target for nodes of both roles
        one = combined[1]["throughput"]["invokes_per_s"]
        two = combined[2]["throughput"]["invokes_per_s"]
        ratio = round(two / one, 2) if one else 0.0
        out["tput_2_combined_nodes_ge_1.7x_1"] = [ratio, 1.7, ratio >= 1.7]
    if 1 in by_n and 2 in by_n:
        one = by_n[1]["throughput"]["invokes_per_s"]
        two = by_n[2]["throughput"]["invokes_per_s"]
        ratio = round(two / one, 2) if one else 0.0
        out["tput_2_workers_ge_1.7x_1"] = [ratio, 1.7, ratio >= 1.7]
    if 1 in by_n and "single" in r:
        single = r["single"]["warm"]["p50_ms"]
        routed = by_n[1]["warm"]["p50_ms"]
        out["routed_warm_p50_le_1.3x_single"] = [
            routed,
            round(1.3 * single, 4),
            routed <= 1.3 * single,
        ]
    return out


def print_table(r: dict[str, Any]) -> None:
    m = r["machine"]
    print(f"\nmachine: {m['cpus']} cpus ({m['cpu']}), {m['mem_total_mb']} MB")
    print(f"{'set-up':40s} {'invokes/s':>10s} {'errors':>7s} {'warm p50':>9s} {'p99 ms':>8s}")
    rows = []
    if "single" in r:
        rows.append(("single process (serve)", r["single"]))
    for c in r["cluster"]:
        shape = (
            f"{c['workers']} nodes serve --worker"
            if c["combined"]
            else f"1 API replica + {c['workers']} worker(s)"
        )
        rows.append((shape, c))
    for name, row in rows:
        t, w = row["throughput"], row["warm"]
        print(
            f"{name:40s} {t['invokes_per_s']:>10.0f} {t['errors']:>7d} "
            f"{w['p50_ms']:>9.3f} {w['p99_ms']:>8.3f}"
        )
    print("\ntargets (measured, target, met):")
    for k, v in r["targets"].items():
        print(f"  {k:36s} {v[0]} vs {v[1]}: {'met' if v[2] else 'NOT met'}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m bench --cluster", description=__doc__.split("\n")[0]
    )
    ap.add_argument("--tiny", action="store_true", help="seconds, not minutes")
    ap.add_argument("--backend", default="auto", choices=("auto", "runc", "process"))
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2, 3])
    ap.add_argument("--combined", action="store_true", help="also N nodes of serve --worker")
    ap.add_argument("--no-single", action="store_true", help="skip the single-process figures")
    ap.add_argument("--json", type=Path, default=Path("bench-cluster.json"))
    ap.add_argument("--extra", action="append", default=[], help="a flag for every node")
    args = ap.parse_args(argv)
    why = missing()
    if why is not None:
        raise SystemExit(f"PostgreSQL unavailable: {why}")
    size = SIZES["tiny" if args.tiny else "full"]
    runtime = f"python{sys.version_info.major}.{sys.version_info.minor}"
    res: dict[str, Any] = {"machine": machine(), "size": "tiny" if args.tiny else "full"}
    log = Path(tempfile.gettempdir()) / f"lambdalet-bench-cluster-{os.getpid()}.log"
    started = time.perf_counter()
    if not args.no_single:
        res["single"] = measure_single(args.backend, size, log)
    res["cluster"] = []
    with postgres() as pg:
        shapes = [(n, False) for n in args.workers]
        if args.combined:
            shapes += [(n, True) for n in args.workers]
        for index, (n, combined) in enumerate(shapes):
            res["cluster"].append(
                measure_cluster(pg, index, n, combined, size, runtime, args.extra)
            )
    res["total_s"] = round(time.perf_counter() - started, 1)
    res["targets"] = targets(res)
    print_table(res)
    args.json.write_text(json.dumps(res, indent=2) + "\n")
    print(f"\nwritten: {args.json}")
    return 0
