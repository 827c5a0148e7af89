"""The SQLite store: functions ($LATEST rows, a version column for later), layer versions, code.

One connection, used from the event loop thread; every operation is a few small statements.
Only zip hashing and unpacking leave the loop (``put_code`` runs them in a worker thread).
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import sqlite3
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from lambdalet.clock import Clock, SystemClock
from lambdalet.config import ServerConfig
from lambdalet.errors import (
    CodeStorageExceededException,
    DiskFullException,
    InvalidParameterValueException,
    PreconditionFailedException,
    ResourceConflictException,
    ResourceNotFoundException,
)
from lambdalet.model import LATEST, FunctionRecord, ImageCode, LayerRef
from lambdalet.store import code as codes
from lambdalet.store import pg
from lambdalet.store.async_events import AsyncEventsMixin
from lambdalet.store.connection import Connection
from lambdalet.store.disk import SpaceReserve, frees_space, is_disk_full, secure
from lambdalet.store.records import (
    ACTIVE,
    FAILED,
    IN_PROGRESS,
    MAX_UNZIPPED_BYTES,
    PENDING,
    SUCCESSFUL,
    CodeBlob,
    FunctionPatch,
    FunctionSpec,
    LayerKey,
    LayerVersionRecord,
    LayerVersionSpec,
    LoggingSettings,
    Page,
)
from lambdalet.store.schema import migrate
from lambdalet.store.triggers import TriggersMixin
from lambdalet.store.versions import VersionsMixin

log = logging.getLogger(__name__)
MIB = 1024 * 1024
#: code uploads from this size on are logged with their sizes and the time they took
LARGE_CODE_BYTES = 5 * MIB

REVISION_MISMATCH = (
    "The Revision Id provided does not match the latest Revision Id. "
    "Call the GetFunction/GetAlias API to retrieve the latest Revision Id"
)
LAYER_NOT_FOUND = "The resource you requested does not exist."
CODE_STORAGE_EXCEEDED = "Code storage limit exceeded."
#: uploaded code nothing refers to yet is kept this long (its request is still on its way to
#: referring to it; a failed or dry-run request's code goes at a later collection)
FRESH_CODE_S = 60.0
#: a cluster node re-reads the configuration version (other nodes' writes) at most this often
CONFIG_RECHECK_S = 0.25


#: every code hash a function version or a layer version refers to (a deleted layer version's
#: code stays while functions still use it)
_REFERENCED_CODE = (
    "SELECT code_sha256 FROM functions"
    " UNION SELECT code_sha256 FROM layer_versions"
    " UNION SELECT json_extract(j.value, '$.sha256') FROM functions f, json_each(f.layers) j"
)


def aws_timestamp(epoch_s: float) -> str:
    """``2019-11-21T19:32:12.000+0000``: the form Lambda uses for LastModified/CreatedDate."""
    ms = round(epoch_s * 1000)
    secs, millis = divmod(ms, 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs)) + f".{millis:03d}+0000"


class Store(VersionsMixin, AsyncEventsMixin, TriggersMixin):
    """Functions (versions, aliases), layer versions, code and the async queue of one data
    directory.  Reopening keeps everything."""

    def __init__(self, config: ServerConfig, clock: Clock | None = None) -> None:
        self._config = config
        self._clock = clock or SystemClock()
        secure(config.data_dir, config.db_path, config.logs_dir)
        config.blobs_dir.mkdir(parents=True, exist_ok=True)
        config.code_dir.mkdir(parents=True, exist_ok=True)
        self._reserve = SpaceReserve(config.data_dir, config.space_reserve_bytes)
        #: code folders live environments run from (set by the composition root): the
        #: collector leaves them until they are no longer in use
        self.code_in_use: Callable[[], set[Path]] = set
        self._uploads = 0  # put_code calls in flight: collection waits for them
        #: code hash -> when it was uploaded, until a function or layer version refers to it
        self._fresh: dict[str, float] = {}
        self._collect_wanted = False
        self._collect_deferred = False  # unreferenced code left because an environment uses it
        self._trash_task: asyncio.Future[None] | None = None
        #: (name, version) -> record, emptied by every write transaction (see get_function)
        self._records: dict[tuple[str, str], FunctionRecord] = {}
        #: a cluster's database (shared with other nodes) rather than this process's file
        self.shared = config.database_url is not None
        self._db: Connection
        self._config_seen = (-1, 0.0)  # (config_version, monotonic time read)
        if config.database_url is not None:
            self._db = pg.connect(config.database_url)
        else:
            sqlite_db = sqlite3.connect(config.db_path, isolation_level=None)
            sqlite_db.row_factory = sqlite3.Row
            sqlite_db.execute("PRAGMA journal_mode = WAL")
            # FULL: a committed async event (answered 202) survives power loss, not only a
            # crash
            sqlite_db.execute("PRAGMA synchronous = FULL")
            sqlite_db.execute("PRAGMA foreign_keys = ON")
            migrate(sqlite_db)
            self._db = sqlite_db
        # Transitions scheduled after a response can't outlive the process: settle them now.
        with self._tx():
            self._db.execute("UPDATE functions SET state = ? WHERE state = ?", (ACTIVE, PENDING))
            self._db.execute(
                "UPDATE functions SET last_update_status = ? WHERE last_update_status = ?",
                (SUCCESSFUL, IN_PROGRESS),
            )
        self._reserve.take()

    def __repr__(self) -> str:
        if self.shared:
            return f"Store(db={self._db!r})"
        return f"Store(db={str(self._config.db_path)!r})"

    @property
    def db(self) -> Connection:
        """The connection (cluster parts run their own statements on a shared one)."""
        return self._db

    def close(self) -> None:
        self._db.close()

    # ----------------------------------------------------------------- code

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
            "image": _image_json(image),
            "status_reasons": None,
        }
        if architectures is not None:
            fields["architectures"] = _dumps(list(architectures))
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
                (FAILED if creating else row["state"], FAILED, _dumps(reasons), name, LATEST),
            )
        return self.get_function(name)

    def image_digests(self) -> set[str]:
        """Digests of every image some function version uses."""
        rows = self._db.execute("SELECT image FROM functions WHERE image IS NOT NULL")
        return {str(json.loads(r["image"])["digest"]) for r in rows}

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

    # ------------------------------------------------------------ functions

    def function_arn(self, name: str) -> str:
        c = self._config
        return f"arn:aws:lambda:{c.region}:{c.account_id}:function:{name}"

    def layer_arn(self, name: str) -> str:
        c = self._config
        return f"arn:aws:lambda:{c.region}:{c.account_id}:layer:{name}"

    def create_function(self, spec: FunctionSpec, code: CodeBlob) -> FunctionRecord:
        """Insert ``$LATEST`` in state Pending.  A taken name raises ResourceConflictException."""
        layers = self._resolve_layers(spec.layers)
        self._check_total_size(code, layers)
        self.check_code_storage(code.size)
        now = aws_timestamp(self._clock.wall())
        with self._tx():
            taken = self._db.execute(
                "SELECT 1 FROM functions WHERE name = ?", (spec.name,)
            ).fetchone()
            if taken is not None:
                raise ResourceConflictException(f"Function already exist: {spec.name}")
            self._db.execute(
                "INSERT INTO functions (name, version, runtime, handler, role, memory_mb,"
                " timeout_s, ephemeral_mb, description, environment, layers, architectures,"
                " tracing_mode, logging, tags, code_sha256, revision_id, state,"
                " last_update_status, last_modified, package_type, image)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    spec.name,
                    LATEST,
                    spec.runtime,
                    spec.handler,
                    spec.role,
                    spec.memory_mb,
                    spec.timeout_s,
                    spec.ephemeral_mb,
                    spec.description,
                    _dumps(dict(spec.environment)),
                    _dumps(layers),
                    _dumps(list(spec.architectures)),
                    spec.tracing_mode,
                    _dumps(_logging_json(spec.logging)),
                    _dumps(dict(spec.tags)),
                    code.sha256_hex,
                    str(uuid.uuid4()),
                    PENDING,
                    IN_PROGRESS,
                    now,
                    spec.package_type,
                    _image_json(spec.image),
                ),
            )
            self._db.execute(
                "INSERT OR REPLACE INTO function_meta (name, last_version) VALUES (?, 0)",
                (spec.name,),
            )
        self._fresh.pop(code.sha256_hex, None)
        return self.get_function(spec.name)

    def get_function(self, name: str, qualifier: str | None = None) -> FunctionRecord:
        """One version (``$LATEST`` unless ``qualifier``); ResourceNotFoundException if absent.

        Records are cached until the next write transaction (this process is the only
        writer of its database): every invoke reads its function, so this keeps SQLite
        off the warm path.
        """
        key = (name, qualifier or LATEST)
        if self.shared:
            self._check_config_version()
        cached = self._records.get(key)
        if cached is not None:
            return cached
        row = self._db.execute(
            "SELECT * FROM functions WHERE name = ? AND version = ?", (name, qualifier or LATEST)
        ).fetchone()
        if row is None:
            arn = self.function_arn(name)
            raise ResourceNotFoundException(
                f"Function not found: {arn}:{qualifier}"
                if qualifier
                else f"Function not found: {arn}"
            )
        record = self._records[key] = self._record(row)
        return record

    def _check_config_version(self) -> None:
        """Drop cached records once another node wrote (read at most every 250 ms: a change
        made through another node shows here within that)."""
        seen, at = self._config_seen
        now = self._clock.monotonic()
        if now - at < CONFIG_RECHECK_S:
            return
        (version,) = self._db.execute("SELECT version FROM config_version").fetchone()
        if int(version) != seen:
            self._records.clear()
        self._config_seen = (int(version), now)

    def forget_cached(self) -> None:
        """Read records afresh (another node wrote one this node has cached)."""
        self._records.clear()
        self._config_seen = (-1, 0.0)

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

    def function_names(self) -> set[str]:
        rows = self._db.execute("SELECT name FROM functions WHERE version = ?", (LATEST,))
        return {str(r[0]) for r in rows}

    def list_functions(self, after: str | None, limit: int) -> Page[FunctionRecord]:
        """``$LATEST`` of every function ordered by name, starting after the name ``after``."""
        rows = self._db.execute(
            "SELECT * FROM functions WHERE version = ? AND name > ? ORDER BY name LIMIT ?",
            (LATEST, after or "", limit + 1),
        ).fetchall()
        items = tuple(self._record(r) for r in rows[:limit])
        return Page(items, items[-1].name if len(rows) > limit else None)

    def update_function_code(
        self,
        name: str,
        code: CodeBlob,
        *,
        architectures: tuple[str, ...] | None = None,
        revision_id: str | None = None,
    ) -> FunctionRecord:
        """New code for ``$LATEST``; LastUpdateStatus becomes InProgress until ``settle``."""
        current = self._updatable(name, revision_id)
        layers = [_layer_json_of(ref, self._config.code_dir) for ref in current.layers]
        self._check_total_size(code, layers)
        self.check_code_storage(code.size)
        fields: dict[str, object] = {"code_sha256": code.sha256_hex}
        if architectures is not None:
            fields["architectures"] = _dumps(list(architectures))
        record = self._update(name, fields)
        self._fresh.pop(code.sha256_hex, None)
        self.collect_code()  # the replaced code, unless a version or an environment has it
        return record

    def update_function_configuration(
        self, name: str, patch: FunctionPatch, *, revision_id: str | None = None
    ) -> FunctionRecord:
        """Apply ``patch`` to ``$LATEST``; LastUpdateStatus becomes InProgress until ``settle``."""
        current = self._updatable(name, revision_id)
        fields: dict[str, object] = {}
        plain = {
            "runtime": patch.runtime,
            "handler": patch.handler,
            "role": patch.role,
            "memory_mb": patch.memory_mb,
            "timeout_s": patch.timeout_s,
            "ephemeral_mb": patch.ephemeral_mb,
            "description": patch.description,
            "tracing_mode": patch.tracing_mode,
        }
        fields.update({k: v for k, v in plain.items() if v is not None})
        if patch.environment is not None:
            fields["environment"] = _dumps(dict(patch.environment))
        if patch.logging is not None:
            fields["logging"] = _dumps(_logging_json(patch.logging))
        if patch.image_config is not None:
            if current.image is None:
                raise InvalidParameterValueException(
                    "ImageConfig is not supported for functions created with deployment packages."
                )
            fields["image"] = _image_json(replace(current.image, config=patch.image_config))
        if patch.layers is not None:
            layers = self._resolve_layers(patch.layers)
            self._check_total_size(self._blob(current.code_sha256_hex), layers)
            fields["layers"] = _dumps(layers)
        record = self._update(name, fields)
        if patch.layers is not None:
            self.collect_code()  # layer versions deleted while this function used them
        return record

    def settle(self, name: str) -> FunctionRecord | None:
        """Finish a create (Pending → Active) or an update (InProgress → Successful).

        Returns the settled record, or ``None`` if the function is gone meanwhile.
        """
        with self._tx():
            self._db.execute(
                "UPDATE functions SET state = ?, last_update_status = ?, status_reasons = NULL"
                " WHERE name = ? AND version = ?",
                (ACTIVE, SUCCESSFUL, name, LATEST),
            )
        try:
            return self.get_function(name)
        except ResourceNotFoundException:
            return None

    @frees_space
    def delete_function(self, name: str) -> None:
        """Delete every version of the function; ResourceNotFoundException if absent."""
        with self._tx():
            cur = self._db.execute("DELETE FROM functions WHERE name = ?", (name,))
            if cur.rowcount == 0:
                raise ResourceNotFoundException(f"Function not found: {self.function_arn(name)}")
            self._forget_function(name)

    def total_unzipped_size(self, record: FunctionRecord) -> int:
        """Unzipped bytes of a function's code plus its layers (the 250 MB quota)."""
        shas = [record.code_dir.name] + [ref.code_dir.name for ref in record.layers]
        return sum(self._blob(s).unzipped_size for s in shas)

    # -------------------------------------------------------------- layers

    def publish_layer_version(self, spec: LayerVersionSpec, code: CodeBlob) -> LayerVersionRecord:
        """Add the next version of a layer (numbers are never reused, even after deletes)."""
        self.check_code_storage(code.size)
        now = aws_timestamp(self._clock.wall())
        with self._tx():
            row = self._db.execute(
                "SELECT last_version FROM layers WHERE name = ?", (spec.name,)
            ).fetchone()
            version = 1 if row is None else int(row["last_version"]) + 1
            self._db.execute(
                "INSERT INTO layers (name, last_version) VALUES (?, ?)"
                " ON CONFLICT (name) DO UPDATE SET last_version = excluded.last_version",
                (spec.name, version),
            )
            self._db.execute(
                "INSERT INTO layer_versions (name, version, description, license_info,"
                " compatible_runtimes, compatible_architectures, code_sha256, created_date)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    spec.name,
                    version,
                    spec.description,
                    spec.license_info,
                    _dumps(list(spec.compatible_runtimes)),
                    _dumps(list(spec.compatible_architectures)),
                    code.sha256_hex,
                    now,
                ),
            )
        self._fresh.pop(code.sha256_hex, None)
        return self.get_layer_version(spec.name, version)

    def get_layer_version(self, name: str, version: int) -> LayerVersionRecord:
        row = self._db.execute(
            "SELECT * FROM layer_versions WHERE name = ? AND version = ?", (name, version)
        ).fetchone()
        if row is None:
            raise ResourceNotFoundException(LAYER_NOT_FOUND)
        return self._layer_record(row)

    def list_layer_versions(
        self,
        name: str,
        *,
        runtime: str | None = None,
        architecture: str | None = None,
        after: int | None = None,
        limit: int = 50,
    ) -> Page[LayerVersionRecord]:
        """Versions of one layer, newest first, continuing below version ``after``."""
        rows = self._db.execute(
            "SELECT * FROM layer_versions WHERE name = ? AND version < ? ORDER BY version DESC",
            (name, after if after is not None else 2**62),
        ).fetchall()
        matching = [r for r in rows if _layer_matches(r, runtime, architecture)]
        items = tuple(self._layer_record(r) for r in matching[:limit])
        more = len(matching) > limit
        return Page(items, str(items[-1].version) if more else None)

    def list_layers(
        self,
        *,
        runtime: str | None = None,
        architecture: str | None = None,
        after: str | None = None,
        limit: int = 50,
    ) -> Page[LayerVersionRecord]:
        """The newest matching version of each layer, ordered by layer name."""
        rows = self._db.execute(
            "SELECT * FROM layer_versions WHERE name > ? ORDER BY name, version DESC",
            (after or "",),
        ).fetchall()
        latest: list[sqlite3.Row] = []
        for r in rows:
            if latest and latest[-1]["name"] == r["name"]:
                continue
            if _layer_matches(r, runtime, architecture):
                latest.append(r)
        items = tuple(self._layer_record(r) for r in latest[:limit])
        return Page(items, items[-1].name if len(latest) > limit else None)

    @frees_space
    def delete_layer_version(self, name: str, version: int) -> None:
        """Idempotent, like AWS.  Functions that use the version keep its code."""
        with self._tx():
            self._db.execute(
                "DELETE FROM layer_versions WHERE name = ? AND version = ?", (name, version)
            )

    # ------------------------------------------------------------ internal

    @contextmanager
    def _tx(self) -> Iterator[None]:
        """One write transaction.  A full disk (at any statement or at the commit) rolls it
        back and raises DiskFullException: the database stays as it was."""
        self._records.clear()
        try:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield
                self._db.execute("COMMIT")
            except BaseException:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise
            finally:
                self._records.clear()
        except sqlite3.Error as e:
            if is_disk_full(e):
                raise DiskFullException(self._config.data_dir) from e
            raise

    def _updatable(self, name: str, revision_id: str | None) -> _Current:
        row = self._db.execute(
            "SELECT * FROM functions WHERE name = ? AND version = ?", (name, LATEST)
        ).fetchone()
        if row is None:
            raise ResourceNotFoundException(f"Function not found: {self.function_arn(name)}")
        if row["state"] == PENDING:
            raise ResourceConflictException(
                "The operation cannot be performed at this time. "
                f"The function is currently in the following state: {row['state']}"
            )
        if row["last_update_status"] == IN_PROGRESS:
            raise ResourceConflictException(
                "The operation cannot be performed at this time. "
                f"An update is in progress for resource: {self.function_arn(name)}"
            )
        if revision_id is not None and revision_id != row["revision_id"]:
            raise PreconditionFailedException(REVISION_MISMATCH)
        record = self._record(row)
        return _Current(record.layers, str(row["code_sha256"]), record.image)

    def _update(self, name: str, fields: Mapping[str, object]) -> FunctionRecord:
        values = {
            **fields,
            "revision_id": str(uuid.uuid4()),
            "last_update_status": IN_PROGRESS,
            "last_modified": aws_timestamp(self._clock.wall()),
        }
        assignments = ", ".join(f"{k} = ?" for k in values)
        with self._tx():
            self._db.execute(
                f"UPDATE functions SET {assignments} WHERE name = ? AND version = ?",
                (*values.values(), name, LATEST),
            )
        return self.get_function(name)

    def _resolve_layers(self, keys: tuple[LayerKey, ...]) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for key in keys:
            row = self._db.execute(
                "SELECT lv.code_sha256, b.size FROM layer_versions lv"
                " JOIN code_blobs b ON b.sha256 = lv.code_sha256"
                " WHERE lv.name = ? AND lv.version = ?",
                (key.name, key.version),
            ).fetchone()
            if row is None:
                arn = f"{self.layer_arn(key.name)}:{key.version}"
                raise InvalidParameterValueException(f"Layer version {arn} does not exist.")
            out.append(
                {
                    "arn": f"{self.layer_arn(key.name)}:{key.version}",
                    "sha256": row["code_sha256"],
                    "code_size": int(row["size"]),
                }
            )
        return out

    def _check_total_size(self, code: CodeBlob, layers: list[dict[str, Any]]) -> None:
        total = code.unzipped_size + sum(self._blob(lj["sha256"]).unzipped_size for lj in layers)
        if total > MAX_UNZIPPED_BYTES and layers:
            raise InvalidParameterValueException(
                "Function code combined with layers exceeds the maximum allowed size of "
                f"{MAX_UNZIPPED_BYTES} bytes. The actual size is {total} bytes."
            )
        if total > MAX_UNZIPPED_BYTES:
            raise InvalidParameterValueException(codes.unzipped_too_large_message())

    def _record(self, row: sqlite3.Row) -> FunctionRecord:
        if self.shared:
            self._local_code(str(row["code_sha256"]))
            for lj in json.loads(row["layers"]):
                self._local_code(str(lj["sha256"]))
        blob = self._blob(str(row["code_sha256"]))
        image = _image_fields(row, blob)
        logging = json.loads(row["logging"])
        layers = tuple(
            LayerRef(
                arn=lj["arn"],
                code_size=int(lj["code_size"]),
                code_dir=self._config.code_dir / lj["sha256"],
            )
            for lj in json.loads(row["layers"])
        )
        return FunctionRecord(
            name=row["name"],
            version=row["version"],
            arn=self.function_arn(row["name"]),
            runtime=row["runtime"],
            handler=row["handler"],
            role=row["role"],
            memory_mb=int(row["memory_mb"]),
            timeout_s=int(row["timeout_s"]),
            ephemeral_mb=int(row["ephemeral_mb"]),
            environment=json.loads(row["environment"]),
            layers=layers,
            code_dir=blob.code_dir,
            code_sha256=image.pop("code_sha256", blob.sha256_b64),
            code_size=blob.size,
            revision_id=row["revision_id"],
            description=row["description"],
            architectures=tuple(json.loads(row["architectures"])),
            tracing_mode=row["tracing_mode"],
            last_modified=row["last_modified"],
            state=row["state"],
            last_update_status=row["last_update_status"],
            tags=json.loads(row["tags"]),
            log_format=logging.get("LogFormat", "Text"),
            log_group=logging.get("LogGroup") or f"/aws/lambda/{row['name']}",
            application_log_level=logging.get("ApplicationLogLevel"),
            system_log_level=logging.get("SystemLogLevel"),
            **image,
        )

    def _layer_record(self, row: sqlite3.Row) -> LayerVersionRecord:
        name = str(row["name"])
        return LayerVersionRecord(
            name=name,
            version=int(row["version"]),
            layer_arn=self.layer_arn(name),
            layer_version_arn=f"{self.layer_arn(name)}:{row['version']}",
            description=row["description"],
            license_info=row["license_info"],
            compatible_runtimes=tuple(json.loads(row["compatible_runtimes"])),
            compatible_architectures=tuple(json.loads(row["compatible_architectures"])),
            created_date=row["created_date"],
            code=self._blob(str(row["code_sha256"])),
        )


