"""``POST /lambdalet/admin/images?name=REPO:TAG``: an image built on this host (an OCI
archive, ``buildah push IMAGE oci-archive:FILE``) goes straight into the image store as
``lambdalet.local/REPO:TAG``, for ``lambdalet deploy``'s SAM image functions.  No
registry in between."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path

from aiohttp import web

from lambdalet.images.cache import LOCAL_REGISTRY, ImageCache, PullError
from lambdalet.images.reference import BadReference, parse


def upload_handler(cache: ImageCache) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def upload(request: web.Request) -> web.Response:
        name = request.query.get("name", "")
        arch = request.query.get("architecture", "x86_64")
        try:
            parse(f"{LOCAL_REGISTRY}/{name}")
        except BadReference:
            return web.json_response({"message": f"bad image name {name!r}"}, status=400)
        cache.root.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".upload-", suffix=".tar", dir=cache.root)
        try:
            with os.fdopen(fd, "wb") as f:
                async for chunk in request.content.iter_chunked(1 << 20):
                    f.write(chunk)
            digest = await cache.import_archive(Path(tmp), name, arch)
        except PullError as e:
            return web.json_response({"message": e.message, "code": e.reason_code}, status=400)
        finally:
            os.unlink(tmp)
        return web.json_response({"imageUri": f"{LOCAL_REGISTRY}/{name}", "digest": digest})

    return upload
