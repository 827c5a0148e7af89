"""AWS's Runtime Interface Emulator beside lambdalet, in the same run (``--rie PATH``).

The project holds neither RIE's code nor a binary nor a recipe that builds it: a
developer builds one outside the repository and passes its path.  The benchmark starts
it in classic mode (``--log-level error``) on free loopback ports, with the same
runtime client lambdalet runs (awslambdaric from the managed Python runtime dir; for
Node, the managed runtime's own bootstrap and aws-lambda-ric) and the same no-op handler
in a task folder of its own, then measures it with the same client as lambdalet: one
keep-alive connection, no-op invokes back to back.

:func:`side_by_side` interleaves the two in rounds (A then B, then B then A, ...) so
that a noisy machine moves both alike; the ratios of one run are what the targets use.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from bench.run import Conn, timed

INVOKE_PATH = "/2015-03-31/functions/function/invocations"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Rie:
    """One RIE process serving one function; ``argv`` is the runtime's command line."""

    def __init__(
        self, binary: Path, argv: list[str], files: dict[str, str], env: dict[str, str], log: Path
    ) -> None:
        self.task = Path(tempfile.mkdtemp(prefix="lambdalet-bench-rie-"))
        for name, text in files.items():
            (self.task / name).write_text(text)
        self.port = _free_port()
        self.log = log.open("wb")
        self.proc = subprocess.Popen(
            [
                str(binary),
                *("--log-level", "error"),
                *("--runtime-interface-emulator-address", f"127.0.0.1:{self.port}"),
                *("--runtime-api-address", f"127.0.0.1:{_free_port()}"),
                *argv,
            ],
            cwd=self.task,
            env={"PATH": os.environ.get("PATH", ""), "LAMBDA_TASK_ROOT": str(self.task), **env},
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                self.conn = Conn(self.port)
                break
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(f"RIE did not start; see {log}") from None
                time.sleep(0.05)
        # RIE starts the runtime on the first invoke (its init)
        self.invoke()

    def raw(self, payload: bytes = b"{}") -> bytes:
        return Conn.request("POST", INVOKE_PATH, payload)

    def invoke(self, payload: bytes = b"{}") -> bytes:
        st, out = self.conn.send(self.raw(payload))
        if st != 200:
            raise SystemExit(f"RIE answered {st}: {out[:200]!r}")
        return out

    def stop(self) -> None:
        self.conn.close()
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()
        shutil.rmtree(self.task, ignore_errors=True)


def python_rie(binary: Path, python: str, runtime_dir: Path, handler_src: str, log: Path) -> Rie:
    """RIE running ``python -m awslambdaric app.handler`` with lambdalet's runtime dir."""
    return Rie(
        binary,
        [python, "-m", "awslambdaric", "app.handler"],
        {"app.py": handler_src},
        {"PYTHONPATH": str(runtime_dir)},
        log,
    )


def node_rie(binary: Path, node_runtime_dir: Path, handler_src: str, log: Path) -> Rie:
    """RIE running the managed Node runtime's bootstrap (Node + aws-lambda-ric)."""
    return Rie(
        binary,
        [str(node_runtime_dir / "bootstrap")],
        {"app.mjs": handler_src},
        {"_HANDLER": "app.handler"},
        log,
    )


def side_by_side(
    a: Callable[[], object], b: Callable[[], object], n: int, rounds: int = 20
) -> tuple[list[float], list[float]]:
    """``n`` timed calls of each, interleaved in ``rounds`` rounds (order swapped each round)."""
    for _ in range(50):
        a()
        b()
    per = max(1, n // rounds)
    xa: list[float] = []
    xb: list[float] = []
    for i in range(rounds):
        if i % 2 == 0:
            xa += timed(a, per)
            xb += timed(b, per)
        else:
            xb += timed(b, per)
            xa += timed(a, per)
    return xa, xb
