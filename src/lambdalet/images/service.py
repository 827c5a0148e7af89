"""Image functions' code, between the API and the cache: resolve, pull in the background,
settle the function (Active / Successful) or fail it with Lambda's reason code.

The API resolves a tag to a digest before answering (Lambda does too: ``CodeSha256`` and
``ResolvedImageUri`` are in the CreateFunction response); the pull and unpack happen
after the response, with the function ``Pending`` (a create) or ``InProgress`` (an
update) meanwhile.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from lambdalet.config import ServerConfig
from lambdalet.errors import InvalidParameterValueException
from lambdalet.images.cache import (
    IMAGE_ACCESS_DENIED,
    IMAGE_DELETED,
    ImageCache,
    PulledImage,
    PullError,
)
from lambdalet.images.reference import ImageRef, parse
from lambdalet.model import FunctionRecord

logger = logging.getLogger(__name__)


def cache_for(config: ServerConfig) -> ImageCache:
    return ImageCache(
        config.images_dir,
        insecure_registries=config.insecure_registries,
        auth_file=config.registry_auth_file,
    )


def resolve_error(uri: str, e: PullError) -> InvalidParameterValueException:
    """What CreateFunction / UpdateFunctionCode answer when the image cannot be resolved."""
    logger.info("resolving %s failed (%s): %s", uri, e.reason_code, e.message)
    if e.reason_code == IMAGE_ACCESS_DENIED:
        return InvalidParameterValueException(
            "Lambda does not have permission to access the ECR image. Check the ECR permissions."
        )
    if e.reason_code == IMAGE_DELETED:
        return InvalidParameterValueException(
            f"Source image {uri} does not exist. Provide a valid source image."
        )
    return InvalidParameterValueException(
        f"The image manifest, config or layer media type for the source image {uri} is not "
        f"supported. ({e.message})"
    )


async def resolve(cache: ImageCache, ref: ImageRef, uri: str, architecture: str) -> str:
    try:
        return await cache.resolve(ref, architecture)
    except PullError as e:
        raise resolve_error(uri, e) from None


async def pull_then(
    cache: ImageCache,
    record: FunctionRecord,
    *,
    settle: Callable[[], Awaitable[object]],
    fail: Callable[[str, str], object],
) -> None:
    """Pull ``record``'s image; then ``settle()``, or ``fail(reason_code, reason)``."""
    image = record.image
    assert image is not None
    try:
        await cache.pull(parse(image.uri), image.digest, record.architectures[0])
    except PullError as e:
        logger.warning("pulling %s for %s failed: %s", image.uri, record.name, e.message)
        fail(e.reason_code, f"{_reason_prefix(e.reason_code)} {e.message}")
        return
    await settle()


def _reason_prefix(code: str) -> str:
    return {
        IMAGE_ACCESS_DENIED: "Lambda does not have permission to access the image.",
        IMAGE_DELETED: "The image does not exist or was deleted.",
    }.get(code, "The image is not valid:")


async def ensure(cache: ImageCache, record: FunctionRecord) -> PulledImage:
    """The unpacked image of ``record`` (pulled again if the cache lost it)."""
    image = record.image
    assert image is not None
    have = cache.load(image.digest)
    if have is not None:
        return have
    return await cache.pull(parse(image.uri), image.digest, record.architectures[0])