@dataclass(frozen=True)
class _Current:
    """What an update needs of the row it replaces."""

    layers: tuple[LayerRef, ...]
    code_sha256_hex: str
    image: ImageCode | None = None


def _dumps(value: object) -> str:
    return json.dumps(value, separators=(",", ":"), sort_keys=True)


def _image_json(image: ImageCode | None) -> str | None:
    if image is None:
        return None
    return _dumps({"uri": image.uri, "digest": image.digest, "config": dict(image.config)})


def _image_fields(row: sqlite3.Row, blob: CodeBlob) -> dict[str, Any]:
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


def _logging_json(settings: LoggingSettings) -> dict[str, str]:
    out = {"LogFormat": settings.log_format}
    if settings.log_group:
        out["LogGroup"] = settings.log_group
    if settings.application_log_level:
        out["ApplicationLogLevel"] = settings.application_log_level
    if settings.system_log_level:
        out["SystemLogLevel"] = settings.system_log_level
    return out


def _layer_json_of(ref: LayerRef, code_dir: Path) -> dict[str, Any]:
    return {
        "arn": ref.arn,
        "sha256": ref.code_dir.relative_to(code_dir).as_posix(),
        "code_size": ref.code_size,
    }


def _layer_matches(row: sqlite3.Row, runtime: str | None, architecture: str | None) -> bool:
    if runtime is not None and runtime not in json.loads(row["compatible_runtimes"]):
        return False
    return architecture is None or architecture in json.loads(row["compatible_architectures"])
