"""The execution-environment lifecycle as data: states, events, one transition table.

No I/O and no clock here.  ``environment.Environment`` feeds events in and acts
on the states it gets back; a refused transition raises :class:`TransitionRefused`
naming the from-state, the event and the allowed events, so a bug shows up as a
clear error instead of a stuck environment.

Two machines live here:

* :class:`EnvState` — the whole environment (contract §4): Init, then Invoke
  after Invoke with a freeze in between, Reset on failure (the next invoke
  re-runs Init inside itself: "suppressed init"), Shutdown.
* :class:`RuntimeState` — what the runtime process may call on the Runtime API
  at each moment (contract §1.8), used to answer ``403 InvalidStateTransition``.
"""

from __future__ import annotations

from enum import Enum, StrEnum
from typing import Generic, TypeVar


class EnvState(StrEnum):
    #: the sandbox is being built; no function process runs yet
    CREATED = "Created"
    #: Init phase: extensions, runtime and function init; ends when every participant called next
    INITIALIZING = "Initializing"
    #: init done, frozen, waiting for an invoke
    IDLE = "Idle"
    #: an event was released to the runtime; no answer yet
    INVOKING = "Invoking"
    #: the runtime answered; waiting for the runtime (and extensions) to call next again
    RESPONDED = "Responded"
    #: killing the processes after a failure or timeout (sandbox and /tmp stay)
    RESETTING = "Resetting"
    #: no processes; the next invoke runs Init inside itself
    NEEDS_INIT = "NeedsInit"
    #: Shutdown phase (idle spin-down, retirement, server stop)
    SHUTTING_DOWN = "ShuttingDown"
    #: everything released
    DEAD = "Dead"


class EnvEvent(StrEnum):
    #: the platform starts the Init phase (fresh sandbox, or suppressed init inside an invoke)
    INIT = "init"
    #: every init participant called next: Init phase complete
    INIT_DONE = "init_done"
    #: init failed: init/error then exit, a crash, or the init time limit
    INIT_FAILED = "init_failed"
    #: the platform releases an event to the runtime
    INVOKE = "invoke"
    #: the runtime posted /response or /error for the event in flight
    RESPONSE = "response"
    #: the runtime and every INVOKE-subscribed extension called next: invoke phase over
    INVOKE_DONE = "invoke_done"
    #: the invoke phase ran out of time
    TIMEOUT = "timeout"
    #: a function process died (crash, OOM kill, extension crash)
    CRASH = "crash"
    #: every process of the environment is gone after a reset
    RESET_DONE = "reset_done"
    #: the platform shuts the environment down
    SHUTDOWN = "shutdown"
    #: the sandbox is released
    SHUTDOWN_DONE = "shutdown_done"


S = TypeVar("S", bound=Enum)
E = TypeVar("E", bound=Enum)


class TransitionRefused(Exception):
    def __init__(self, machine: str, state: Enum, event: Enum, allowed: list[str]) -> None:
        super().__init__(
            f"{machine}: event {event.value!r} is not allowed in state {state.value!r} "
            f"(allowed there: {', '.join(allowed) or 'nothing'})"
        )
        self.state = state
        self.event = event


class Machine(Generic[S, E]):
    """A state plus a transition table; ``fire`` moves or refuses."""

    def __init__(self, name: str, table: dict[tuple[S, E], S], initial: S) -> None:
        self.name = name
        self.table = table
        self.state = initial

    def allows(self, event: E) -> bool:
        return (self.state, event) in self.table

    def fire(self, event: E) -> S:
        try:
            self.state = self.table[(self.state, event)]
        except KeyError:
            allowed = [e.value for (s, e) in self.table if s == self.state]
            raise TransitionRefused(self.name, self.state, event, allowed) from None
        return self.state

    def __repr__(self) -> str:
        return f"<{self.name} {self.state.value}>"


_E = EnvEvent
_S = EnvState

ENV_TABLE: dict[tuple[EnvState, EnvEvent], EnvState] = {
    (_S.CREATED, _E.INIT): _S.INITIALIZING,
    (_S.CREATED, _E.SHUTDOWN): _S.SHUTTING_DOWN,
    (_S.CREATED, _E.INIT_FAILED): _S.RESETTING,  # the sandbox itself could not be built
    (_S.INITIALIZING, _E.INIT_DONE): _S.IDLE,
    (_S.INITIALIZING, _E.INIT_FAILED): _S.RESETTING,
    (_S.INITIALIZING, _E.CRASH): _S.RESETTING,
    (_S.INITIALIZING, _E.TIMEOUT): _S.RESETTING,
    (_S.INITIALIZING, _E.SHUTDOWN): _S.SHUTTING_DOWN,
    (_S.IDLE, _E.INVOKE): _S.INVOKING,
    (_S.IDLE, _E.CRASH): _S.RESETTING,  # a process died between invokes
    (_S.IDLE, _E.SHUTDOWN): _S.SHUTTING_DOWN,
    (_S.INVOKING, _E.RESPONSE): _S.RESPONDED,
    (_S.INVOKING, _E.TIMEOUT): _S.RESETTING,
    (_S.INVOKING, _E.CRASH): _S.RESETTING,
    (_S.INVOKING, _E.SHUTDOWN): _S.SHUTTING_DOWN,
    (_S.RESPONDED, _E.INVOKE_DONE): _S.IDLE,
    (_S.RESPONDED, _E.TIMEOUT): _S.RESETTING,
    (_S.RESPONDED, _E.CRASH): _S.RESETTING,
    (_S.RESPONDED, _E.SHUTDOWN): _S.SHUTTING_DOWN,
    (_S.RESETTING, _E.RESET_DONE): _S.NEEDS_INIT,
    (_S.RESETTING, _E.SHUTDOWN): _S.SHUTTING_DOWN,
    (_S.NEEDS_INIT, _E.INIT): _S.INITIALIZING,
    (_S.NEEDS_INIT, _E.SHUTDOWN): _S.SHUTTING_DOWN,
    (_S.SHUTTING_DOWN, _E.SHUTDOWN_DONE): _S.DEAD,
}


