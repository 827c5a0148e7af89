"""Warm invokes with the lean Runtime API protocol off and on (and RIE), side by side.

    .venv/bin/python -m bench.warm_ab [--rie PATH] [-n 3000]

Starts two servers, one with ``--lean-runtime-api off`` (every in-sandbox request through
aiohttp) and one with the default (env/lean_rapi.py), each with one no-op Python
function; with ``--rie``, AWS's emulator too.  Then no-op invokes back to back over one
keep-alive connection each, in interleaved rounds (the order rotates every round), so
the machine's noise falls on all alike.  Prints p50/p99 and the ratios of this run.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from bench.run import Server, runtime_dir, summary, timed


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.warm_ab")
    ap.add_argument("--rie", type=Path, help="an aws-lambda-rie binary (built outside the repo)")
    ap.add_argument("-n", type=int, default=3000, help="invokes of each, in all")
    ap.add_argument("--rounds", type=int, default=30)
    ap.add_argument("--backend", default="auto", choices=("auto", "runc", "process"))
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    log = Path(tempfile.gettempdir()) / f"lambdalet-warm-ab-{os.getpid()}.log"
    servers: dict[str, Server] = {}
    calls: dict[str, Callable[[], object]] = {}
    emu = None
    try:
        for label, lean in (("aiohttp", "0"), ("lean", "1")):
            srv = servers[label] = Server(
                args.backend,
                log.with_suffix(f".{label}.log"),
                extra=("--lean-runtime-api", "on" if lean == "1" else "off"),
            )
            srv.create("warm")
            srv.invoke("warm")
            raw = srv.invoke_raw("warm")
            calls[label] = lambda srv=srv, raw=raw: srv.conn.send(raw)  # type: ignore[misc]
        if args.rie is not None:
            from bench import rie
            from bench.run import NOOP

            any_srv = servers["lean"]
            emu = rie.python_rie(
                args.rie,
                os.path.realpath(sys.executable),
                runtime_dir(any_srv.data),
                NOOP,
                log.with_suffix(".rie.log"),
            )
            rie_raw = emu.raw()
            calls["rie"] = lambda: emu.conn.send(rie_raw)  # type: ignore[union-attr]
        labels = list(calls)
        for label in labels:
            for _ in range(100):
                calls[label]()
        samples: dict[str, list[float]] = {label: [] for label in labels}
        per = max(1, args.n // args.rounds)
        for i in range(args.rounds):
            order = labels[i % len(labels) :] + labels[: i % len(labels)]
            for label in order:
                samples[label] += timed(calls[label], per)
    finally:
        if emu is not None:
            emu.stop()
        for srv in servers.values():
            srv.stop()
    res = {label: summary(xs) for label, xs in samples.items()}
    base = res["aiohttp"]
    for label, s in res.items():
        ratio = ""
        if label != "aiohttp":
            ratio = f"  p50 {s['p50_ms'] / base['p50_ms']:.2f}x aiohttp"
        if "rie" in res and label != "rie":
            ratio += f"  p50 {s['p50_ms'] / res['rie']['p50_ms']:.2f}x RIE"
        print(f"{label:8s} n={s['n']:5d} p50 {s['p50_ms']:.3f} ms  p99 {s['p99_ms']:.3f} ms{ratio}")
    if args.json:
        args.json.write_text(json.dumps({"at": time.time(), "warm": res}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
