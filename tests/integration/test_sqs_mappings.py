"""SQS event source mappings end to end: the real server, real Python functions, and a
real SQS-compatible server (moto's, started here) named by ``AWS_ENDPOINT_URL_SQS`` as
any SDK would read it.  Partial batch failures, and a server restart with messages in
flight: nothing is lost."""

from __future__ import annotations

import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from tests.integration.harness import Server, create, free_port, require_sandbox, unique

pytestmark = pytest.mark.integration

CONSUMER = """
import json, time

def handler(event, context):
    failures = []
    for r in event["Records"]:
        print("start", r["body"], r["attributes"]["ApproximateReceiveCount"], flush=True)
        if r["body"].startswith("slow"):
            time.sleep(1.5)
        if r["body"].startswith("bad"):
            failures.append({"itemIdentifier": r["messageId"]})
        else:
            print("done", r["body"], flush=True)
    return {"batchItemFailures": failures}
"""


@pytest.fixture(scope="module")
def moto_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = free_port()
    log = tmp_path_factory.mktemp("moto") / "moto.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(url + "/moto-api/", timeout=2).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"moto server did not start:\n{log.read_text()}") from None
                time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        proc.wait(10)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, moto_url: str) -> Iterator[Server]:
    require_sandbox()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AWS_ENDPOINT_URL_SQS", moto_url)
        mp.setenv("AWS_ACCESS_KEY_ID", "testing")
        mp.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        srv = Server(tmp_path_factory.mktemp("lambdalet") / "data", free_port())
        srv.start()
        try:
            yield srv
        finally:
            if srv.proc is not None and srv.proc.poll() is None:
                srv.stop()


@pytest.fixture(scope="module")
def sqs(moto_url: str) -> Any:
    return boto3.client(
        "sqs",
        endpoint_url=moto_url,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


def make_queue(sqs: Any, visibility: int) -> tuple[str, str]:
    url = sqs.create_queue(
        QueueName=unique("q"), Attributes={"VisibilityTimeout": str(visibility)}
    )["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    return url, arn


def in_queue(sqs: Any, url: str) -> int:
    a = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    return int(a["ApproximateNumberOfMessages"]) + int(a["ApproximateNumberOfMessagesNotVisible"])


def log_lines(server: Server, name: str) -> list[str]:
    return server.function_log(name).splitlines()


def wait_for(predicate: Any, what: str, server: Server, limit_s: float = 90) -> None:
    deadline = time.monotonic() + limit_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}\n{server.log_tail()}")
        time.sleep(0.1)


def test_partial_batch_failures(server: Server, lam: Any, sqs: Any) -> None:
    name = create(lam, {"app.py": CONSUMER}, Timeout=3)
    url, arn = make_queue(sqs, visibility=30)
    mapping = lam.create_event_source_mapping(
        EventSourceArn=arn,
        FunctionName=name,
        BatchSize=10,
        MaximumBatchingWindowInSeconds=1,
        FunctionResponseTypes=["ReportBatchItemFailures"],
    )
    assert mapping["State"] == "Creating"
    sqs.send_message_batch(
        QueueUrl=url,
        Entries=[{"Id": str(i), "MessageBody": b} for i, b in enumerate(["ok-1", "bad-1", "ok-2"])],
    )
    wait_for(
        lambda: sum(line.startswith("done ok-") for line in log_lines(server, name)) == 2,
        "both good messages",
        server,
    )
    # the good ones are deleted; the failed one waits out its visibility timeout
    wait_for(lambda: in_queue(sqs, url) == 1, "only the failed message to remain", server)
    got = lam.get_event_source_mapping(UUID=mapping["UUID"])
    assert got["State"] == "Enabled" and got["LastProcessingResult"] == "OK"
    lam.delete_event_source_mapping(UUID=mapping["UUID"])


def test_restart_with_messages_in_flight(server: Server, lam: Any, sqs: Any) -> None:
    name = create(lam, {"app.py": CONSUMER}, Timeout=3)
    url, arn = make_queue(sqs, visibility=4)
    lam.create_event_source_mapping(EventSourceArn=arn, FunctionName=name, BatchSize=1)
    bodies = [f"slow-{i}" for i in range(3)]
    for b in bodies:
        sqs.send_message(QueueUrl=url, MessageBody=b)
    wait_for(
        lambda: any(line.startswith("start slow-") for line in log_lines(server, name)),
        "a message in flight",
        server,
    )
    server.restart()
    wait_for(lambda: in_queue(sqs, url) == 0, "the queue to drain after the restart", server)
    done = {line.split()[1] for line in log_lines(server, name) if line.startswith("done ")}
    assert done == set(bodies)
    listed = lam.list_event_source_mappings(FunctionName=name)["EventSourceMappings"]
    assert [m["State"] for m in listed] == ["Enabled"]
