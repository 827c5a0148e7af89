"""One SQS event source mapping's poller: long-polls the queue with boto3, gathers batches
(``BatchSize``, ``MaximumBatchingWindowInSeconds``, the 6 MB payload limit), drops and
deletes what the filters reject, invokes the function synchronously, and deletes what
succeeded.  What failed is left alone: it comes back when the queue's visibility timeout
ends (and goes to the queue's dead-letter queue by the queue's own redrive policy).

The SQS client is boto3's, built from the standard SDK configuration
(``AWS_ENDPOINT_URL_SQS``, ``AWS_ENDPOINT_URL``, profiles, credentials), so one mapping
reads real SQS, LocalStack, ElasticMQ or moto alike.  boto3 blocks: each call runs on a
daemon thread of its own, so a 20-second long poll never holds the event loop, nor the
process at exit (a message received by an abandoned poll is not lost: it reappears after
its visibility timeout).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import threading
import uuid
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from lambdalet.errors import LambdaApiError, TooManyRequestsException
from lambdalet.model import InvokeInput, Invoker
from lambdalet.store import Store
from lambdalet.store.records import pick_version
from lambdalet.store.triggers import MappingRecord
from lambdalet.triggers import filters, sqs_events
from lambdalet.triggers.sqs_events import QueueRef

log = logging.getLogger(__name__)
T = TypeVar("T")

#: a synchronous invoke's payload limit (the Lambda API's, 6 MB)
MAX_SYNC_PAYLOAD = 6_291_456
LONG_POLL_S = 20
#: concurrent batches of a mapping without ScalingConfig (Lambda starts with five pollers)
DEFAULT_CONCURRENCY = 5
ERROR_BACKOFF_S = 5.0
OK = "OK"
NO_RECORDS = "No records processed"

SqsClientFactory = Callable[[str], Any]


def default_sqs_client(region: str) -> Any:
    """boto3's SQS client for ``region``, configured as any SDK client would be (with
    placeholder keys when none are configured: local SQS servers accept any)."""
    import boto3  # type: ignore[import-untyped]

    session = boto3.session.Session()
    keys: dict[str, str] = {}
    if session.get_credentials() is None:
        keys = {"aws_access_key_id": "lambdalet", "aws_secret_access_key": "lambdalet"}
    return session.client("sqs", region_name=region, **keys)


async def in_thread(fn: Callable[..., T], /, **kwargs: Any) -> T:
    """Run a blocking call on a daemon thread of its own and await its result."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()

    def settle(result: Any, error: BaseException | None) -> None:
        if future.done():
            return
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)

    def work() -> None:
        try:
            result, error = fn(**kwargs), None
        except BaseException as e:  # handed to the awaiting task
            result, error = None, e
        # a closed loop: nobody waits any more
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(settle, result, error)

    threading.Thread(target=work, name="lambdalet-sqs", daemon=True).start()
    return await future


def split_by_size(records: list[dict[str, Any]], limit: int) -> list[list[dict[str, Any]]]:
    """Batches whose event stays under ``limit`` bytes (a lone oversized record alone)."""
    out: list[list[dict[str, Any]]] = []
    current: list[dict[str, Any]] = []
    size = len(b'{"Records":[]}')
    for r in records:
        n = len(sqs_events.event([r])) - len(b'{"Records":[]}') + 1
        if current and size + n > limit:
            out.append(current)
            current, size = [], len(b'{"Records":[]}')
        current.append(r)
        size += n
    if current:
        out.append(current)
    return out


