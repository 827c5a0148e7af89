"""AWS Signature Version 4 on every API request, verified with botocore's own signer.

The server recomputes the signature of the request it received (method, path and
query as sent, the headers the client listed in ``SignedHeaders``, the body) with
the secret configured for the access key, through ``botocore.auth.SigV4Auth``, and
compares.  Nothing here reimplements the algorithm.

The code download route (``/lambdalet/code/<sha256>.zip``) needs no SigV4 header:
GetFunction's ``Code.Location`` is a presigned URL clients fetch as it is (a presigned
S3 URL on AWS), checked by its handler (``api/presign.py``).
"""

from __future__ import annotations

import calendar
import hashlib
import hmac
import re
import time
from collections.abc import Awaitable, Callable

from aiohttp import web
from aiohttp.typedefs import Middleware
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from lambdalet.clock import Clock
from lambdalet.config import ServerConfig
from lambdalet.errors import (
    InvalidSignatureException,
    MissingAuthenticationTokenException,
    UnrecognizedClientException,
)

UNSIGNED_PATHS = ("/lambdalet/code/",)
MAX_SKEW_S = 15 * 60
_AUTH_RE = re.compile(
    r"AWS4-HMAC-SHA256\s+Credential=(?P<akid>[^/\s]+)/(?P<date>\d{8})/(?P<region>[^/\s]+)/"
    r"(?P<service>[^/\s]+)/aws4_request,\s*SignedHeaders=(?P<headers>[a-z0-9;._-]+),\s*"
    r"Signature=(?P<signature>[0-9a-f]{64})"
)
MISMATCH = (
    "The request signature we calculated does not match the signature you provided. "
    "Check your AWS Secret Access Key and signing method. Consult the service documentation "
    "for details."
)


def _parse_amz_date(value: str) -> float | None:
    try:
        return float(calendar.timegm(time.strptime(value, "%Y%m%dT%H%M%SZ")))
    except ValueError:
        return None


class SigV4Verifier:
    def __init__(self, config: ServerConfig, clock: Clock) -> None:
        self._secrets = dict(config.credentials)
        self._clock = clock

    def __repr__(self) -> str:
        return f"SigV4Verifier(keys={len(self._secrets)})"

    @property
    def middleware(self) -> Middleware:
        @web.middleware
        async def sigv4(
            request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
        ) -> web.StreamResponse:
            if not request.path.startswith(UNSIGNED_PATHS):
                await self.verify(request)
            return await handler(request)

        return sigv4

    async def verify(self, request: web.Request) -> None:
        header = request.headers.get("Authorization")
        if not header:
            raise MissingAuthenticationTokenException("Missing Authentication Token")
        m = _AUTH_RE.fullmatch(header.strip())
        if m is None:
            raise InvalidSignatureException(
                "Authorization header requires 'Credential', 'Signature' and 'SignedHeaders' "
                "parameters of the AWS4-HMAC-SHA256 scheme."
            )
        secret = self._secrets.get(m["akid"])
        if secret is None:
            raise UnrecognizedClientException(
                "The security token included in the request is invalid."
            )
        amz_date = request.headers.get("X-Amz-Date", "")
        signed_at = _parse_amz_date(amz_date)
        if signed_at is None or not amz_date.startswith(m["date"]):
            raise InvalidSignatureException("X-Amz-Date is missing or does not match the scope.")
        now = self._clock.wall()
        if abs(now - signed_at) > MAX_SKEW_S:
            raise InvalidSignatureException(
                f"Signature expired: {amz_date} is now earlier than "
                f"{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime(now - MAX_SKEW_S))} "
                f"({time.strftime('%Y%m%dT%H%M%SZ', time.gmtime(now))} - 15 min.)"
            )
        body = await request.read()
        names = m["headers"].split(";")
        claimed = request.headers.get("X-Amz-Content-SHA256")
        if claimed not in (None, "UNSIGNED-PAYLOAD", hashlib.sha256(body).hexdigest()):
            raise InvalidSignatureException(MISMATCH)
        headers = {n: request.headers.get(n, "") for n in names}
        aws_request = AWSRequest(
            method=request.method,
            url=f"{request.scheme}://{request.host}{request.raw_path}",
            headers=headers,
            data=body,
        )
        aws_request.context["timestamp"] = amz_date
        signer = SigV4Auth(Credentials(m["akid"], secret), m["service"], m["region"])
        canonical = signer.canonical_request(aws_request)
        expected = signer.signature(signer.string_to_sign(aws_request, canonical), aws_request)
        if not hmac.compare_digest(expected, m["signature"]):
            raise InvalidSignatureException(MISMATCH)


def is_loopback(host: str) -> bool:
    """Whether binding ``host`` keeps the API on this machine."""
    import ipaddress

    if host in ("localhost", "ip6-localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
