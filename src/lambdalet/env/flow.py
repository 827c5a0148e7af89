"""Who the platform waits for, and what they tell it: the Runtime and Extensions API
targets of one environment, with the gates they open and break (RIE's ``core/flow.go``).

A :class:`Flow` lives as long as its environment and is what the in-sandbox server's
handlers call.  Each Init gives it a new runtime and new extensions
(:meth:`Flow.begin_init`) and the Init phase's two gates; each invoke, its
:class:`~lambdalet.env.cycle.InvokeCycle`.  Each method checks the participant's state
machine, moves it, and opens a gate when everyone has arrived, or breaks the gate
being waited at with the :class:`~lambdalet.env.failure.Answer` that explains why.
"""

from __future__ import annotations

from collections.abc import Callable

from lambdalet.clock import Clock
from lambdalet.env import rapi_protocol as rp
from lambdalet.env import telemetry_protocol as tp
from lambdalet.env.cycle import InvokeCycle, StreamedAnswer
from lambdalet.env.extensions import Extensions
from lambdalet.env.failure import Answer, AnswerKind
from lambdalet.env.gates import Gate, break_first
from lambdalet.env.lifecycle import EnvState, ExtensionEvent, RuntimeEvent, RuntimeState
from lambdalet.env.outcome import ErrorType
from lambdalet.env.participants import RuntimeParticipant
from lambdalet.env.rapi_protocol import RapiRefused
from lambdalet.model import FunctionRecord
from lambdalet.sandbox.base import ProcessExit, ProcessRole


