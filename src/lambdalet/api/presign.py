"""Presigned code-download URLs: GetFunction's and GetLayerVersion's ``Location``.

On AWS ``Code.Location`` is a presigned S3 URL valid for 10 minutes.  Here it is the
server's own download route with ``X-Amz-Date``, ``X-Amz-Expires`` and
``X-Amz-Signature`` in the query: an HMAC-SHA256, under a secret drawn when the server
starts, of the code's hash, the date and the lifetime.  A URL without them, with a
changed one, or past its lifetime is refused with S3's 403 (``AccessDenied``,
``SignatureDoesNotMatch``).  Pure apart from the clock it is given.
"""

from __future__ import annotations

import calendar
import hashlib
import hmac
import os
import time
from collections.abc import Mapping

from lambdalet.clock import Clock

#: what AWS gives GetFunction's Code.Location
DEFAULT_TTL_S = 600
#: S3's longest presigned lifetime (7 days)
MAX_TTL_S = 7 * 24 * 3600
_DATE_FORMAT = "%Y%m%dT%H%M%SZ"


class Refusal(Exception):
    """Why a URL is not honoured, in S3's terms (``code``: its error code)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


class CodeUrlSigner:
    """Signs and checks the query of code-download URLs."""

    def __init__(self, clock: Clock, secret: bytes | None = None, ttl_s: int = DEFAULT_TTL_S):
        self._secret = secret if secret is not None else os.urandom(32)
        self._clock = clock
        self.ttl_s = ttl_s

    def __repr__(self) -> str:
        return f"CodeUrlSigner(ttl_s={self.ttl_s})"

    def _mac(self, sha256_hex: str, date: str, expires: str) -> str:
        msg = f"{sha256_hex}\n{date}\n{expires}".encode()
        return hmac.new(self._secret, msg, hashlib.sha256).hexdigest()

    def query(self, sha256_hex: str) -> str:
        """The query string that makes the download URL of ``sha256_hex`` valid."""
        date = time.strftime(_DATE_FORMAT, time.gmtime(self._clock.wall()))
        expires = str(self.ttl_s)
        sig = self._mac(sha256_hex, date, expires)
        return f"X-Amz-Date={date}&X-Amz-Expires={expires}&X-Amz-Signature={sig}"

    def check(self, sha256_hex: str, query: Mapping[str, str]) -> None:
        """Raise :class:`Refusal` unless ``query`` is a valid, unexpired signature."""
        date = query.get("X-Amz-Date", "")
        expires = query.get("X-Amz-Expires", "")
        sig = query.get("X-Amz-Signature", "")
        if not (date and expires and sig):
            raise Refusal("AccessDenied", "Access Denied")
        if not hmac.compare_digest(self._mac(sha256_hex, date, expires), sig):
            raise Refusal(
                "SignatureDoesNotMatch",
                "The request signature we calculated does not match the signature you provided.",
            )
        try:
            signed_at = calendar.timegm(time.strptime(date, _DATE_FORMAT))
            lifetime = int(expires)
        except ValueError:
            raise Refusal("AccessDenied", "Access Denied") from None
        if not 0 < lifetime <= MAX_TTL_S:
            raise Refusal("AuthorizationQueryParametersError", "X-Amz-Expires is out of range")
        if self._clock.wall() > signed_at + lifetime:
            raise Refusal("AccessDenied", "Request has expired")
