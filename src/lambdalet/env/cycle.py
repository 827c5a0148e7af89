"""One invoke's state, made when the invoke starts and dropped with it (uvicorn's
``RequestResponseCycle``).

The cycle holds what only this invoke has: its caller and the caller's stream, its
deadline, the gate its answer arrives at, the gate the invoke phase ends at, and the
times the telemetry spans are measured from.  Nothing of it outlives the invoke, so
nothing of one invoke can leak into the next.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field

from lambdalet.clock import Clock
from lambdalet.env import extensions as ext_protocol
from lambdalet.env import failure as fl
from lambdalet.env import rapi_protocol as rp
from lambdalet.env.failure import Answer, AnswerKind, ExitType
from lambdalet.env.gates import Gate
from lambdalet.env.lifecycle import EnvEvent
from lambdalet.env.outcome import InvokeOutcome
from lambdalet.model import InvokeInput, InvokeOutput
from lambdalet.streaming import ResponseStream

#: Content-Type of a streamed response whose runtime named none (Node's default)
STREAM_CONTENT_TYPE = "application/octet-stream"


def new_trace_id(now: float) -> str:
    return f"Root=1-{int(now):08x}-{secrets.token_hex(12)};Parent={secrets.token_hex(8)};Sampled=0"


@dataclass(frozen=True)
class Settled:
    """How the invoke phase ended, for the environment to act on."""

    #: what the caller gets, with ``X-Amz-Function-Error``
    reply: tuple[bytes, str | None]
    outcome: InvokeOutcome
    #: the lifecycle event a failure fires (crash, timeout); None when all went well
    failure: EnvEvent | None
    #: bytes the runtime produced
    produced: int


@dataclass
class InvokeCycle:
    request: InvokeInput
    caller: asyncio.Future[InvokeOutput]
    version: str
    clock: Clock
    #: monotonic time the invoke began, and how long it may take
    started: float
    timeout_s: float
    trace_id: str
    #: resolved with the runtime's answer, or with the failure that came first
    answer: Gate = field(default_factory=lambda: Gate("answer"))
    #: the invoke phase lasts until the runtime and every INVOKE extension call next
    done: Gate | None = None
    #: when the event was released (monotonic, wall); when the runtime's answer began
    #: to arrive and was complete; when the runtime called next after it (monotonic)
    released: float = 0.0
    released_wall: float = 0.0
    #: the deadline the runtime and extensions are told (epoch ms)
    deadline_ms: int = 0
    answer_started_at: float | None = None
    answer_done_at: float | None = None
    runtime_done_at: float | None = None

    @property
    def request_id(self) -> str:
        return self.request.request_id

    @property
    def deadline(self) -> float:
        return self.started + self.timeout_s

    def release(self) -> None:
        """The event goes out now: its deadline, and the times spans are measured from."""
        self.released = self.clock.monotonic()
        self.released_wall = self.clock.wall()
        self.deadline_ms = int((self.released_wall + self.timeout_s) * 1000)

    def runtime_event(self) -> rp.Event:
        request = self.request
        return rp.Event(
            request_id=request.request_id,
            payload=request.payload,
            deadline_ms=self.deadline_ms,
            invoked_function_arn=request.invoked_arn,
            trace_id=self.trace_id,
            client_context=request.client_context,
        )

    def extension_event(self) -> bytes:
        """The INVOKE event of the Extensions API."""
        request = self.request
        return ext_protocol.invoke_event(
            request.request_id, self.deadline_ms, request.invoked_arn, self.trace_id
        )

    async def settle(
        self,
        responded: Callable[[], None],
        check_gates: Callable[[], None],
        exit_type: ExitType,
    ) -> Settled:
        """Wait, within the deadline, for the runtime's answer, then for the end of the
        invoke phase: the runtime and every INVOKE extension asking for their next event.

        ``responded`` is told when the runtime answered (before the caller hears it);
        ``check_gates`` opens the done gate if everyone is already there.
        """
        rid = self.request_id
        reply: tuple[bytes, str | None] | None = None
        outcome = InvokeOutcome.success()
        failure: EnvEvent | None = None
        produced = 0
        try:
            async with self.clock.timeout_at(self.deadline):
                got = await self.answer.wait()
                assert got is not None
                if got.failed:
                    reply = (fl.crash_body(got, rid), "Unhandled")
                    outcome = InvokeOutcome.crash(fl.crash_type(got, exit_type))
                    failure = EnvEvent.CRASH
                else:
                    responded()
                    reply = fl.reply_for(got)
                    produced = len(got.body) if got.produced is None else got.produced
                    self.reply_early(*reply)
                    outcome = fl.answer_outcome(got)
                    self.done = Gate("invoke done")
                    check_gates()
                    after = await self.done.wait()
                    if after is not None:
                        # a process died after the answer: the caller keeps the answer
                        if outcome.report_status is None:
                            outcome = InvokeOutcome.crash(fl.crash_type(after, exit_type))
                        failure = EnvEvent.CRASH
        except TimeoutError:
            reply = reply or (rp.timed_out(rid, self.timeout_s), "Unhandled")
            outcome, failure = InvokeOutcome.timeout(), EnvEvent.TIMEOUT
        assert reply is not None
        return Settled(reply, outcome, failure, produced)

    def answer_started(self) -> None:
        if self.answer_started_at is None:
            self.answer_started_at = self.clock.monotonic()

    def deliver(self, got: Answer) -> None:
        if self.answer_done_at is None:
            self.answer_done_at = self.clock.monotonic()
        self.answer.resolve(got)

    def stream_start(self, content_type: str | None) -> StreamedAnswer:
        caller = self.request.stream
        if caller is not None:
            caller.start(content_type or STREAM_CONTENT_TYPE)
        return StreamedAnswer(self.deliver, caller, content_type)

    def reply_early(self, payload: bytes, error: str | None) -> None:
        """The caller hears the answer now, before the invoke phase ends (not when it
        asked for the log tail, which is complete only after END and REPORT)."""
        if not self.caller.done() and not self.request.log_tail:
            self.caller.set_result(
                InvokeOutput(payload=payload, executed_version=self.version, function_error=error)
            )


class StreamedAnswer:
    """A response the runtime streams (``Lambda-Runtime-Function-Response-Mode: streaming``).

    Chunks go to the streaming caller as they arrive; without one (a buffered Invoke of
    a streaming function) they are kept, up to the buffered limit, for the reply.  The
    answer is delivered when the body ends, with the error of its trailers if any.
    """

    def __init__(
        self,
        deliver: Callable[[Answer], None],
        caller: ResponseStream | None,
        content_type: str | None,
    ) -> None:
        self._deliver = deliver
        self._caller = caller
        self._content_type = content_type
        self._kept: list[bytes] = []
        self._too_large = False
        self.size = 0

    def write(self, chunk: bytes) -> None:
        self.size += len(chunk)
        if self._caller is not None:
            self._caller.push(chunk)
        elif not self._too_large:
            if self.size > rp.MAX_RESPONSE_BYTES:
                self._too_large = True
                self._kept.clear()
            else:
                self._kept.append(chunk)

    async def room(self) -> None:
        if self._caller is not None:
            await self._caller.room()

    def end(self, error_type: str | None, error_body: bytes | None) -> None:
        if error_type or error_body:
            body = rp.caller_error_body(error_body or b"", None, error_type)
            self._deliver(
                Answer(
                    AnswerKind.ERROR,
                    body=body,
                    error_type=rp.internal_error_type(error_type),
                    produced=self.size,
                )
            )
        elif self._too_large:
            self._deliver(Answer(AnswerKind.TOO_LARGE, produced=self.size))
        else:
            self._deliver(
                Answer(
                    AnswerKind.RESPONSE,
                    body=b"".join(self._kept),
                    content_type=self._content_type,
                    produced=self.size,
                )
            )
