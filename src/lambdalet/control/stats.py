"""Per-function figures over time for the dashboard's cards (an ``EnvObserver``).

Invocations, errors (every outcome but success), throttles and cold starts are counted in
buckets of ``BUCKET_S`` seconds, the last ``BUCKETS`` kept; each bucket also keeps its
durations, so it can give p50 and p99.  Totals count since the server started.  No I/O.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from lambdalet.env.observer import InitReport, InvokeReport

BUCKET_S = 10
BUCKETS = 60  # ten minutes
#: durations kept per bucket (enough for percentiles; a bucket's count stays exact)
MAX_SAMPLES = 2000


def percentile(sorted_values: list[float], q: float) -> float | None:
    """Nearest-rank percentile of already sorted values (None for none)."""
    if not sorted_values:
        return None
    rank = max(1, math.ceil(q / 100.0 * len(sorted_values)))
    return sorted_values[rank - 1]


@dataclass
class _Bucket:
    start: int
    invocations: int = 0
    errors: int = 0
    throttles: int = 0
    cold_starts: int = 0
    durations: list[float] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        d = sorted(self.durations)
        return {
            "t": self.start,
            "invocations": self.invocations,
            "errors": self.errors,
            "throttles": self.throttles,
            "coldStarts": self.cold_starts,
            "p50": percentile(d, 50),
            "p99": percentile(d, 99),
        }


@dataclass
class _Function:
    buckets: deque[_Bucket] = field(default_factory=lambda: deque(maxlen=BUCKETS))
    invocations: int = 0
    errors: int = 0
    throttles: int = 0
    cold_starts: int = 0
    #: outcome -> count, error type -> count (since the start)
    outcomes: dict[str, int] = field(default_factory=dict)
    error_types: dict[str, int] = field(default_factory=dict)


class FunctionStats:
    def __init__(self, now: Callable[[], float] = time.time) -> None:
        self._now = now
        self._fns: dict[str, _Function] = {}

    def _bucket(self, name: str) -> tuple[_Function, _Bucket]:
        fn = self._fns.setdefault(name, _Function())
        start = int(self._now()) // BUCKET_S * BUCKET_S
        if not fn.buckets or fn.buckets[-1].start != start:
            fn.buckets.append(_Bucket(start))
        return fn, fn.buckets[-1]

    def invoke_reported(self, report: InvokeReport) -> None:
        fn, b = self._bucket(report.function)
        outcome = report.outcome
        fn.invocations += 1
        b.invocations += 1
        fn.outcomes[outcome.kind.value] = fn.outcomes.get(outcome.kind.value, 0) + 1
        if not outcome.ok:
            fn.errors += 1
            b.errors += 1
            etype = outcome.error_type or "Unknown"
            fn.error_types[etype] = fn.error_types.get(etype, 0) + 1
        if report.init_ms is not None:
            fn.cold_starts += 1
            b.cold_starts += 1
        if len(b.durations) < MAX_SAMPLES:
            b.durations.append(report.duration_ms)

    def init_reported(self, report: InitReport) -> None:
        pass

    def throttled(self, function: str, version: str, reason: str) -> None:
        fn, b = self._bucket(function)
        fn.throttles += 1
        b.throttles += 1

    def snapshot(self) -> dict[str, Any]:
        """``{"bucketSeconds", "Functions": {name: {totals..., "series": [...]}}}``."""
        out: dict[str, Any] = {}
        for name, fn in sorted(self._fns.items()):
            recent = sorted(d for b in fn.buckets for d in b.durations)
            out[name] = {
                "invocations": fn.invocations,
                "errors": fn.errors,
                "throttles": fn.throttles,
                "coldStarts": fn.cold_starts,
                "outcomes": dict(fn.outcomes),
                "errorTypes": dict(fn.error_types),
                "p50": percentile(recent, 50),
                "p99": percentile(recent, 99),
                "series": [b.as_json() for b in fn.buckets],
            }
        return {"bucketSeconds": BUCKET_S, "Functions": out}
