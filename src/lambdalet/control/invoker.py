"""The invoke path: pool → environment → answer."""

from __future__ import annotations

from lambdalet.control.pool import Pool
from lambdalet.model import FunctionRecord, InvokeInput, InvokeOutput, ProvisionResult


class PoolInvoker:
    """Implements ``model.Invoker`` on top of the environment pool."""

    def __init__(self, pool: Pool) -> None:
        self._pool = pool

    async def invoke(self, request: InvokeInput) -> InvokeOutput:
        env = await self._pool.acquire(request.function)
        return await env.invoke(request)

    async def retire(self, function_name: str, version: str | None = None) -> None:
        await self._pool.retire(function_name, version)

    async def provision(
        self, config_key: str, function: FunctionRecord, count: int
    ) -> ProvisionResult:
        return await self._pool.provision(config_key, function, count)

    async def unprovision(self, config_key: str) -> None:
        await self._pool.unprovision(config_key)
