"""Prometheus metrics: invocations, errors, throttles, durations, cold starts, environments.

Uses ``prometheus_client`` with a registry of its own (never the process-global
one), fed by the environments' reports (``env.observer``) and by the invoker's
throttles; environment counts and memory are read from the pool at scrape time.
"""

from __future__ import annotations

from collections import Counter as Tally
from collections.abc import Awaitable, Callable, Iterable, Iterator

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from lambdalet.env.environment import Environment
from lambdalet.env.observer import InitReport, InvokeReport

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

_DURATION_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


class _EnvironmentCollector(Collector):
    def __init__(self, environments: Callable[[], Iterable[Environment]]) -> None:
        self._environments = environments

    def collect(self) -> Iterator[Metric]:
        by_state: Tally[tuple[str, str]] = Tally()
        memory = GaugeMetricFamily(
            "lambdalet_environment_memory_limit_bytes",
            "Configured memory of live execution environments, by function",
            labels=["function"],
        )
        per_fn: Tally[str] = Tally()
        for env in self._environments():
            by_state[(env.function.name, env.state.value)] += 1
            per_fn[env.function.name] += env.function.memory_mb * 1024 * 1024
        states = GaugeMetricFamily(
            "lambdalet_environments",
            "Live execution environments by function and lifecycle state",
            labels=["function", "state"],
        )
        for (fn, state), n in sorted(by_state.items()):
            states.add_metric([fn, state], n)
        for fn, total in sorted(per_fn.items()):
            memory.add_metric([fn], total)
        yield states
        yield memory


class Metrics:
    """Implements ``EnvObserver``; also counts throttles."""

    def __init__(self, environments: Callable[[], Iterable[Environment]]) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.invocations = Counter(
            "lambdalet_invocations",
            "Invocations that ran, by function and outcome (success, error, timeout, crash, "
            "init_failure)",
            ["function", "outcome"],
            registry=r,
        )
        self.errors = Counter(
            "lambdalet_errors",
            "Invocations that did not succeed, by function and error type (ValueError, "
            "Sandbox.Timedout, Runtime.ImportModuleError, ...)",
            ["function", "error_type"],
            registry=r,
        )
        self.throttles = Counter(
            "lambdalet_throttles",
            "Invokes refused with 429, by function and reason",
            ["function", "reason"],
            registry=r,
        )
        self.cold_starts = Counter(
            "lambdalet_cold_starts",
            "Invocations that began a new environment's Init",
            ["function"],
            registry=r,
        )
        self.duration = Histogram(
            "lambdalet_invocation_duration_seconds",
            "REPORT Duration",
            ["function"],
            buckets=_DURATION_BUCKETS,
            registry=r,
        )
        self.init_duration = Histogram(
            "lambdalet_init_duration_seconds",
            "Init phase duration",
            ["function", "phase", "status"],
            buckets=_DURATION_BUCKETS,
            registry=r,
        )
        self.max_memory = Histogram(
            "lambdalet_max_memory_used_bytes",
            "REPORT Max Memory Used",
            ["function"],
            buckets=tuple(mb * 1024 * 1024 for mb in (16, 32, 64, 128, 256, 512, 1024, 2048)),
            registry=r,
        )
        r.register(_EnvironmentCollector(environments))

    def invoke_reported(self, report: InvokeReport) -> None:
        fn = report.function
        outcome = report.outcome
        self.invocations.labels(fn, outcome.kind.value).inc()
        if not outcome.ok:
            self.errors.labels(fn, outcome.error_type or "Unknown").inc()
        if report.init_ms is not None:
            self.cold_starts.labels(fn).inc()
        self.duration.labels(fn).observe(report.duration_ms / 1000.0)
        self.max_memory.labels(fn).observe(report.max_memory_used_mb * 1024 * 1024)

    def init_reported(self, report: InitReport) -> None:
        self.init_duration.labels(report.function, report.phase, report.status).observe(
            report.duration_ms / 1000.0
        )

    def throttled(self, function: str, version: str, reason: str) -> None:
        self.throttles.labels(function, reason).inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)


def metrics_handler(metrics: Metrics) -> Callable[[web.Request], Awaitable[web.Response]]:
    """The ``GET /metrics`` handler (Prometheus text format)."""

    async def handle(request: web.Request) -> web.Response:
        return web.Response(body=metrics.render(), headers={"Content-Type": CONTENT_TYPE})

    return handle
