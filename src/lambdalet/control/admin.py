"""A small admin API for the CLI and tests: what environments exist, in which state.

Served under ``/lambdalet/`` next to the Lambda API (loopback by default).
"""

from __future__ import annotations

import time
from collections import deque
from typing import Any

from aiohttp import web

from lambdalet.control.pool import Pool
from lambdalet.control.progress import Progress
from lambdalet.control.stats import FunctionStats
from lambdalet.env.environment import Environment
from lambdalet.env.observer import InitReport, InvokeReport
from lambdalet.env.outcome import InvokeOutcome
from lambdalet.errors import InvalidParameterValueException, InvalidRequestContentException
from lambdalet.sandbox.base import SandboxBackend
from lambdalet.store.test_events import TestEvents

#: how many recent invocations the admin API (and the dashboard) can show
RECENT_INVOCATIONS = 200


class RecentInvocations:
    """The last REPORTs of every function, newest first (an ``EnvObserver``)."""

    def __init__(self, size: int = RECENT_INVOCATIONS) -> None:
        self._items: deque[dict[str, Any]] = deque(maxlen=size)

    def invoke_reported(self, report: InvokeReport) -> None:
        self._items.appendleft(
            {
                "time": report.time,
                "requestId": report.request_id,
                "function": report.function,
                "version": report.version,
                "envId": report.env_id,
                "logStream": report.log_stream,
                "durationMs": round(report.duration_ms, 3),
                "billedDurationMs": report.billed_ms,
                "maxMemoryUsedMB": report.max_memory_used_mb,
                "initDurationMs": (
                    round(report.init_ms, 3) if report.init_ms is not None else None
                ),
                "cold": report.init_ms is not None,
                "status": report.outcome.kind.value,
                "errorType": report.outcome.error_type,
                "functionError": report.function_error,
            }
        )

    def init_reported(self, report: InitReport) -> None:
        pass

    def throttled(self, function: str, version: str, reason: str) -> None:
        outcome = InvokeOutcome.throttle(reason)
        self._items.appendleft(
            {
                "time": time.time(),
                "requestId": None,
                "function": function,
                "version": version,
                "envId": None,
                "logStream": None,
                "durationMs": None,
                "billedDurationMs": None,
                "maxMemoryUsedMB": None,
                "initDurationMs": None,
                "cold": False,
                "status": outcome.kind.value,
                "errorType": outcome.error_type,
                "functionError": None,
            }
        )

    def items(self) -> list[dict[str, Any]]:
        return list(self._items)


POOL_KEY = web.AppKey("pool", Pool)
BACKEND_KEY = web.AppKey("backend", SandboxBackend)
RECENT_KEY = web.AppKey("recent", RecentInvocations)
STATS_KEY = web.AppKey("stats", FunctionStats)
EVENTS_KEY = web.AppKey("test_events", TestEvents)
PROGRESS_KEY = web.AppKey("progress", Progress)


def describe_environment(env: Environment, now: float) -> dict[str, Any]:
    fn = env.function
    return {
        "id": env.env_id,
        "function": fn.name,
        "version": fn.version,
        "state": env.state.value,
        "frozen": env.frozen,
        "memoryMB": fn.memory_mb,
        "ageSeconds": round(now - env.created_at, 3),
        "invocations": env.invocations,
        "logStream": env.log_stream_name,
        "timeline": [{"t": t, "event": ev, "detail": d} for t, ev, d in env.timeline],
    }


async def list_environments(request: web.Request) -> web.Response:
    now = time.time()
    pool = request.app[POOL_KEY]
    envs = [describe_environment(e, now) for e in pool.environments()]
    ended = [describe_environment(e, now) for e in pool.ended]
    return web.json_response({"Environments": envs, "Ended": ended})


async def backend_info(request: web.Request) -> web.Response:
    info = request.app[BACKEND_KEY].info()
    return web.json_response(
        {
            "backend": info.backend,
            "isolation": info.isolation,
            "cgroup": info.cgroup,
            "network": info.network,
            "reasons": list(info.reasons),
            "warnings": list(info.warnings),
            "agent": info.agent,
            "spares": {"ready": info.spares_ready, "wanted": info.spares_wanted},
            "protections": list(info.protections),
            "capabilities": sorted(info.capabilities),
        }
    )


async def list_invocations(request: web.Request) -> web.Response:
    return web.json_response({"Invocations": request.app[RECENT_KEY].items()})


async def request_debug(request: web.Request) -> web.Response:
    """``PUT /functions/{name}/debug`` ``{"port": N}``: the next invoke waits for a debugger."""
    try:
        body = await request.json()
    except ValueError:
        raise InvalidRequestContentException('expected {"port": N}') from None
    port = body.get("port") if isinstance(body, dict) else None
    if not isinstance(port, int) or isinstance(port, bool) or not 1024 <= port < 65536:
        raise InvalidParameterValueException("port must be a number from 1024 to 65535")
    name = request.match_info["name"]
    request.app[POOL_KEY].request_debug(name, port)
    return web.json_response({"function": name, "host": "127.0.0.1", "port": port})


async def progress(request: web.Request) -> web.Response:
    return web.json_response({"Running": request.app[PROGRESS_KEY].snapshot()})


async def function_stats(request: web.Request) -> web.Response:
    return web.json_response(request.app[STATS_KEY].snapshot())


async def list_test_events(request: web.Request) -> web.Response:
    events = request.app[EVENTS_KEY].list(request.match_info["name"])
    return web.json_response({"TestEvents": events})


async def put_test_event(request: web.Request) -> web.Response:
    try:
        event = await request.json()
    except ValueError:
        raise InvalidRequestContentException("a test event must be JSON") from None
    request.app[EVENTS_KEY].put(request.match_info["name"], request.match_info["event"], event)
    return web.json_response({"saved": request.match_info["event"]})


async def delete_test_event(request: web.Request) -> web.Response:
    request.app[EVENTS_KEY].delete(request.match_info["name"], request.match_info["event"])
    return web.Response(status=204)


def build_admin_app(
    pool: Pool,
    backend: SandboxBackend,
    recent: RecentInvocations,
    stats: FunctionStats | None = None,
    test_events: TestEvents | None = None,
    progress_of: Progress | None = None,
) -> web.Application:
    app = web.Application()
    app[POOL_KEY] = pool
    app[BACKEND_KEY] = backend
    app[RECENT_KEY] = recent
    app.router.add_get("/environments", list_environments)
    app.router.add_get("/invocations", list_invocations)
    app.router.add_get("/backend", backend_info)
    app.router.add_put("/functions/{name}/debug", request_debug)
    app[PROGRESS_KEY] = progress_of or Progress()
    app.router.add_get("/progress", progress)
    if stats is not None:
        app[STATS_KEY] = stats
        app.router.add_get("/functions", function_stats)
    if test_events is not None:
        app[EVENTS_KEY] = test_events
        events = "/functions/{name}/test-events"
        app.router.add_get(events, list_test_events)
        app.router.add_put(events + "/{event}", put_test_event)
        app.router.add_delete(events + "/{event}", delete_test_event)
    return app
