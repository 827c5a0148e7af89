"""The runtime and each extension as participants serving ``next`` through one code path.

Both in-sandbox APIs have the same long poll: a participant calls ``next``, its state
machine moves to ready, the platform checks whether a gate can open, and the call
returns the event the platform handed it (at once, if one was kept for it).  Only
three things differ and are hooks here: the refusal's wording, what a participant
that already holds an event gets on a repeated ``next`` (the runtime: the same event
again; an extension: the event that was kept for it), and the events' type.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import Enum
from typing import ClassVar, Generic, TypeVar

from lambdalet.env import rapi_protocol as rp
from lambdalet.env.lifecycle import Machine, RuntimeEvent, RuntimeState, runtime_machine
from lambdalet.env.mailbox import Mailbox
from lambdalet.env.rapi_protocol import RapiRefused

S = TypeVar("S", bound=Enum)
E = TypeVar("E", bound=Enum)
T = TypeVar("T")


class Participant(Generic[S, E, T]):
    """A state machine with ``next``/``event`` transitions and a mailbox of events."""

    NEXT: ClassVar[Enum]
    EVENT: ClassVar[Enum]
    #: the state in which it holds an event it has not answered
    RUNNING: ClassVar[Enum]

    machine: Machine[S, E]
    mailbox: Mailbox[T]

    def refusal(self, action: str) -> rp.RapiError:
        raise NotImplementedError

    def held(self) -> T | None:
        """What a ``next`` gets while the participant holds an event (``RUNNING``)."""
        return self.mailbox.take_kept()

    async def next(self, closed: bool, on_next: Callable[[S], None]) -> T:
        """Serve one ``next`` call.  ``closed``: the environment is going away (the call
        is refused rather than held, which would keep the server from closing);
        ``on_next`` gets the state the participant left, once it is ready."""
        machine = self.machine
        if closed:
            raise RapiRefused(self.refusal("Ready"))
        if machine.state is self.RUNNING:
            held = self.held()
            if held is not None:
                return held
        if not machine.allows(self._event(self.NEXT)):
            raise RapiRefused(self.refusal("Ready"))
        previous = machine.state
        machine.fire(self._event(self.NEXT))
        on_next(previous)
        kept = self.mailbox.take_kept()
        if kept is not None:
            # an event that came while it was not waiting (e.g. SHUTDOWN during Init)
            machine.fire(self._event(self.EVENT))
            return kept
        return await self.mailbox.wait()

    def deliver(self, item: T) -> None:
        """Hand an event to the pending ``next``, or keep it for the next call.

        Either way the participant holds it from now on (``RUNNING``) when its state
        allows; an event for one that never called ``next`` is simply kept.
        """
        if self.machine.allows(self._event(self.EVENT)):
            self.machine.fire(self._event(self.EVENT))
        self.mailbox.put(item)

    def _event(self, event: Enum) -> E:
        return event  # type: ignore[return-value]  # the subclass's own event enum


class RuntimeParticipant(Participant[RuntimeState, RuntimeEvent, rp.Event]):
    """The runtime's side of the Runtime API for one Init (a new one per Init)."""

    NEXT = RuntimeEvent.NEXT
    EVENT = RuntimeEvent.EVENT
    RUNNING = RuntimeState.RUNNING

    def __init__(self) -> None:
        self.machine = runtime_machine()
        self.mailbox = Mailbox()
        #: the event it holds (until it calls next after answering)
        self.current: rp.Event | None = None

    def __repr__(self) -> str:
        return f"<runtime {self.state.value}>"

    @property
    def state(self) -> RuntimeState:
        return self.machine.state

    @property
    def waiting(self) -> bool:
        return self.machine.state is RuntimeState.READY

    def refusal(self, action: str) -> rp.RapiError:
        return rp.invalid_transition(self.state.value, action)

    def held(self) -> rp.Event | None:
        # a repeated next while holding an event gets the same event again
        if self.current is not None:
            self.mailbox.take_kept()
        return self.current

    def deliver(self, item: rp.Event) -> None:
        self.current = item
        super().deliver(item)

    def answer(self, request_id: str, target: RuntimeEvent) -> None:
        """The runtime answers its event (/response, /error): refused unless it holds it."""
        if self.current is None or request_id != self.current.request_id:
            raise RapiRefused(rp.INVALID_REQUEST_ID)
        if not self.machine.allows(target):
            raise RapiRefused(self.refusal(target.value))
        self.machine.fire(target)

    def cancel(self) -> None:
        """The runtime goes away: its pending next fails, and it holds nothing."""
        self.mailbox.cancel()
