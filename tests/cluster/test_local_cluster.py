"""The local cluster (scripts/cluster_local.py) as users and operators see it.

Real PostgreSQL, one API replica and two workers, each its own process, started with the
documented commands; driven with boto3, ``lambdalet ps`` and plain HTTP. The cluster's own
failure semantics (kills under load, async at least once, limits) are tested beside this, in
the cluster engineer's test; here: that the processes come up ready, the admin views show the
workers (JSON and the dashboard's Workers panel in a real browser), ``ps`` names each
environment's worker, and a killed worker is seen to be dead and comes back.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.config import Config
from scripts.cluster_local import LocalCluster, Node

from tests.integration.harness import HOST_PY, free_port, make_zip, require_sandbox
from tests.integration.test_dashboard import DASHBOARD_PATH

NOOP = "def handler(event, context):\n    return {'ok': True}\n"
READ_WORKERS = """
const rows = document.querySelectorAll('[data-testid="worker-row"]');
return {
  hidden: document.querySelector('[data-testid="workers-panel"]').hidden,
  rows: Array.from(rows).map(r => ({
    state: r.dataset.state, address: r.children[1].textContent})),
};
"""


def get(url: str) -> tuple[int, Any]:
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")


def wait_for(what: str, check: Any, limit_s: float = 60.0) -> Any:
    deadline = time.monotonic() + limit_s
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < deadline, f"waited {limit_s:.0f}s for {what}"
        time.sleep(0.1)


@pytest.fixture(scope="module")
def cluster(pg_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    require_sandbox()
    root = tmp_path_factory.mktemp("cluster")
    c = LocalCluster(pg_url, root, base_port=free_port())
    c.add_api()
    c.add_worker()
    c.add_worker()
    try:
        c.start()
        yield c
    finally:
        c.stop()


@pytest.fixture(scope="module")
def lam(cluster: LocalCluster) -> Any:
    return boto3.client(
        "lambda",
        endpoint_url=cluster.apis[0].url,
        region_name="us-east-1",
        aws_access_key_id="test",
        aws_secret_access_key="test",
        config=Config(read_timeout=120, retries={"max_attempts": 1}),
    )


def workers(cluster: LocalCluster) -> dict[str, dict[str, Any]]:
    """The workers the API lists, by address (a live one over a dead one at the same address)."""
    status, body = get(cluster.apis[0].url + "/lambdalet/admin/workers")
    assert status == 200, body
    rows = sorted(body["Workers"], key=lambda w: w["State"] == "alive")
    return {w["Address"]: w for w in rows}


def test_every_process_is_live_and_ready(cluster: LocalCluster) -> None:
    for node in cluster.nodes:
        assert get(node.url + "/lambdalet/healthz") == (200, {"status": "ok"}), node.name
        assert get(node.url + "/lambdalet/readyz")[0] == 200, node.name


def test_the_api_lists_each_worker_alive(cluster: LocalCluster) -> None:
    seen = wait_for(
        "both workers alive",
        lambda: (
            (w := workers(cluster))
            and all(w.get(n.address, {}).get("State") == "alive" for n in cluster.workers)
            and w
        ),
    )
    for node in cluster.workers:
        w = seen[node.address]
        assert w["Pid"] == node.pid
        assert w["Memory"]["TotalMB"] >= w["Memory"]["FreeMB"] >= 0
        assert isinstance(w["Id"], str) and w["LastHeartbeat"]


def test_the_dashboard_lists_the_workers(cluster: LocalCluster, browser: Any) -> None:
    browser.get(cluster.apis[0].url + DASHBOARD_PATH)
    want = {n.address for n in cluster.workers}

    def rows() -> Any:
        page = browser.execute_script(READ_WORKERS)
        shown = {r["address"]: r["state"] for r in page["rows"]}
        return (
            not page["hidden"] and want <= shown.keys() and all(shown[a] == "alive" for a in want)
        )

    wait_for("the dashboard's Workers panel to list both workers alive", rows, limit_s=30)


def test_ps_names_the_worker_of_each_environment(cluster: LocalCluster, lam: Any) -> None:
    lam.create_function(
        FunctionName="where",
        Runtime=HOST_PY,
        Role="arn:aws:iam::123456789012:role/lambda-role",
        Handler="app.handler",
        Code={"ZipFile": make_zip({"app.py": NOOP})},
    )
    lam.get_waiter("function_active_v2").wait(
        FunctionName="where", WaiterConfig={"Delay": 0.2, "MaxAttempts": 300}
    )
    resp = lam.invoke(FunctionName="where", Payload=b"{}")
    assert resp["StatusCode"] == 200 and "FunctionError" not in resp

    status, body = get(cluster.apis[0].url + "/lambdalet/admin/environments")
    assert status == 200, body
    envs = [e for e in body["Environments"] if e["function"] == "where"]
    ids = {w["Id"]: address for address, w in workers(cluster).items()}
    assert envs and all(e["Worker"] in ids for e in envs), envs

    out = subprocess.run(
        [sys.executable, "-m", "lambdalet.cli", "ps", "where", "--endpoint", cluster.apis[0].url],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "NO_COLOR": "1"},
    )
    assert out.returncode == 0, out.stderr
    header, *rows = out.stdout.splitlines()
    assert "WORKER" in header.split()
    for env in envs:
        line = next(r for r in rows if env["id"] in r)
        assert ids[env["Worker"]] in line, (line, ids[env["Worker"]])


def test_a_killed_worker_is_seen_dead_and_comes_back(cluster: LocalCluster) -> None:
    victim: Node = cluster.workers[-1]
    before = workers(cluster)[victim.address]["Id"]
    victim.kill()
    wait_for(
        "the killed worker to be declared dead",
        lambda: workers(cluster).get(victim.address, {"State": "dead"})["State"] == "dead",
        limit_s=30,
    )
    survivor = cluster.workers[0]
    assert workers(cluster)[survivor.address]["State"] == "alive"
    assert get(cluster.apis[0].url + "/lambdalet/readyz")[0] == 200
    # restarted on the same data dir (which sweeps what the killed one left), it registers anew
    victim.start()
    victim.wait_ready()
    back = wait_for(
        "the restarted worker alive",
        lambda: (w := workers(cluster).get(victim.address)) and w["State"] == "alive" and w,
    )
    assert back["Pid"] == victim.pid and back["Id"] != before
