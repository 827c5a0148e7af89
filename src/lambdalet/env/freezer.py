"""Freezing an idle environment's sandbox, at once or after the freeze delay, and thawing it.

A frozen sandbox uses no CPU; its telemetry deliveries pause with it.  With a freeze
delay an environment that finished an invoke stays thawed for that long, so that an
invoke arriving within it skips a freeze and a thaw (docs/performance.md).  The timer
runs on the injected clock.
"""

from __future__ import annotations

from collections.abc import Callable

from lambdalet.clock import Clock, Handle
from lambdalet.env.telemetry import TelemetryHub
from lambdalet.sandbox.base import Sandbox


class Freezer:
    def __init__(self, clock: Clock, delay_s: float, mark: Callable[[str], None]) -> None:
        self._clock = clock
        self._delay_s = delay_s
        self._mark = mark
        self._sandbox: Sandbox | None = None
        self._telemetry: TelemetryHub | None = None
        self._timer: Handle | None = None
        self.frozen = False

    def attach(self, sandbox: Sandbox | None, telemetry: TelemetryHub | None) -> None:
        self._sandbox, self._telemetry = sandbox, telemetry

    def freeze_soon(self, still_idle: Callable[[], bool]) -> None:
        """Freeze now, or after the delay if ``still_idle()`` then (no invoke took it)."""
        if self._delay_s <= 0:
            self.freeze()
        elif self._timer is None:

            def expired() -> None:
                self._timer = None
                if still_idle():
                    self.freeze()

            self._timer = self._clock.call_later(self._delay_s, expired)

    def cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def freeze(self) -> None:
        self.cancel()
        if self._sandbox is not None and not self.frozen:
            if self._telemetry is not None:
                self._telemetry.pause()
            self._sandbox.freeze()
            self.frozen = True
            self._mark("frozen")

    def thaw(self) -> None:
        self.cancel()
        if self._sandbox is not None and self.frozen:
            self._sandbox.thaw()
            self.frozen = False
            self._mark("thawed")
            if self._telemetry is not None:
                self._telemetry.resume()
