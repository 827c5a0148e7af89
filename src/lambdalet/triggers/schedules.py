"""Schedules of SAM templates (``Schedule`` → an EventBridge rule, ``ScheduleV2`` → an
EventBridge Scheduler schedule): validated specs, the event each fire sends, and the
runner that fires them as asynchronous invokes.

Missed fires: fires that fell while the server was down are not replayed.  At start each
schedule resumes at its next fire time after now, and the server log says how many were
skipped (EventBridge itself never stops, so it has no such rule to copy).  When the server
falls behind while running (a stalled loop), a late fire is sent once, late, with the
time it was due.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from lambdalet.clock import Clock
from lambdalet.errors import InvalidParameterValueException
from lambdalet.store import Store
from lambdalet.store.records import NewEvent
from lambdalet.store.triggers import ScheduleRow
from lambdalet.triggers import schedule_expr

log = logging.getLogger(__name__)

TYPES = ("Schedule", "ScheduleV2")
#: the runner re-reads the clock at least this often (a wall clock can jump)
MAX_SLEEP_S = 30.0


@dataclass(frozen=True)
class Region:
    region: str
    account_id: str


def spec(raw: Mapping[str, Any]) -> dict[str, Any]:
    """A schedule as the deploy sends it, checked: ``Name``, ``FunctionName``,
    ``Qualifier``, ``Type``, ``Expression``, ``Timezone``, ``Input`` (JSON text), ``Enabled``.
    """
    name, fn, kind = raw.get("Name"), raw.get("FunctionName"), raw.get("Type", "Schedule")
    expression, tz = raw.get("Expression"), raw.get("Timezone") or "UTC"
    if not isinstance(name, str) or not name or not isinstance(fn, str) or not fn:
        raise InvalidParameterValueException("A schedule needs a Name and a FunctionName.")
    if kind not in TYPES:
        raise InvalidParameterValueException(f"Schedule Type must be one of {', '.join(TYPES)}.")
    if not isinstance(expression, str) or not isinstance(tz, str):
        raise InvalidParameterValueException(f"Schedule {name}: Expression must be a string.")
    if kind == "Schedule" and tz != "UTC":
        raise InvalidParameterValueException(
            f"Schedule {name}: EventBridge rules run in UTC; use ScheduleV2 for a time zone."
        )
    schedule_expr.parse(expression, tz)
    text = raw.get("Input")
    if text is not None:
        try:
            json.loads(text)
        except (TypeError, ValueError):
            raise InvalidParameterValueException(
                f"Schedule {name}: Input must be JSON text."
            ) from None
    qualifier = raw.get("Qualifier")
    return {
        "Name": name,
        "FunctionName": fn,
        "Qualifier": qualifier if isinstance(qualifier, str) and qualifier else None,
        "Type": kind,
        "Expression": expression,
        "Timezone": tz,
        "Input": text,
        "Enabled": raw.get("Enabled", True) is not False,
    }


def iso_z(epoch_s: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch_s))


def payload(s: Mapping[str, Any], fire_time: float, where: Region) -> bytes:
    """What a fire sends: the target's Input when set (it replaces the event), else the
    scheduled-event shape (for ScheduleV2, the same shape with source ``aws.scheduler``:
    AWS does not document Scheduler's default payload; lambdalet's choice)."""
    if s.get("Input") is not None:
        return str(s["Input"]).encode()
    if s["Type"] == "Schedule":
        source = "aws.events"
        resource = f"arn:aws:events:{where.region}:{where.account_id}:rule/{s['Name']}"
    else:
        source = "aws.scheduler"
        resource = (
            f"arn:aws:scheduler:{where.region}:{where.account_id}:schedule/default/{s['Name']}"
        )
    event = {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "Scheduled Event",
        "source": source,
        "account": where.account_id,
        "time": iso_z(fire_time),
        "region": where.region,
        "resources": [resource],
        "detail": {},
    }
    return json.dumps(event, separators=(",", ":")).encode()


def next_fire(s: Mapping[str, Any], after: float, anchor: float) -> float:
    if not s.get("Enabled", True):
        return math.inf
    return schedule_expr.parse(s["Expression"], s["Timezone"]).next_after(after, anchor)


class ScheduleRunner:
    """Fires every enabled schedule of the store at its time, through ``submit`` (the
    asynchronous-invocation queue)."""

    def __init__(
        self,
        store: Store,
        submit: Callable[[NewEvent], None],
        clock: Clock,
        where: Region,
    ) -> None:
        self.store = store
        self.submit = submit
        self.clock = clock
        self.where = where
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def __repr__(self) -> str:
        return f"ScheduleRunner(schedules={len(self.store.schedules())})"

    # -------------------------------------------------------------- changes

    def replace_stack(self, stack: str, raw: list[Mapping[str, Any]]) -> list[ScheduleRow]:
        """A deploy's schedules for ``stack`` (all checked before any is kept).  A schedule
        whose expression did not change keeps its rate anchor and next fire."""
        specs = [spec(r) for r in raw]
        names = [s["Name"] for s in specs]
        if len(set(names)) != len(names):
            raise InvalidParameterValueException("Schedule names must be unique in a stack.")
        now = self.clock.wall()
        old = {r.name: r for r in self.store.schedules(stack)}
        rows = []
        for s in specs:
            prev = old.get(s["Name"])
            same = prev is not None and all(
                prev.spec.get(k) == s[k] for k in ("Expression", "Timezone", "Enabled")
            )
            anchor = prev.anchor if same and prev else now
            fire = prev.next_fire if same and prev else next_fire(s, now, anchor)
            rows.append(ScheduleRow(stack, s["Name"], s, anchor, fire))
        self.store.replace_schedules(stack, rows)
        self._wake.set()
        return rows

    def restore(self) -> None:
        """At start: skip what was missed while the server was down (logged)."""
        now = self.clock.wall()
        for row in self.store.schedules():
            if row.next_fire > now:
                continue
            missed, t = 0, row.next_fire
            while t <= now and missed < 10_000:
                missed += 1
                t = next_fire(row.spec, t, row.anchor)
            resume = next_fire(row.spec, now, row.anchor)
            log.warning(
                "schedule %s/%s: %s%d fire(s) missed while the server was down are not "
                "replayed; next fire %s",
                row.stack,
                row.name,
                "over " if missed >= 10_000 else "",
                missed,
                iso_z(resume) if math.isfinite(resume) else "never",
            )
            self.store.set_next_fire(row.stack, row.name, resume)

    # --------------------------------------------------------------- firing

    def tick(self) -> int:
        """Fire every schedule that is due now; returns how many fired."""
        now = self.clock.wall()
        fired = 0
        for row in self.store.schedules():
            if row.next_fire > now:
                continue
            s = row.spec
            self.submit(
                NewEvent(
                    request_id=str(uuid.uuid4()),
                    function_name=str(s["FunctionName"]),
                    qualifier=s.get("Qualifier"),
                    payload=payload(s, row.next_fire, self.where),
                )
            )
            fired += 1
            after = max(now, row.next_fire)
            self.store.set_next_fire(row.stack, row.name, next_fire(s, after, row.anchor))
        return fired

    def next_wake(self) -> float:
        fires = [r.next_fire for r in self.store.schedules()]
        return min(fires, default=math.inf)

    def start(self) -> None:
        self.restore()
        self._task = asyncio.create_task(self._run(), name="schedules")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def _run(self) -> None:
        while True:
            try:
                self.tick()
            except Exception:
                log.exception("schedule runner")
            delay = min(MAX_SLEEP_S, max(0.0, self.next_wake() - self.clock.wall()))
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), delay)
