"""Keep functions off the control plane: requests from inside a sandbox are refused.

A function reaches the host's loopback as ``host.lambdalet.internal`` (slirp4netns),
so without this it could drive the whole API, the admin endpoints, ``/metrics`` and
the dashboard of the server that runs it.  Whether a connection came from a sandbox
is decided once per connection (``is_sandbox(peer, local)``, by default
:func:`lambdalet.sandbox.peers.from_sandbox`) and remembered for the connection's life.

A request from a sandbox passes only when it carries credentials: the server enforces
SigV4 (``credentials`` configured; the signature is then checked like any other), or
it is a code download, whose presigned URL is checked by its handler.
"""

from __future__ import annotations

import logging
import weakref
from collections.abc import Awaitable, Callable

from aiohttp import web
from aiohttp.typedefs import Middleware

from lambdalet.errors import AccessDeniedException

log = logging.getLogger(__name__)

Address = tuple[str, int]
PeerCheck = Callable[[Address, Address], bool]
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

DENIED = (
    "Requests from inside a function to the lambdalet control plane are refused: "
    "host.lambdalet.internal reaches the host's own services, not lambdalet's API. "
    "Configure credentials on the server (SigV4) to let functions call it."
)


def sandbox_guard(
    is_sandbox: PeerCheck, *, signed_api: bool, open_prefixes: tuple[str, ...]
) -> Middleware:
    """The middleware; ``signed_api``: every request is SigV4-verified after this one;
    ``open_prefixes``: paths whose handlers check credentials of their own."""
    verdicts: weakref.WeakKeyDictionary[object, bool] = weakref.WeakKeyDictionary()

    def came_from_sandbox(request: web.Request) -> bool:
        transport = request.transport
        if transport is None:
            return False
        known = verdicts.get(transport)
        if known is None:
            peer = transport.get_extra_info("peername")
            local = transport.get_extra_info("sockname")
            if not (isinstance(peer, tuple) and isinstance(local, tuple)):
                known = False  # not TCP (a unix socket): no sandbox reaches it
            else:
                try:
                    known = is_sandbox((peer[0], peer[1]), (local[0], local[1]))
                except OSError as e:
                    # unknown is not "no": refuse this request, ask again on the next
                    log.warning("cannot tell who made connection %s: %s", peer, e)
                    return True
            verdicts[transport] = known
        return known

    @web.middleware
    async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
        if (
            not signed_api
            and not request.path.startswith(open_prefixes)
            and came_from_sandbox(request)
        ):
            raise AccessDeniedException(DENIED)
        return await handler(request)

    return guard
