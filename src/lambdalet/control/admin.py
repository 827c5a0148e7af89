"""A small admin API for the CLI and tests: what environments exist, in which state.

Served under ``/lambdalet/`` next to the Lambda API (loopback by default).
"""

from __future__ import annotations

import time
from collections import deque
from typing import Any

from aiohttp import web

from lambdalet.control.pool import Pool
from lambdalet.env.environment import Environment
from lambdalet.env.observer import InitReport, InvokeReport
from lambdalet.env.outcome import InvokeOutcome
from lambdalet.sandbox.base import SandboxBackend

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
        }
    )


async def list_invocations(request: web.Request) -> web.Response:
    return web.json_response({"Invocations": request.app[RECENT_KEY].items()})


def build_admin_app(
    pool: Pool, backend: SandboxBackend, recent: RecentInvocations
) -> web.Application:
    app = web.Application()
    app[POOL_KEY] = pool
    app[BACKEND_KEY] = backend
    app[RECENT_KEY] = recent
    app.router.add_get("/environments", list_environments)
    app.router.add_get("/invocations", list_invocations)
    app.router.add_get("/backend", backend_info)
    return app
