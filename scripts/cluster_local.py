"""A whole lambdalet cluster on one machine: PostgreSQL, API replicas and workers, each a process.

    .venv/bin/python scripts/cluster-local                   # 2 API replicas, 3 workers
    .venv/bin/python scripts/cluster-local --apis 1 --workers 2 --base-port 9100

It starts a throw-away PostgreSQL 15 (``tests/cluster/pg.py``: initdb into a temp dir, run as the
``postgres`` user), then the documented commands, one process each::

    lambdalet serve  --database URL --host 127.0.0.1 --port P            (an API replica)
    lambdalet worker --database URL --data-dir DIR --listen 127.0.0.1:P  (a worker)

waits until each answers ``GET /lambdalet/readyz``, prints the addresses, and on Ctrl-C (or
SIGTERM) stops them all (SIGTERM, then SIGKILL after a grace period) and removes what it made.
``--database URL`` uses a PostgreSQL you run instead of starting one. Each process's output goes
to ``DIR/<name>.log``.

``LocalCluster`` is the same thing as a library, for the benchmark and the tests.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.cluster.pg import missing, postgres  # noqa: E402

READY_TIMEOUT = 120.0
STOP_GRACE = 15.0


def lambdalet_command() -> list[str]:
    """The ``lambdalet`` entry point of the Python running this (the project's venv)."""
    script = Path(sys.executable).with_name("lambdalet")
    if script.is_file():
        return [str(script)]
    return [sys.executable, "-c", "from lambdalet.cli import main; raise SystemExit(main())"]


@dataclass
class Node:
    """One process of the cluster: an API replica or a worker."""

    name: str
    role: str  # "api" | "worker" | "api+worker"
    address: str  # host:port it serves HTTP on
    argv: list[str]
    log: Path
    data_dir: Path | None = None  # its --data-dir
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://{self.address}"

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                self.argv,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,  # Ctrl-C reaches us only; we stop each one in order
            )

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def ready(self) -> bool:
        """``GET /lambdalet/readyz`` answers 200."""
        try:
            with urllib.request.urlopen(self.url + "/lambdalet/readyz", timeout=2) as resp:
                return bool(resp.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    def wait_ready(self, timeout: float = READY_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.alive():
                code = self.process.returncode if self.process else None
                raise RuntimeError(f"{self.name} exited ({code}):\n{tail(self.log)}")
            if self.ready():
                return
            time.sleep(0.1)
        raise RuntimeError(f"{self.name} not ready after {timeout:.0f}s:\n{tail(self.log)}")

    def kill(self) -> None:
        """``kill -9``, as a crash would (the tests' and the benchmark's failure case)."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def stop(self, grace: float = STOP_GRACE) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def tail(path: Path, chars: int = 3000) -> str:
    try:
        return path.read_text(errors="replace")[-chars:]
    except OSError:
        return "(no log)"


@dataclass
class LocalCluster:
    """Processes sharing one database; ``start()`` them, use ``apis``/``workers``, ``stop()``."""

    database: str
    root: Path
    base_port: int = 9101
    extra: Sequence[str] = ()  # more ``serve``/``worker`` flags, e.g. ("--backend", "runc")
    apis: list[Node] = field(default_factory=list)
    workers: list[Node] = field(default_factory=list)
    _next_port: int = 0

    def _port(self) -> int:
        port = self.base_port + self._next_port
        self._next_port += 1
        return port

    def add_api(self, *, with_worker: bool = False) -> Node:
        """An API replica (``serve --database``), or with ``with_worker`` a node of both roles
        (``serve --database --worker``). Each gets its own --data-dir (caches, and the
        sandboxes of a combined node)."""
        i = len(self.apis) + 1
        port = self._port()
        data = self.root / f"api{i}"
        data.mkdir(parents=True, exist_ok=True)
        argv = [*lambdalet_command(), "serve", "--database", self.database]
        argv += ["--host", "127.0.0.1", "--port", str(port), "--data-dir", str(data)]
        role = "api"
        if with_worker:
            argv.append("--worker")
            role = "api+worker"
        log = self._log(f"api{i}")
        node = Node(f"api{i}", role, f"127.0.0.1:{port}", [*argv, *self.extra], log, data)
        self.apis.append(node)
        return node

    def add_worker(self, *, memory_mb: int | None = None) -> Node:
        i = len(self.workers) + 1
        address = f"127.0.0.1:{self._port()}"
        data = self.root / f"worker{i}"
        data.mkdir(parents=True, exist_ok=True)
        argv = [*lambdalet_command(), "worker", "--database", self.database]
        argv += ["--data-dir", str(data), "--listen", address]
        if memory_mb is not None:
            argv += ["--memory-mb", str(memory_mb)]
        log = self._log(f"worker{i}")
        node = Node(f"worker{i}", "worker", address, [*argv, *self.extra], log, data)
        self.workers.append(node)
        return node

    def _log(self, name: str) -> Path:
        self.root.mkdir(parents=True, exist_ok=True)
        return self.root / f"{name}.log"

    @property
    def nodes(self) -> list[Node]:
        return [*self.apis, *self.workers]

    def start(self) -> None:
        """Start every node not yet running: the first API replica alone (it migrates the
        database), then the rest together; wait until each is ready."""
        pending = [n for n in self.nodes if not n.alive()]
        if not pending:
            return
        first, rest = pending[0], pending[1:]
        first.start()
        first.wait_ready()
        for node in rest:
            node.start()
        for node in rest:
            node.wait_ready()

    def stop(self) -> None:
        """API replicas first (no new work), then workers (they drain what they hold)."""
        for node in self.apis:
            node.stop()
        for node in self.workers:
            node.stop()


@contextlib.contextmanager
def local_cluster(
    apis: int = 2,
    workers: int = 3,
    *,
    database: str | None = None,
    root: Path | None = None,
    base_port: int = 9101,
    extra: Sequence[str] = (),
    keep: bool = False,
) -> Iterator[LocalCluster]:
    """A started cluster (its own PostgreSQL unless ``database`` is given); all stopped after."""
    made = root is None
    root = root or Path(tempfile.mkdtemp(prefix="lambdalet-cluster-"))
    with contextlib.ExitStack() as stack:
        if database is None:
            why = missing()
            if why is not None:
                raise RuntimeError(f"PostgreSQL unavailable: {why}")
            database = stack.enter_context(postgres()).url
        cluster = LocalCluster(database, root, base_port=base_port, extra=extra)
        for _ in range(apis):
            cluster.add_api()
        for _ in range(workers):
            cluster.add_worker()
        stack.callback(cluster.stop)
        try:
            cluster.start()
            yield cluster
        finally:
            stack.close()
            if made and not keep:
                shutil.rmtree(root, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="scripts/cluster-local", description=__doc__.split("\n")[0])
    ap.add_argument("--apis", type=int, default=2, help="API replicas (default 2)")
    ap.add_argument("--workers", type=int, default=3, help="workers (default 3)")
    ap.add_argument("--base-port", type=int, default=9101, help="first port (default 9101)")
    ap.add_argument("--database", help="use this PostgreSQL URL instead of starting one")
    ap.add_argument("--dir", type=Path, help="data dirs and logs here (default: a temp dir)")
    ap.add_argument("--keep", action="store_true", help="keep the temp dir after stopping")
    ap.add_argument("extra", nargs="*", help="more flags for every node, after --")
    args = ap.parse_args(argv)
    stopping = False

    def on_term(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)  # also when started with SIGINT ignored (`cmd &`)
    try:
        with local_cluster(
            args.apis,
            args.workers,
            database=args.database,
            root=args.dir.resolve() if args.dir else None,
            base_port=args.base_port,
            extra=args.extra,
            keep=args.keep,
        ) as cluster:
            print(f"database  {cluster.database}")
            for node in cluster.nodes:
                print(
                    f"{node.name:<9} {node.role:<6} {node.url:<24} pid {node.pid}  log {node.log}"
                )
            first = cluster.apis[0].url if cluster.apis else ""
            print(
                f"\nexport AWS_ENDPOINT_URL={first}   # any API replica; Ctrl-C stops all",
                flush=True,
            )
            while True:
                for node in cluster.nodes:
                    if not node.alive():
                        print(f"{node.name} exited; its log:\n{tail(node.log)}", file=sys.stderr)
                        return 1
                time.sleep(0.5)
    except KeyboardInterrupt:
        stopping = True
    except RuntimeError as e:
        print(f"cluster-local: {e}", file=sys.stderr)
        return 1
    if stopping:
        print("stopped", flush=True)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    raise SystemExit(main())
