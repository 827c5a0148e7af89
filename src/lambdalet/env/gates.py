"""Named points the platform waits at (RIE's ``core/gates.go``), as objects.

A gate opens when every participant it waits for has arrived (called ``next``,
registered), or breaks with the :class:`~lambdalet.env.failure.Answer` of the
participant that died or reported an error.  Whoever waits learns which.  A gate is
made for one wait and dropped with it.
"""

from __future__ import annotations

import asyncio

from lambdalet.env.failure import Answer


class Gate:
    def __init__(self, name: str) -> None:
        self.name = name
        self._result: asyncio.Future[Answer | None] = asyncio.get_running_loop().create_future()

    def __repr__(self) -> str:
        if not self._result.done():
            state = "waiting"
        elif self._result.cancelled():
            state = "cancelled"
        else:
            state = "open" if self._result.result() is None else "broken"
        return f"<Gate {self.name} {state}>"

    @property
    def waiting(self) -> bool:
        return not self._result.done()

    def open(self) -> None:
        if not self._result.done():
            self._result.set_result(None)

    def resolve(self, answer: Answer) -> bool:
        """Resolve with ``answer`` (a failure that breaks it, or what it waited for);
        False if it was already resolved."""
        if self._result.done():
            return False
        self._result.set_result(answer)
        return True

    async def wait(self) -> Answer | None:
        """None when it opened, else the answer it was resolved with."""
        return await self._result


def break_first(gates: tuple[Gate | None, ...], failure: Answer) -> None:
    """A participant failed: the first gate (in the order given) still waited at learns it."""
    for gate in gates:
        if gate is not None and gate.resolve(failure):
            return