class Flow:
    def __init__(
        self,
        clock: Clock,
        function: FunctionRecord,
        state: Callable[[], EnvState],
        on_function_init: Callable[[], None],
        on_subscribe: Callable[[str, tp.Subscription], None],
    ) -> None:
        self._clock = clock
        self._function = function
        self._state = state
        self._on_function_init = on_function_init
        self._on_subscribe = on_subscribe
        self.runtime = RuntimeParticipant()
        self.extensions = Extensions()
        #: the Init phase's gates: every extension registered; everyone called next
        self.registered: Gate | None = None
        self.initialized: Gate | None = None
        #: the runtime's /init/error, if it posted one
        self.init_error: Answer | None = None
        #: the invoke in progress (None between invokes)
        self.cycle: InvokeCycle | None = None

    def __repr__(self) -> str:
        return f"<Flow {self.runtime!r} extensions={len(self.extensions.registered())}>"

    def begin_init(self) -> tuple[Gate, Gate]:
        """New participants for a new Init; its gates (every extension registered,
        everyone called next)."""
        self.runtime = RuntimeParticipant()
        self.extensions = Extensions()
        self.init_error = None
        self.registered, self.initialized = Gate("registered"), Gate("initialized")
        return self.registered, self.initialized

    def end_init(self) -> None:
        self.registered = self.initialized = None

    def cancel_waiters(self) -> None:
        """Every pending next fails: the participants are going away."""
        self.runtime.cancel()
        self.extensions.cancel_waiters()

    # ------------------------------------------------------------------ gates

    def check_gates(self) -> None:
        """Open the Init gates or the invoke-done gate when every participant arrived."""
        exts = self.extensions
        registered = not exts.unregistered()
        if self.registered is not None and registered:
            self.registered.open()
        if not self.runtime.waiting:
            return
        if self.initialized is not None and registered and exts.all_ready():
            self.initialized.open()
        cycle = self.cycle
        if cycle is not None and cycle.done is not None and exts.all_ready("INVOKE"):
            cycle.done.open()

    def break_gates(self, failure: Answer) -> None:
        """A participant failed: whoever the platform is waiting for learns it."""
        cycle = self.cycle
        invoke = (cycle.answer, cycle.done) if cycle is not None else (None, None)
        break_first((self.registered, self.initialized, *invoke), failure)

    def process_exited(self, exit: ProcessExit, current_runtime: bool) -> None:
        """A participant's process exited (``current_runtime``: the runtime of this Init)."""
        if exit.role is ProcessRole.RUNTIME:
            if not current_runtime:
                return
        else:
            ext = self.extensions.by_pid(exit.pid)
            if ext is None or not ext.alive:
                return
            ext.machine.fire(ExtensionEvent.EXIT)
            if self._state() is EnvState.IDLE:
                return
        self.break_gates(Answer(AnswerKind.CRASH, exit=exit))

    def _closed(self) -> bool:
        # a next that arrives after the waiters were failed would keep the server open
        return self._state() in (EnvState.SHUTTING_DOWN, EnvState.DEAD)

    # ------------------------------------------------------------------ Runtime API target

    async def runtime_next(self) -> rp.Event:
        return await self.runtime.next(self._closed(), self._runtime_ready)

    def _runtime_ready(self, previous: RuntimeState) -> None:
        if previous is RuntimeState.STARTED:
            # registration closes with the runtime's first next
            self.extensions.registration_open = False
        elif previous is RuntimeState.RESPONSE_SENT:
            self.runtime.current = None
            if self.cycle is not None:
                self.cycle.runtime_done_at = self._clock.monotonic()
        self.check_gates()

    def runtime_answer_started(self) -> None:
        if self._state() is EnvState.INVOKING and self.cycle is not None:
            self.cycle.answer_started()

    def _answering(self, request_id: str, target: RuntimeEvent) -> InvokeCycle:
        self.runtime.answer(request_id, target)
        assert self.cycle is not None  # the runtime holds an event only during an invoke
        return self.cycle

    def runtime_response(self, request_id: str, body: bytes, content_type: str | None) -> None:
        cycle = self._answering(request_id, RuntimeEvent.RESPONSE)
        cycle.deliver(Answer(AnswerKind.RESPONSE, body=body, content_type=content_type))

    def runtime_stream_start(self, request_id: str, content_type: str | None) -> StreamedAnswer:
        return self._answering(request_id, RuntimeEvent.RESPONSE).stream_start(content_type)

    def runtime_response_too_large(self, request_id: str) -> None:
        self._answering(request_id, RuntimeEvent.RESPONSE).deliver(Answer(AnswerKind.TOO_LARGE))

    def runtime_error(
        self, request_id: str, body: bytes, content_type: str | None, error_type: str | None
    ) -> None:
        self._answering(request_id, RuntimeEvent.ERROR).deliver(
            Answer(
                AnswerKind.ERROR,
                body=rp.caller_error_body(body, content_type, error_type),
                content_type=content_type,
                error_type=rp.internal_error_type(error_type),
            )
        )

    def runtime_init_error(
        self, body: bytes, content_type: str | None, error_type: str | None
    ) -> None:
        machine = self.runtime.machine
        if not machine.allows(RuntimeEvent.INIT_ERROR):
            raise RapiRefused(self.runtime.refusal("InitError"))
        machine.fire(RuntimeEvent.INIT_ERROR)
        posted = Answer(
            AnswerKind.INIT_ERROR, body=body, content_type=content_type, error_type=error_type
        )
        self.init_error = posted
        if self.initialized is not None:
            self.initialized.resolve(posted)

    def runtime_function_init(self) -> None:
        self._on_function_init()

    # ------------------------------------------------------------------ Extensions API target

    def extension_register(
        self, name: str | None, events: list[str], features: list[str]
    ) -> tuple[str, dict[str, str]]:
        ext = self.extensions.register(name, events)
        fn = self._function
        body = {"functionName": fn.name, "functionVersion": fn.version, "handler": fn.handler}
        if "accountId" in features:
            body["accountId"] = _account_of(fn.arn)
        self.check_gates()
        return ext.ext_id, body

    async def extension_next(self, ext_id: str) -> bytes:
        ext = self.extensions.get(ext_id)
        return await ext.next(self._closed(), lambda _previous: self.check_gates())

    def extension_error(self, ext_id: str, kind: str, error_type: str, body: bytes) -> None:
        ext = self.extensions.get(ext_id)
        event = ExtensionEvent.INIT_ERROR if kind == "init" else ExtensionEvent.EXIT_ERROR
        initializing = self._state() is EnvState.INITIALIZING
        if (kind == "init") != initializing or not ext.machine.allows(event):
            raise RapiRefused(ext.refusal(kind))
        ext.machine.fire(event)
        ext.error_type = error_type
        fatal = ErrorType.EXTENSION_INIT_ERROR if kind == "init" else ErrorType.EXTENSION_EXIT_ERROR
        message = body.decode(errors="replace") or f"extension {ext.name}: {error_type}"
        self.break_gates(Answer(AnswerKind.EXT_ERROR, body=message.encode(), error_type=fatal))

    def telemetry_subscribe(self, ext_id: str, sub: tp.Subscription) -> None:
        self._on_subscribe(self.extensions.get(ext_id).name, sub)


def _account_of(arn: str) -> str:
    parts = arn.split(":")
    return parts[4] if len(parts) > 4 else ""
