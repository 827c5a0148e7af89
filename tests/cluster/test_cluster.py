"""The cluster end to end (issue 13's "done when"): a real PostgreSQL, two API replicas and
three workers, each a separate ``lambdalet`` process started from the CLI.

Eight clients invoke through both replicas (sync and async) while workers are killed with
``kill -9`` and restarted on the same data dir and address.  Then: every async event a
replica accepted (202) ran at least once (each run prints its id into the function log of
whichever worker ran it); every failed sync invoke was a ``ServiceException`` naming a
worker, and after each kill an invoke succeeded again within seconds; a function's
reserved concurrency held across workers.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import psycopg
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from lambdalet.env.log_records import plain_text, read_events
from tests.integration.harness import HOST_PY, free_port, make_zip, require_sandbox

pytestmark = pytest.mark.integration

CLIENTS = 8
LOAD_S = 14.0
#: an invoke must succeed again this soon after a worker is killed
RECOVERY_S = 10.0

COUNTER = """
import time
def handler(event, context):
    print("RAN " + event["id"])
    time.sleep(event.get("sleep", 0))
    return {"id": event["id"]}
"""

SLOW = """
import time
def handler(event, context):
    start = time.time()
    time.sleep(1.5)
    return {"start": start, "end": time.time()}
"""


@dataclass
class Node:
    """One lambdalet process of the cluster."""

    argv: list[str]
    data_dir: Path
    port: int
    log: Path
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        env = dict(os.environ, AWS_EC2_METADATA_DISABLED="true")
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "lambdalet.cli", *self.argv],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
            )

    def wait_ready(self, limit_s: float = 90.0) -> None:
        assert self.proc is not None
        deadline = time.monotonic() + limit_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.argv[0]} exited:\n{self.log.read_text()[-4000:]}")
            try:
                url = f"http://127.0.0.1:{self.port}/lambdalet/readyz"
                with urllib.request.urlopen(url, timeout=2) as r:
                    if r.status == 200:
                        return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"not ready:\n{self.log.read_text()[-4000:]}")

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@dataclass
class Cluster:
    url: str
    replicas: list[Node]
    workers: list[Node]
    accepted: set[str] = field(default_factory=set)

    def client(self, i: int) -> Any:
        return boto3.client(
            "lambda",
            endpoint_url=f"http://127.0.0.1:{self.replicas[i % 2].port}",
            region_name="us-east-1",
            aws_access_key_id="test",
            aws_secret_access_key="test",
            config=Config(read_timeout=60, retries={"max_attempts": 0}),
        )

    def function_logs(self, name: str) -> str:
        return "".join(
            plain_text(read_events(w.data_dir / "logs", name))
            for w in self.workers
            if (w.data_dir / "logs").is_dir()
        )

    def queued(self) -> int:
        with psycopg.connect(self.url) as conn:
            row = conn.execute("SELECT COUNT(*) FROM async_events").fetchone()
            assert row is not None
            return int(row[0])


@pytest.fixture(scope="module")
def cluster(pg_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    require_sandbox()
    root = tmp_path_factory.mktemp("cluster")
    common = ["--database", pg_url, "--spare-sandboxes", "1", "--async-delay-scale", "0.01"]
    # each environment reserves 512 MB of disk for /tmp: three workers on one disk share it
    common += ["--async-workers", "4"]
    workers = []
    for i in range(3):
        port = free_port()
        data = root / f"worker{i}"
        argv = ["worker", "--listen", f"127.0.0.1:{port}", "--data-dir", str(data)]
        workers.append(Node([*argv, *common], data, port, root / f"worker{i}.log"))
    replicas = []
    for i in range(2):
        port = free_port()
        data = root / f"replica{i}"
        argv = ["serve", "--port", str(port), "--data-dir", str(data), *common]
        replicas.append(Node(argv, data, port, root / f"replica{i}.log"))
    # the first node migrates the schema; the others find it done
    replicas[0].start()
    replicas[0].wait_ready()
    for node in [*workers, replicas[1]]:
        node.start()
    for node in [*workers, replicas[1]]:
        node.wait_ready()
    c = Cluster(pg_url, replicas, workers)
    try:
        yield c
    finally:
        for node in [*replicas, *workers]:
            node.stop()


def create(c: Cluster, name: str, code: str, **extra: Any) -> None:
    lam = c.client(0)
    lam.create_function(
        FunctionName=name,
        Runtime=HOST_PY,
        Role="arn:aws:iam::123456789012:role/r",
        Handler="app.handler",
        Code={"ZipFile": make_zip({"app.py": code})},
        Timeout=30,
        **extra,
    )
    lam.get_waiter("function_active_v2").wait(FunctionName=name)


def test_workers_listed_and_invokes_cross_replicas(cluster: Cluster) -> None:
    with urllib.request.urlopen(
        f"http://127.0.0.1:{cluster.replicas[1].port}/lambdalet/admin/workers", timeout=5
    ) as r:
        workers = json.loads(r.read())["Workers"]
    alive = [w for w in workers if w["State"] == "alive"]
    assert sorted(w["Address"] for w in alive) == sorted(
        f"127.0.0.1:{w.port}" for w in cluster.workers
    )
    assert all(w["Memory"]["TotalMB"] > 0 for w in alive)
    create(cluster, "counter", COUNTER)
    # created through replica 0, invoked through replica 1, run on a worker
    out = cluster.client(1).invoke(FunctionName="counter", Payload=json.dumps({"id": "first"}))
    assert json.loads(out["Payload"].read()) == {"id": "first"}
    # the replica lists the workers' environments, each naming its worker
    with urllib.request.urlopen(
        f"http://127.0.0.1:{cluster.replicas[0].port}/lambdalet/admin/environments", timeout=10
    ) as r:
        envs = json.loads(r.read())["Environments"]
    ran_on = {e["Worker"] for e in envs if e["function"] == "counter"}
    assert len(ran_on) == 1 and ran_on <= {w["Id"] for w in alive}, envs


def test_kill9_workers_under_load(cluster: Cluster) -> None:
    stop = threading.Event()
    lock = threading.Lock()
    successes: list[tuple[float, float]] = []  # (start, end) of each good sync invoke
    failures: list[str] = []

    def client_loop(i: int) -> None:
        lam = cluster.client(i)
        n = 0
        while not stop.is_set():
            n += 1
            event_id = f"c{i}-{n}-{uuid.uuid4().hex[:6]}"
            if n % 2:
                out = lam.invoke(
                    FunctionName="counter",
                    InvocationType="Event",
                    Payload=json.dumps({"id": event_id}),
                )
                assert out["StatusCode"] == 202
                with lock:
                    cluster.accepted.add(event_id)
                continue
            started = time.monotonic()
            try:
                out = lam.invoke(
                    FunctionName="counter", Payload=json.dumps({"id": event_id, "sleep": 0.05})
                )
                assert json.loads(out["Payload"].read()) == {"id": event_id}
                with lock:
                    successes.append((started, time.monotonic()))
            except ClientError as e:
                err = e.response["Error"]
                with lock:
                    failures.append(f"{err['Code']}: {err['Message']}")

    kills: list[float] = []
    with ThreadPoolExecutor(CLIENTS) as pool:
        loops = [pool.submit(client_loop, i) for i in range(CLIENTS)]
        try:
            time.sleep(2.0)
            for victim in cluster.workers[:2]:
                kills.append(time.monotonic())
                victim.kill9()
                time.sleep(3.0)
                victim.start()
                victim.wait_ready()
            time.sleep(max(0.0, LOAD_S - 2.0 - 2 * 3.0))
        finally:
            stop.set()
        for f in loops:
            f.result()

    assert successes, "no sync invoke succeeded"
    # a failed sync invoke is a clear ServiceException naming the worker it was on
    for failure in failures:
        assert failure.startswith("ServiceException") and "worker" in failure, failure
    # after each kill, invokes succeed again within seconds
    for killed_at in kills:
        assert any(killed_at < s and e < killed_at + RECOVERY_S for s, e in successes), (
            f"no invoke succeeded within {RECOVERY_S} s of a kill; failures: {failures[:5]}"
        )
    # every accepted async event ran at least once, whichever worker ran it or died
    deadline = time.monotonic() + 60
    while cluster.queued() and time.monotonic() < deadline:
        time.sleep(0.5)
    assert cluster.queued() == 0
    ran = {
        line.split()[-1]
        for line in cluster.function_logs("counter").splitlines()
        if line.startswith("RAN ")
    }
    missing = cluster.accepted - ran
    assert len(cluster.accepted) > 20
    assert not missing, f"{len(missing)} accepted events never ran: {sorted(missing)[:5]}"


def test_reserved_concurrency_holds_cluster_wide(cluster: Cluster) -> None:
    create(cluster, "slow", SLOW)
    cluster.client(0).put_function_concurrency(FunctionName="slow", ReservedConcurrentExecutions=2)

    def once(i: int) -> dict[str, float] | str:
        try:
            out = cluster.client(i).invoke(FunctionName="slow", Payload=b"{}")
            doc: dict[str, float] = json.loads(out["Payload"].read())
            return doc
        except ClientError as e:
            return f"{e.response['Error']['Code']}: {e.response.get('Reason')}"

    with ThreadPoolExecutor(CLIENTS) as pool:
        results = list(pool.map(once, range(CLIENTS)))
    ran = [r for r in results if isinstance(r, dict)]
    refused = [r for r in results if isinstance(r, str)]
    assert ran and refused, results
    assert set(refused) == {
        "TooManyRequestsException: ReservedFunctionConcurrentInvocationLimitExceeded"
    }, refused
    # never more than 2 running at once, though they ran on several workers
    edges = sorted([(r["start"], 1) for r in ran] + [(r["end"], -1) for r in ran])
    running = peak = 0
    for _, step in edges:
        running += step
        peak = max(peak, running)
    assert peak <= 2, results


def test_provisioned_concurrency_runs_on_a_worker(cluster: Cluster) -> None:
    lam = cluster.client(1)
    version = lam.publish_version(FunctionName="counter")["Version"]
    lam.put_provisioned_concurrency_config(
        FunctionName="counter", Qualifier=version, ProvisionedConcurrentExecutions=1
    )
    deadline = time.monotonic() + 60
    status = ""
    while time.monotonic() < deadline:
        got = cluster.client(0).get_provisioned_concurrency_config(
            FunctionName="counter", Qualifier=version
        )
        status = got["Status"]
        if status != "IN_PROGRESS":
            break
        time.sleep(0.5)
    assert status == "READY", got
    assert got["AvailableProvisionedConcurrentExecutions"] == 1
    out = lam.invoke(FunctionName="counter", Qualifier=version, Payload=b'{"id": "pc"}')
    assert json.loads(out["Payload"].read()) == {"id": "pc"}
