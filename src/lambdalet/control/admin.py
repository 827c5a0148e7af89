"""A small admin API for the CLI and tests: what environments exist, in which state.

Served under ``/lambdalet/`` next to the Lambda API (loopback by default).
"""

from __future__ import annotations

import time
from typing import Any

from aiohttp import web

from lambdalet.control.pool import Pool
from lambdalet.env.environment import Environment
from lambdalet.sandbox.base import SandboxBackend

POOL_KEY = web.AppKey("pool", Pool)
BACKEND_KEY = web.AppKey("backend", SandboxBackend)


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
    }


async def list_environments(request: web.Request) -> web.Response:
    now = time.time()
    envs = [describe_environment(e, now) for e in request.app[POOL_KEY].environments()]
    return web.json_response({"Environments": envs})


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
        }
    )


def build_admin_app(pool: Pool, backend: SandboxBackend) -> web.Application:
    app = web.Application()
    app[POOL_KEY] = pool
    app[BACKEND_KEY] = backend
    app.router.add_get("/environments", list_environments)
    app.router.add_get("/backend", backend_info)
    return app