def env_machine() -> Machine[EnvState, EnvEvent]:
    return Machine("environment", ENV_TABLE, EnvState.CREATED)


class RuntimeState(StrEnum):
    """The runtime's side of the Runtime API (names as in AWS's emulator)."""

    #: process started, has not called next yet (init/error allowed)
    STARTED = "Started"
    #: waiting in next
    READY = "Ready"
    #: holds an event
    RUNNING = "Running"
    #: posted its answer for the event
    RESPONSE_SENT = "RuntimeResponseSentState"
    #: posted init/error (terminal until the process is replaced)
    INIT_ERROR = "InitError"


class RuntimeEvent(StrEnum):
    NEXT = "next"
    #: the platform handed the waiting next an event
    EVENT = "event"
    RESPONSE = "InvocationResponse"
    ERROR = "InvocationErrorResponse"
    INIT_ERROR = "InitErrorResponse"


_R = RuntimeState
_RE = RuntimeEvent

RUNTIME_TABLE: dict[tuple[RuntimeState, RuntimeEvent], RuntimeState] = {
    (_R.STARTED, _RE.NEXT): _R.READY,
    (_R.STARTED, _RE.INIT_ERROR): _R.INIT_ERROR,
    (_R.READY, _RE.NEXT): _R.READY,  # a repeated next (new connection) keeps waiting
    (_R.READY, _RE.EVENT): _R.RUNNING,
    # a next while holding an unanswered event gets the same event again (as AWS's emulator)
    (_R.RUNNING, _RE.NEXT): _R.RUNNING,
    (_R.RUNNING, _RE.RESPONSE): _R.RESPONSE_SENT,
    (_R.RUNNING, _RE.ERROR): _R.RESPONSE_SENT,
    (_R.RESPONSE_SENT, _RE.NEXT): _R.READY,
}


def runtime_machine() -> Machine[RuntimeState, RuntimeEvent]:
    return Machine("runtime", RUNTIME_TABLE, RuntimeState.STARTED)


class ExtensionState(StrEnum):
    """One extension's side of the Extensions API."""

    #: an external extension's process was started; it has not registered yet
    LAUNCHED = "Launched"
    #: registered; has not called next yet
    REGISTERED = "Registered"
    #: waiting in next
    READY = "Ready"
    #: holds an event (INVOKE or SHUTDOWN) and has not called next again
    RUNNING = "Running"
    #: posted init/error or exit/error
    ERRORED = "Errored"
    #: its process is gone
    EXITED = "Exited"


class ExtensionEvent(StrEnum):
    REGISTER = "register"
    NEXT = "next"
    EVENT = "event"
    INIT_ERROR = "init_error"
    EXIT_ERROR = "exit_error"
    EXIT = "exit"


_X = ExtensionState
_XE = ExtensionEvent

EXTENSION_TABLE: dict[tuple[ExtensionState, ExtensionEvent], ExtensionState] = {
    (_X.LAUNCHED, _XE.REGISTER): _X.REGISTERED,
    (_X.LAUNCHED, _XE.EXIT): _X.EXITED,
    (_X.REGISTERED, _XE.NEXT): _X.READY,
    (_X.REGISTERED, _XE.INIT_ERROR): _X.ERRORED,
    (_X.REGISTERED, _XE.EXIT_ERROR): _X.ERRORED,
    (_X.REGISTERED, _XE.EXIT): _X.EXITED,
    (_X.READY, _XE.NEXT): _X.READY,  # a repeated next keeps waiting
    (_X.READY, _XE.EVENT): _X.RUNNING,
    (_X.READY, _XE.INIT_ERROR): _X.ERRORED,
    (_X.READY, _XE.EXIT_ERROR): _X.ERRORED,
    (_X.READY, _XE.EXIT): _X.EXITED,
    (_X.RUNNING, _XE.NEXT): _X.READY,
    (_X.RUNNING, _XE.INIT_ERROR): _X.ERRORED,
    (_X.RUNNING, _XE.EXIT_ERROR): _X.ERRORED,
    (_X.RUNNING, _XE.EXIT): _X.EXITED,
    (_X.ERRORED, _XE.EXIT): _X.EXITED,
}


def extension_machine(
    initial: ExtensionState = ExtensionState.LAUNCHED,
) -> Machine[ExtensionState, ExtensionEvent]:
    return Machine("extension", EXTENSION_TABLE, initial)
