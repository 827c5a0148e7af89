"""What every group of the Lambda API's operations shares: the store, the invoker, the
background tasks, and the helpers that settle a function or build its configuration."""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable
from typing import Any

from aiohttp import web

from lambdalet.api import shapes
from lambdalet.api.arns import Scope
from lambdalet.api.plumbing import function_target
from lambdalet.api.presign import CodeUrlSigner
from lambdalet.api.tasks import BackgroundTasks
from lambdalet.control.async_queue import AsyncQueue
from lambdalet.control.concurrency import ConcurrencyLimits
from lambdalet.control.provisioned import Provisioner
from lambdalet.errors import (
    DiskFullException,
    InvalidParameterValueException,
    ProvisionedConcurrencyConfigNotFoundException,
)
from lambdalet.images import service as images
from lambdalet.images.cache import ImageCache
from lambdalet.model import FunctionRecord, Invoker
from lambdalet.store import Store

CODE_ROUTE = "/lambdalet/code/{sha256}.zip"

#: a function that could not settle (Pending → Active) because the disk was full tries again
SETTLE_RETRY_S = 1.0

log = logging.getLogger(__name__)

#: The id of this request (uuid4): x-amzn-RequestId, and an invocation's request id.
REQUEST_ID_KEY = web.RequestKey("lambdalet_request_id", str)


class HandlerBase:
    """The state and helpers every group of operations (``*_ops.py``) shares."""

    def __init__(
        self,
        scope: Scope,
        store: Store,
        invoker: Invoker,
        tasks: BackgroundTasks,
        settle_delay_s: float = 0.0,
        *,
        queue: AsyncQueue,
        limits: ConcurrencyLimits,
        provisioner: Provisioner,
        signer: CodeUrlSigner,
        draw: Callable[[], float] = random.random,
        images: ImageCache | None = None,
        runtime_problem: Callable[[str], str | None] = lambda _runtime: None,
        runtime_note: Callable[[str], str | None] = lambda _runtime: None,
    ) -> None:
        self.scope = scope
        self.store = store
        self.invoker = invoker
        self.tasks = tasks
        self.settle_delay_s = settle_delay_s
        self.queue = queue
        self.limits = limits
        self.provisioner = provisioner
        self.signer = signer
        self.draw = draw
        self.images = images
        #: why a runtime cannot run on this server (--python-fallback refuse), or None
        self.runtime_problem = runtime_problem
        #: what a function's runtime runs on when it is not the version it names, or None
        self.runtime_note = runtime_note

    def _settle_later(self, name: str) -> None:
        """Pending → Active, InProgress → Successful, just after the response is sent."""

        async def settle() -> None:
            await asyncio.sleep(self.settle_delay_s)
            while True:
                try:
                    self.store.settle(name)
                    return
                except DiskFullException:
                    log.warning("%s stays Pending/InProgress until the data disk has room", name)
                    await asyncio.sleep(SETTLE_RETRY_S)

        self.tasks.spawn(settle(), name=f"settle {name}")

    def _code_url(self, request: web.Request, sha256_hex: str) -> str:
        """A presigned download URL of the zip, valid for ``signer.ttl_s`` (10 min)."""
        path = CODE_ROUTE.format(sha256=sha256_hex)
        return f"{request.scheme}://{request.host}{path}?{self.signer.query(sha256_hex)}"

    async def _configuration(
        self, record: FunctionRecord, alias: str | None = None
    ) -> dict[str, Any]:
        out = shapes.function_configuration(record, self.scope, alias)
        note = await asyncio.to_thread(self.runtime_note, record.runtime)
        return shapes.with_runtime_note(out, note)

    def _check_runtime(self, runtime: str) -> None:
        problem = self.runtime_problem(runtime)
        if problem is not None:
            raise InvalidParameterValueException(problem)

    def _function(self, request: web.Request) -> tuple[str, str | None]:
        return function_target(request, self.scope)

    def _image_cache(self) -> ImageCache:
        if self.images is None:
            raise InvalidParameterValueException(
                "Container images are not supported by this server (no image store)."
            )
        return self.images

    def _pull_later(self, record: FunctionRecord, publish: bool = False) -> None:
        """Pull the image of ``$LATEST`` after the response: then Active / Successful (and
        the version published if asked), or Failed with Lambda's reason code."""
        name = record.name

        async def settle() -> None:
            self.store.settle(name)
            if publish:
                self.store.publish_version(name)

        async def pull() -> None:
            await images.pull_then(
                self._image_cache(),
                record,
                settle=settle,
                fail=lambda code, reason: self.store.image_failed(name, code, reason),
            )

        self.tasks.spawn(pull(), name=f"pull image of {name}")

    def _prune_images_later(self) -> None:
        """Remove pulled images no function version uses any more."""
        if self.images is not None:
            self.tasks.spawn(self.images.prune(self.store.image_digests), name="prune images")

    def _reprovision(self, name: str, qualifier: str) -> None:
        """An alias moved: its provisioned environments follow the new version."""
        try:
            config = self.store.provisioned_config(name, qualifier)
        except ProvisionedConcurrencyConfigNotFoundException:
            return
        self.provisioner.apply(name, qualifier, config.requested)