class SqsPoller:
    """Polls one queue for one mapping until stopped."""

    def __init__(
        self,
        mapping: MappingRecord,
        store: Store,
        invoker: Invoker,
        client_factory: SqsClientFactory = default_sqs_client,
        draw: Callable[[], float] = random.random,
    ) -> None:
        self.mapping = mapping
        self.store = store
        self.invoker = invoker
        self.queue: QueueRef = sqs_events.parse_queue_arn(mapping.source_arn)
        self._client_factory = client_factory
        self._draw = draw
        s = mapping.settings
        self.batch_size = int(s.get("BatchSize", 10))
        self.window_s = int(s.get("MaximumBatchingWindowInSeconds", 0))
        self.patterns = [
            filters.parse_pattern(f["Pattern"])
            for f in (s.get("FilterCriteria") or {}).get("Filters", [])
        ]
        self.report_failures = "ReportBatchItemFailures" in s.get("FunctionResponseTypes", [])
        conc = (s.get("ScalingConfig") or {}).get("MaximumConcurrency") or DEFAULT_CONCURRENCY
        self.concurrency = 1 if self.queue.fifo else int(conc)
        self._slots = asyncio.Semaphore(self.concurrency)
        self._task: asyncio.Task[None] | None = None
        self._batches: set[asyncio.Task[None]] = set()
        self._client: Any = None
        self._queue_url: str | None = None
        self._last_result = mapping.last_result
        self._visibility_s = 30

    def __repr__(self) -> str:
        running = self._task is not None and not self._task.done()
        return f"SqsPoller({self.mapping.uuid}, queue={self.queue.name!r}, running={running})"

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"sqs poller {self.mapping.uuid}")

    async def stop(self) -> None:
        """Stop receiving; batches being invoked finish (their messages are settled)."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        if self._batches:
            await asyncio.gather(*self._batches, return_exceptions=True)

    # ----------------------------------------------------------------- receiving

    async def _run(self) -> None:
        while True:
            try:
                await self._poll_forever()
            except asyncio.CancelledError:
                raise
            except Exception as e:
                log.warning("SQS mapping %s: %s", self.mapping.uuid, e)
                self._result(f"PROBLEM: {type(e).__name__}: {e}")
                self._client = None
                self._queue_url = None
                await asyncio.sleep(ERROR_BACKOFF_S)

    async def _connect(self) -> None:
        if self._client is None:
            self._client = await in_thread(self._client_factory, region=self.queue.region)
        if self._queue_url is None:
            got = await in_thread(
                self._client.get_queue_url,
                QueueName=self.queue.name,
                QueueOwnerAWSAccountId=self.queue.account,
            )
            self._queue_url = str(got["QueueUrl"])
            attrs = await in_thread(
                self._client.get_queue_attributes,
                QueueUrl=self._queue_url,
                AttributeNames=["VisibilityTimeout"],
            )
            self._visibility_s = int(attrs.get("Attributes", {}).get("VisibilityTimeout", 30))

    async def _poll_forever(self) -> None:
        await self._connect()
        while True:
            await self._slots.acquire()
            try:
                messages = await self._gather()
            except BaseException:
                self._slots.release()
                raise
            if not messages:
                self._slots.release()
                continue
            task = asyncio.create_task(self._handle(messages))
            self._batches.add(task)
            task.add_done_callback(self._batch_done)

    def _batch_done(self, task: asyncio.Task[None]) -> None:
        self._batches.discard(task)
        self._slots.release()

    def _receive_visibility(self) -> int | None:
        """Lambda's rule: when the batching window plus the function's timeout exceed the
        queue's visibility timeout, messages are received for window + timeout + 30 s, so
        they do not come back while their batch is still gathered or running."""
        try:
            fn, _ = self.store.resolve(self.mapping.function_name, self.mapping.qualifier or None)
        except LambdaApiError:
            return None
        needed = self.window_s + fn.timeout_s
        return needed + 30 if self._visibility_s < needed else None

    async def _receive(self, count: int, wait_s: int) -> list[Mapping[str, Any]]:
        params: dict[str, Any] = {
            "QueueUrl": self._queue_url,
            "MaxNumberOfMessages": count,
            "WaitTimeSeconds": wait_s,
            "MessageSystemAttributeNames": ["All"],
            "MessageAttributeNames": ["All"],
        }
        visibility = self._receive_visibility()
        if visibility is not None:
            params["VisibilityTimeout"] = visibility
        got = await in_thread(self._client.receive_message, **params)
        return list(got.get("Messages", []))

    async def _gather(self) -> list[Mapping[str, Any]]:
        """One batch: up to BatchSize messages, within the batching window once the first
        message is in (a plain long poll when the window is 0)."""
        loop = asyncio.get_running_loop()
        batch: list[Mapping[str, Any]] = []
        deadline: float | None = None
        while len(batch) < self.batch_size:
            want = min(10, self.batch_size - len(batch))
            if deadline is None:
                wait = LONG_POLL_S if self.window_s == 0 else min(LONG_POLL_S, self.window_s)
            else:
                wait = max(0, min(LONG_POLL_S, round(deadline - loop.time())))
            got = await self._receive(want, wait)
            if got and deadline is None:
                deadline = loop.time() + self.window_s
            known = {m["MessageId"] for m in batch}
            batch.extend(m for m in got if m["MessageId"] not in known)
            if batch and (self.window_s == 0 or deadline is None or loop.time() >= deadline):
                break
            if not batch and deadline is None:
                return batch
        return batch

    # ------------------------------------------------------------------ invoking

    async def _handle(self, messages: list[Mapping[str, Any]]) -> None:
        records = [sqs_events.record(m, self.queue) for m in messages]
        verdicts = [filters.sqs_record_passes(self.patterns, r) for r in records]
        passed = [r for r, ok in zip(records, verdicts, strict=True) if ok]
        dropped = [r for r, ok in zip(records, verdicts, strict=True) if not ok]
        if dropped:
            await self._delete(dropped)
        if not passed:
            self._result(NO_RECORDS)
            return
        for batch in split_by_size(passed, MAX_SYNC_PAYLOAD):
            await self._invoke(batch)

    async def _invoke(self, records: list[dict[str, Any]]) -> None:
        ids = [r["messageId"] for r in records]
        try:
            fn, alias = self.store.resolve(
                self.mapping.function_name, self.mapping.qualifier or None
            )
            if alias is not None and alias.weights:
                version = pick_version(alias, self._draw())
                if version != fn.version:
                    fn = self.store.get_function(fn.name, version)
            out = await self.invoker.invoke(
                InvokeInput(
                    function=fn,
                    invoked_arn=self._invoked_arn(),
                    request_id=str(uuid.uuid4()),
                    payload=sqs_events.event(records),
                )
            )
        except TooManyRequestsException:
            self._result("PROBLEM: Function call throttled")
            return
        except LambdaApiError as e:
            self._result(f"PROBLEM: Function call failed: {e.message}")
            return
        if out.function_error:
            self._result("PROBLEM: Function call failed")
            return
        failed: set[str] = set()
        if self.report_failures:
            reported = sqs_events.failed_items(out.payload, ids)
            if reported is None:
                self._result("PROBLEM: Invalid batchItemFailures response")
                return
            failed = sqs_events.fifo_failures(reported, ids) if self.queue.fifo else reported
        await self._delete([r for r in records if r["messageId"] not in failed])
        self._result(OK)

    def _invoked_arn(self) -> str:
        arn = self.store.function_arn(self.mapping.function_name)
        return f"{arn}:{self.mapping.qualifier}" if self.mapping.qualifier else arn

    async def _delete(self, records: list[dict[str, Any]]) -> None:
        for i in range(0, len(records), 10):
            chunk = records[i : i + 10]
            await in_thread(
                self._client.delete_message_batch,
                QueueUrl=self._queue_url,
                Entries=[
                    {"Id": str(n), "ReceiptHandle": r["receiptHandle"]} for n, r in enumerate(chunk)
                ],
            )

    def _result(self, text: str) -> None:
        if text != self._last_result:
            self._last_result = text
            self.store.set_mapping_result(self.mapping.uuid, text)
