"""Image references (``ImageUri``): ``registry/repository:tag`` or ``...@sha256:<hex>``.

Pure.  Follows the distribution reference grammar closely enough for Lambda's uses: the
first path component is a registry when it has a dot or a colon or is ``localhost``;
Lambda itself requires one (an ECR host), so a reference without a registry is refused.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

_COMPONENT = r"[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*"
_NAME_RE = re.compile(rf"{_COMPONENT}(?:/{_COMPONENT})*")
_TAG_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")
_DIGEST_RE = re.compile(r"sha256:[a-f0-9]{64}")
_HOST_RE = re.compile(
    r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*"
    r"|\[[0-9a-fA-F:]+\])(?::[0-9]{1,5})?"
)


class BadReference(ValueError):
    """Not an image reference Lambda would take."""


@dataclass(frozen=True)
class ImageRef:
    registry: str  # host[:port]
    repository: str  # path below the registry
    tag: str | None
    digest: str | None  # sha256:<hex>

    @property
    def name(self) -> str:
        return f"{self.registry}/{self.repository}"

    def __str__(self) -> str:
        out = self.name
        if self.tag is not None:
            out += f":{self.tag}"
        if self.digest is not None:
            out += f"@{self.digest}"
        return out

    def pinned(self, digest: str) -> str:
        """``registry/repository@sha256:...``: Lambda's ResolvedImageUri."""
        return f"{self.name}@{digest}"

    @property
    def host(self) -> str:
        """The registry's host without its port."""
        host = self.registry
        if host.startswith("["):
            return host[1 : host.index("]")]
        return host.rsplit(":", 1)[0] if ":" in host else host

    def is_loopback(self) -> bool:
        if self.host == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False


def parse(uri: str) -> ImageRef:
    """Parse ``uri``; raises :class:`BadReference`."""
    if not uri or len(uri) > 256 or uri != uri.strip():
        raise BadReference(uri)
    rest, digest = uri, None
    if "@" in rest:
        rest, digest = rest.split("@", 1)
        if not _DIGEST_RE.fullmatch(digest):
            raise BadReference(uri)
    first, sep, path = rest.partition("/")
    if not sep or not ("." in first or ":" in first or first == "localhost"):
        raise BadReference(uri)
    if not _HOST_RE.fullmatch(first):
        raise BadReference(uri)
    tag = None
    last_slash = path.rfind("/")
    colon = path.rfind(":")
    if colon > last_slash:
        path, tag = path[:colon], path[colon + 1 :]
        if not _TAG_RE.fullmatch(tag):
            raise BadReference(uri)
    if not _NAME_RE.fullmatch(path):
        raise BadReference(uri)
    if tag is None and digest is None:
        raise BadReference(uri)  # Lambda wants a tag or a digest, not an implied latest
    return ImageRef(first, path, tag, digest)
