"""The life of one runc sandbox as an explicit state machine (pure).

::

    BUILDING --agent ready--> RUNNING <--thaw/freeze--> FROZEN
        |                        |                        |
        +-----agent died---------+--------> AGENT_GONE <--+
        |                        |               |        |
        +------------------------+--> DESTROYED <+--------+

``AGENT_GONE``: PID 1 died, so the kernel killed everything inside; the sandbox can
only be destroyed.  ``DESTROYED`` is final.
"""

from __future__ import annotations

from enum import StrEnum

from ..base import SandboxError


class SandboxState(StrEnum):
    BUILDING = "building"
    RUNNING = "running"
    FROZEN = "frozen"
    AGENT_GONE = "agent-gone"
    DESTROYED = "destroyed"

    @property
    def alive(self) -> bool:
        """The agent may still answer (it can be sent messages)."""
        return self in _ALIVE


_ALIVE = frozenset({SandboxState.BUILDING, SandboxState.RUNNING, SandboxState.FROZEN})

#: every allowed move; anything else is a bug in the sandbox's code
TRANSITIONS: dict[SandboxState, frozenset[SandboxState]] = {
    SandboxState.BUILDING: frozenset(
        {SandboxState.RUNNING, SandboxState.AGENT_GONE, SandboxState.DESTROYED}
    ),
    SandboxState.RUNNING: frozenset(
        {SandboxState.FROZEN, SandboxState.AGENT_GONE, SandboxState.DESTROYED}
    ),
    SandboxState.FROZEN: frozenset(
        {SandboxState.RUNNING, SandboxState.AGENT_GONE, SandboxState.DESTROYED}
    ),
    SandboxState.AGENT_GONE: frozenset({SandboxState.DESTROYED}),
    SandboxState.DESTROYED: frozenset(),
}


class InvalidTransition(SandboxError):
    """A move the state machine does not allow (a bug, not a host problem)."""


def advance(current: SandboxState, new: SandboxState) -> SandboxState:
    """``new`` if the machine allows moving there from ``current``; else raises."""
    if new not in TRANSITIONS[current]:
        raise InvalidTransition(f"sandbox cannot go from {current} to {new}")
    return new
