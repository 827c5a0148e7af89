"""EventBridge schedule expressions: ``rate(...)`` and AWS's six-field ``cron(...)``,
validated and turned into "the next fire time after t".  No I/O.

``cron(Minutes Hours Day-of-month Month Day-of-week Year)`` is AWS's syntax: one of the two
day fields must be ``?``; day-of-week counts 1-7 from Sunday (or SUN-SAT); ``L``, ``W`` and
``#`` as the EventBridge User Guide describes.  It is evaluated by croniter (a maintained
cron library) after a field-by-field translation: ``?`` → ``*``, day-of-week numbers minus
one (croniter counts 0-6 from Sunday), ``nL`` → ``L(n-1)``, ``L`` alone in day-of-week →
Saturday, and the year as croniter's seventh field (seconds fixed at 0).  Time zones
(ScheduleV2's ``ScheduleExpressionTimezone``) come from the system's zoneinfo.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import CroniterError, croniter

from lambdalet.errors import InvalidParameterValueException

_RATE_RE = re.compile(r"rate\((?P<n>\d+) (?P<unit>minute|minutes|hour|hours|day|days)\)")
_CRON_RE = re.compile(r"cron\((?P<fields>[^)]*)\)")
_UNIT_S = {"minute": 60, "hour": 3600, "day": 86400}
_DOW_NAMES = ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT")
_FIELD_RE = {
    "minutes": re.compile(r"[0-9,\-*/]+"),
    "hours": re.compile(r"[0-9,\-*/]+"),
    "day-of-month": re.compile(r"[0-9,\-*/?LW]+"),
    "month": re.compile(r"[0-9A-Za-z,\-*/]+"),
    "day-of-week": re.compile(r"[0-9A-Za-z,\-*?L#]+"),
    "year": re.compile(r"[0-9,\-*/]+"),
}


def _invalid(expression: str, why: str) -> InvalidParameterValueException:
    return InvalidParameterValueException(
        f"Parameter ScheduleExpression is not valid: {expression} ({why})."
    )


@dataclass(frozen=True)
class Rate:
    expression: str
    period_s: int

    def next_after(self, t: float, anchor: float) -> float:
        """The first fire strictly after ``t`` of a rate started at ``anchor``."""
        if t < anchor:
            return anchor + self.period_s
        k = math.floor((t - anchor) / self.period_s) + 1
        return anchor + k * self.period_s


@dataclass(frozen=True)
class Cron:
    expression: str
    croniter_expr: str
    tz: str

    def next_after(self, t: float, anchor: float = 0.0) -> float:
        zone = ZoneInfo(self.tz)
        base = datetime.fromtimestamp(t, UTC).astimezone(zone)
        try:
            nxt = croniter(self.croniter_expr, base).get_next(datetime)
        except CroniterError:  # no fire left (a past year)
            return math.inf
        return float(nxt.timestamp())


Expression = Rate | Cron


def _dow_token(token: str, expression: str) -> str:
    """One day-of-week item from AWS's numbering (1 = SUN) to croniter's (0 = SUN)."""
    up = token.upper()

    def day(v: str) -> str:
        if v in _DOW_NAMES:
            return v
        if not v.isdigit() or not 1 <= int(v) <= 7:
            raise _invalid(expression, f"day-of-week {v!r} is not 1-7 or SUN-SAT")
        return str(int(v) - 1)

    if up == "L":
        return "6"
    if up.endswith("L"):
        return "L" + day(up[:-1])
    if "#" in up:
        d, n = up.split("#", 1)
        if not n.isdigit() or not 1 <= int(n) <= 5:
            raise _invalid(expression, f"{token!r}: the week must be 1-5")
        return f"{day(d)}#{n}"
    if "/" in up:
        start, step = up.split("/", 1)
        return f"{'*' if start == '*' else day(start)}/{step}"
    if "-" in up:
        a, b = up.split("-", 1)
        return f"{day(a)}-{day(b)}"
    return "*" if up == "*" else day(up)


def parse(expression: str, tz: str = "UTC") -> Expression:
    """A checked expression (InvalidParameterValueException with AWS-like wording)."""
    try:
        ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidParameterValueException(
            f"Parameter ScheduleExpressionTimezone is not valid: {tz}."
        ) from None
    m = _RATE_RE.fullmatch(expression.strip())
    if m is not None:
        n, unit = int(m["n"]), m["unit"]
        if n < 1:
            raise _invalid(expression, "the value must be a positive integer")
        if (n == 1) != (not unit.endswith("s")):
            raise _invalid(expression, "use a singular unit for 1 and a plural one otherwise")
        return Rate(expression, n * _UNIT_S[unit.rstrip("s")])
    m = _CRON_RE.fullmatch(expression.strip())
    if m is None:
        raise _invalid(expression, "expected rate(...) or cron(...)")
    fields = m["fields"].split()
    if len(fields) != 6:
        raise _invalid(
            expression, "cron takes six fields: minutes hours day-of-month month day-of-week year"
        )
    for name, value in zip(_FIELD_RE, fields, strict=True):
        if not _FIELD_RE[name].fullmatch(value):
            raise _invalid(expression, f"bad {name} field {value!r}")
    minutes, hours, dom, month, dow, year = fields
    if (dom == "?") == (dow == "?"):
        raise _invalid(expression, "exactly one of day-of-month and day-of-week must be '?'")
    if dow.count("#") > 1:
        raise _invalid(expression, "only one '#' expression is allowed")
    cron_dow = "*" if dow == "?" else ",".join(_dow_token(t, expression) for t in dow.split(","))
    cron_dom = "*" if dom == "?" else dom
    text = f"{minutes} {hours} {cron_dom} {month} {cron_dow} 0 {year}"
    if not croniter.is_valid(text):
        raise _invalid(expression, "not a valid cron expression")
    return Cron(expression, text, tz)
