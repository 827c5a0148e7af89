"""What an environment is told at creation (the pool fills it per function)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class EnvSettings:
    init_timeout_s: float = 10.0
    bill_init: bool = True
    init_type: str = "on-demand"
    #: how long an environment that finished an invoke stays thawed before it is frozen
    #: (0: at once).  An invoke that arrives within it skips a freeze and a thaw, two
    #: cgroup writes that cost ~15 % of a warm invoke (docs/performance.md).
    freeze_delay_s: float = 0.0
    #: the runtime waits for a debugger on this port (env/debug.py); Init and invokes may
    #: then take up to DEBUG_TIMEOUT_S
    debug_port: int | None = None
