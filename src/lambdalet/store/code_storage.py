"""Zip code on disk and its rows (part of ``Store``): uploads, the storage limit, collection.

Each zip is kept under its SHA-256 with its unpacked tree beside it.  Code nothing refers to
(no function version, no layer version, no live environment) is collected; a deleted tree
goes to the trash first and is emptied in a thread.  On a shared (cluster) database the zip
itself is in the row and each node unpacks it when it first needs it.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from lambdalet.errors import CodeStorageExceededException, DiskFullException
from lambdalet.store import code as codes
from lambdalet.store.disk import SpaceReserve, is_disk_full
from lambdalet.store.records import CodeBlob

if TYPE_CHECKING:
    from contextlib import AbstractContextManager

    from lambdalet.clock import Clock
    from lambdalet.config import ServerConfig
    from lambdalet.store.connection import Connection

log = logging.getLogger(__name__)
MIB = 1024 * 1024
#: code uploads from this size on are logged with their sizes and the time they took
LARGE_CODE_BYTES = 5 * MIB
CODE_STORAGE_EXCEEDED = "Code storage limit exceeded."
#: uploaded code nothing refers to yet is kept this long (its request is still on its way to
#: referring to it; a failed or dry-run request's code goes at a later collection)
FRESH_CODE_S = 60.0

#: every code hash a function version or a layer version refers to (a deleted layer version's
#: code stays while functions still use it)
_REFERENCED_CODE = (
    "SELECT code_sha256 FROM functions"
    " UNION SELECT code_sha256 FROM layer_versions"
    " UNION SELECT json_extract(j.value, '$.sha256') FROM functions f, json_each(f.layers) j"
)


class CodeStorageMixin:
    """Code uploads, lookups and collection: methods of ``Store``."""

    if TYPE_CHECKING:  # provided by Store (set in its __init__)
        _db: Connection
        _clock: Clock
        _config: ServerConfig
        _reserve: SpaceReserve
        code_in_use: Callable[[], set[Path]]
        _uploads: int
        _fresh: dict[str, float]
        _collect_wanted: bool
        _collect_deferred: bool
        _trash_task: asyncio.Future[None] | None
        shared: bool

        def _tx(self) -> AbstractContextManager[None]: ...
        def account_usage(self) -> tuple[int, int]: ...

    async def put_code(self, zip_bytes: bytes) -> CodeBlob:
        """Store and unpack a zip (in a worker thread); bad or oversize zips raise 400s, code
        past the storage limit CodeStorageExceededException, a full disk DiskFullException.

        The new code is kept from collection until a function or layer version refers to
        it, or for ``FRESH_CODE_S`` (a dry run's or a refused request's code goes later)."""
        self.check_code_storage(len(zip_bytes))
        started = time.monotonic()
        large = len(zip_bytes) >= LARGE_CODE_BYTES
        if large:
            log.info("storing and unpacking %.1f MiB of code", len(zip_bytes) / MIB)
        self._uploads += 1
        try:
            blob = await asyncio.to_thread(
                codes.store_zip, zip_bytes, self._config.blobs_dir, self._config.code_dir
            )
            if large:
                log.info(
                    "code %s: %.1f MiB unpacked to %.1f MiB in %.1f s",
                    blob.sha256_hex[:12],
                    blob.size / MIB,
                    blob.unzipped_size / MIB,
                    time.monotonic() - started,
                )
            with self._tx():
                self._db.execute(
                    "INSERT OR IGNORE INTO code_blobs (sha256, size, unzipped_size, created_at)"
                    " VALUES (?, ?, ?, ?)",
                    (blob.sha256_hex, blob.size, blob.unzipped_size, self._clock.wall()),
                )
                if self.shared:  # every node unpacks it from there (_local_code)
                    self._db.execute(
                        "UPDATE code_blobs SET data = ? WHERE sha256 = ? AND data IS NULL",
                        (zip_bytes, blob.sha256_hex),
                    )
            self._fresh[blob.sha256_hex] = self._clock.monotonic()
        except OSError as e:
            if is_disk_full(e):
                raise DiskFullException(self._config.data_dir) from e
            raise
        finally:
            self._uploads -= 1
            if self._uploads == 0 and self._collect_wanted:
                asyncio.get_running_loop().call_soon(self.collect_code)
        return blob

    def check_code_storage(self, adding: int) -> None:
        """CodeStorageExceededException if ``adding`` more zipped bytes pass the limit."""
        used, _ = self.account_usage()
        if used + adding > self._config.code_storage_limit:
            raise CodeStorageExceededException(CODE_STORAGE_EXCEEDED)

    def collect_code(self) -> None:
        """Remove the code (zip, unpacked tree) that no function version or layer version
        refers to and no live environment runs from; retake the space reserve.

        Deferred while an upload is in flight (its code is not referenced yet).  Runs in one
        step of the event loop (renames and unlinks); the trees are deleted in a thread.
        """
        if self._uploads:
            self._collect_wanted = True
            return
        self._collect_wanted = False
        c = self._config
        try:
            referenced = {str(r[0]) for r in self._db.execute(_REFERENCED_CODE)}
            in_use = {p.name for p in self.code_in_use() if p.parent == c.code_dir}
            rows = {str(r[0]) for r in self._db.execute("SELECT sha256 FROM code_blobs")}
            on_disk = codes.stored_hashes(c.blobs_dir, c.code_dir)
            now = self._clock.monotonic()
            self._fresh = {h: t for h, t in self._fresh.items() if now - t < FRESH_CODE_S}
            unreferenced = (rows | on_disk) - referenced - self._fresh.keys()
            garbage = unreferenced - in_use
            self._collect_deferred = bool(unreferenced & in_use)
            # another node's fresh upload is not referenced yet either: shared rows stay
            doomed_rows = [] if self.shared else sorted(garbage & rows)
            if doomed_rows:
                with self._tx():
                    self._db.executemany(
                        "DELETE FROM code_blobs WHERE sha256 = ?", [(h,) for h in doomed_rows]
                    )
            for hexd in sorted(garbage):
                codes.discard(hexd, c.blobs_dir, c.code_dir, c.trash_dir)
            codes.discard_scratch(c.blobs_dir, c.code_dir, c.trash_dir)
        except Exception:
            log.exception("collecting unreferenced code")
        self._empty_trash()
        self._reserve.take()

    def _empty_trash(self) -> None:
        if not self._config.trash_dir.is_dir():
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            codes.empty_trash(self._config.trash_dir)
            return
        if self._trash_task is None or self._trash_task.done():
            self._trash_task = loop.run_in_executor(None, codes.empty_trash, self._config.trash_dir)
        else:  # emptying already: go again once it is done
            self._trash_task.add_done_callback(lambda _: self._empty_trash())

    def environment_gone(self) -> None:
        """An environment ended: collect the code that was left only because it ran it."""
        if self._collect_deferred:
            self.collect_code()

    async def settle_collection(self) -> None:
        """Wait until the trees collected so far are deleted (tests, shutdown)."""
        while self._trash_task is not None and not self._trash_task.done():
            await asyncio.shield(self._trash_task)

    def _release_reserve(self) -> bool:
        released = self._reserve.release()
        if released:
            log.warning(
                "the data disk is full: released the %d-byte space reserve so that a delete "
                "can proceed",
                self._reserve.size,
            )
        return released

    def code_zip_path(self, sha256_hex: str) -> Path | None:
        """The stored zip of a known code hash, for the download URL."""
        row = self._db.execute(
            "SELECT 1 FROM code_blobs WHERE sha256 = ?", (sha256_hex,)
        ).fetchone()
        path = self._config.blobs_dir / f"{sha256_hex}.zip"
        return path if row is not None and path.is_file() else None

    def _blob(self, sha256_hex: str) -> CodeBlob:
        row = self._db.execute(
            "SELECT size, unzipped_size FROM code_blobs WHERE sha256 = ?", (sha256_hex,)
        ).fetchone()
        return CodeBlob(
            sha256_hex=sha256_hex,
            sha256_b64=base64.b64encode(bytes.fromhex(sha256_hex)).decode(),
            size=int(row["size"]),
            unzipped_size=int(row["unzipped_size"]),
            code_dir=self._config.code_dir / sha256_hex,
        )

    def _local_code(self, sha256_hex: str) -> None:
        """A cluster node unpacks code it has not got yet from the shared database."""
        if (self._config.code_dir / sha256_hex).is_dir():
            return
        row = self._db.execute(
            "SELECT data FROM code_blobs WHERE sha256 = ?", (sha256_hex,)
        ).fetchone()
        if row is None or row["data"] is None:
            return  # an image's digest, or gone
        codes.store_zip(bytes(row["data"]), self._config.blobs_dir, self._config.code_dir)
