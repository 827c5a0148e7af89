"""The invoke path: pool → environment → answer."""

from __future__ import annotations

from lambdalet.control.pool import Pool
from lambdalet.env.observer import EnvObserver
from lambdalet.errors import TooManyRequestsException
from lambdalet.model import FunctionRecord, InvokeInput, InvokeOutput, ProvisionResult


class PoolInvoker:
    """Implements ``model.Invoker`` on top of the environment pool."""

    def __init__(self, pool: Pool, observer: EnvObserver | None = None) -> None:
        self._pool = pool
        #: told about throttles (environments tell it about everything else)
        self._observer = observer

    async def invoke(self, request: InvokeInput) -> InvokeOutput:
        try:
            env = await self._pool.acquire(request.function)
        except TooManyRequestsException as e:
            if self._observer is not None:
                fn = request.function
                self._observer.throttled(fn.name, fn.version, str(e.extra.get("Reason", "")))
            raise
        return await env.invoke(request)

    async def retire(self, function_name: str, version: str | None = None) -> None:
        await self._pool.retire(function_name, version)

    async def provision(
        self, config_key: str, function: FunctionRecord, count: int
    ) -> ProvisionResult:
        return await self._pool.provision(config_key, function, count)

    async def unprovision(self, config_key: str) -> None:
        await self._pool.unprovision(config_key)
