"""Image functions' code (part of ``Store``): the digest row, new images, failed pulls.

An image function's ``code_sha256`` is its manifest digest's hex; the ``image`` column holds
the URI, the digest and the ImageConfig as JSON.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from lambdalet.model import LATEST, FunctionRecord, ImageCode
from lambdalet.store.records import FAILED, PENDING, CodeBlob, dumps

if TYPE_CHECKING:
    from contextlib import AbstractContextManager

    from lambdalet.clock import Clock
    from lambdalet.store.connection import Connection


class ImageCodeMixin:
    """Image code records: methods of ``Store``."""

    if TYPE_CHECKING:  # provided by Store
        _db: Connection
        _clock: Clock

        def _tx(self) -> AbstractContextManager[None]: ...
        def get_function(self, name: str, qualifier: str | None = None) -> FunctionRecord: ...
        def _blob(self, sha256_hex: str) -> CodeBlob: ...
        def _updatable(self, name: str, revision_id: str | None) -> object: ...
        def _update(self, name: str, fields: Mapping[str, object]) -> FunctionRecord: ...

    def put_image_code(self, digest: str, size: int) -> CodeBlob:
        """The code record of an image function: its manifest digest, its compressed size
        (``CodeSize``); nothing unzipped (images are not part of the 250 MB zip quota)."""
        hex_digest = digest.removeprefix("sha256:")
        with self._tx():
            self._db.execute(
                "INSERT INTO code_blobs (sha256, size, unzipped_size, created_at)"
                " VALUES (?, ?, 0, ?) ON CONFLICT (sha256) DO UPDATE SET size = MAX(size, ?)",
                (hex_digest, size, self._clock.wall(), size),
            )
        return self._blob(hex_digest)

    def update_function_image(
        self,
        name: str,
        image: ImageCode,
        code: CodeBlob,
        *,
        architectures: tuple[str, ...] | None = None,
        revision_id: str | None = None,
    ) -> FunctionRecord:
        """A new image for ``$LATEST`` (UpdateFunctionCode); InProgress until it is pulled."""
        self._updatable(name, revision_id)
        fields: dict[str, object] = {
            "code_sha256": code.sha256_hex,
            "image": image_json(image),
            "status_reasons": None,
        }
        if architectures is not None:
            fields["architectures"] = dumps(list(architectures))
        return self._update(name, fields)

    def image_failed(self, name: str, reason_code: str, reason: str) -> FunctionRecord | None:
        """The image of ``$LATEST`` could not be pulled: a create ends in state Failed, an
        update in LastUpdateStatus Failed (the function keeps its state), as Lambda."""
        row = self._db.execute(
            "SELECT state FROM functions WHERE name = ? AND version = ?", (name, LATEST)
        ).fetchone()
        if row is None:
            return None
        creating = row["state"] == PENDING
        reasons = {"LastUpdateStatusReason": reason, "LastUpdateStatusReasonCode": reason_code}
        if creating:
            reasons |= {"StateReason": reason, "StateReasonCode": reason_code}
        with self._tx():
            self._db.execute(
                "UPDATE functions SET state = ?, last_update_status = ?, status_reasons = ?"
                " WHERE name = ? AND version = ?",
                (FAILED if creating else row["state"], FAILED, dumps(reasons), name, LATEST),
            )
        return self.get_function(name)

    def image_digests(self) -> set[str]:
        """Digests of every image some function version uses."""
        rows = self._db.execute("SELECT image FROM functions WHERE image IS NOT NULL")
        return {str(json.loads(r["image"])["digest"]) for r in rows}


def image_json(image: ImageCode | None) -> str | None:
    if image is None:
        return None
    return dumps({"uri": image.uri, "digest": image.digest, "config": dict(image.config)})


def image_fields(row: sqlite3.Row, blob: CodeBlob) -> dict[str, Any]:
    """FunctionRecord fields of an image function (CodeSha256 is the digest's hex)."""
    keys = row.keys()
    if "image" not in keys or row["image"] is None:
        return {}
    doc = json.loads(row["image"])
    uri = str(doc["uri"])
    at = uri.find("@")
    name = uri[:at] if at >= 0 else uri
    last = name.rfind(":")
    if last > name.rfind("/"):
        name = name[:last]
    image = ImageCode(uri, doc["digest"], f"{name}@{doc['digest']}", doc.get("config") or {})
    reasons = json.loads(row["status_reasons"]) if row["status_reasons"] else {}
    return {
        "package_type": row["package_type"],
        "image": image,
        "code_sha256": blob.sha256_hex,
        "status_reasons": reasons,
    }
