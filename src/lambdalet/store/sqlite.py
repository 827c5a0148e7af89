"""The store: functions ($LATEST rows) over SQLite, or PostgreSQL on a cluster.

``Store`` composes the mixins that own the rest: code storage (store/code_storage.py), image
code (store/image_code.py), layer versions (store/layers.py), versions and aliases
(store/versions.py), the async queue (store/async_events.py) and triggers (store/triggers.py).

One connection, used from the event loop thread; every operation is a few small statements.
Only zip hashing and unpacking leave the loop (``put_code`` runs them in a worker thread).
"""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from lambdalet.clock import Clock, SystemClock
from lambdalet.config import ServerConfig
from lambdalet.errors import (
    DiskFullException,
    InvalidParameterValueException,
    PreconditionFailedException,
    ResourceConflictException,
    ResourceNotFoundException,
)
from lambdalet.model import LATEST, FunctionRecord, ImageCode, LayerRef
from lambdalet.store import code as codes
from lambdalet.store import pg
from lambdalet.store.async_events import AsyncEventsMixin, ProvisionedStatusMixin
from lambdalet.store.code_storage import CodeStorageMixin
from lambdalet.store.connection import Connection
from lambdalet.store.disk import SpaceReserve, frees_space, is_disk_full, secure
from lambdalet.store.image_code import ImageCodeMixin, image_fields, image_json
from lambdalet.store.layers import LayersMixin, layer_json_of
from lambdalet.store.records import (
    ACTIVE,
    IN_PROGRESS,
    MAX_UNZIPPED_BYTES,
    PENDING,
    SUCCESSFUL,
    CodeBlob,
    FunctionPatch,
    FunctionSpec,
    Page,
    aws_timestamp,
    dumps,
    logging_json,
)
from lambdalet.store.schema import migrate
from lambdalet.store.triggers import TriggersMixin
from lambdalet.store.versions import VersionsMixin

__all__ = ["CONFIG_RECHECK_S", "REVISION_MISMATCH", "Store", "aws_timestamp"]

log = logging.getLogger(__name__)

REVISION_MISMATCH = (
    "The Revision Id provided does not match the latest Revision Id. "
    "Call the GetFunction/GetAlias API to retrieve the latest Revision Id"
)
#: a cluster node re-reads the configuration version (other nodes' writes) at most this often
CONFIG_RECHECK_S = 0.25


class Store(
    CodeStorageMixin,
    ImageCodeMixin,
    LayersMixin,
    VersionsMixin,
    AsyncEventsMixin,
    ProvisionedStatusMixin,
    TriggersMixin,
):
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

    # ------------------------------------------------------------ functions

    def function_arn(self, name: str) -> str:
        c = self._config
        return f"arn:aws:lambda:{c.region}:{c.account_id}:function:{name}"

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
                    dumps(dict(spec.environment)),
                    dumps(layers),
                    dumps(list(spec.architectures)),
                    spec.tracing_mode,
                    dumps(logging_json(spec.logging)),
                    dumps(dict(spec.tags)),
                    code.sha256_hex,
                    str(uuid.uuid4()),
                    PENDING,
                    IN_PROGRESS,
                    now,
                    spec.package_type,
                    image_json(spec.image),
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
        layers = [layer_json_of(ref, self._config.code_dir) for ref in current.layers]
        self._check_total_size(code, layers)
        self.check_code_storage(code.size)
        fields: dict[str, object] = {"code_sha256": code.sha256_hex}
        if architectures is not None:
            fields["architectures"] = dumps(list(architectures))
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
            fields["environment"] = dumps(dict(patch.environment))
        if patch.logging is not None:
            fields["logging"] = dumps(logging_json(patch.logging))
        if patch.image_config is not None:
            if current.image is None:
                raise InvalidParameterValueException(
                    "ImageConfig is not supported for functions created with deployment packages."
                )
            fields["image"] = image_json(replace(current.image, config=patch.image_config))
        if patch.layers is not None:
            layers = self._resolve_layers(patch.layers)
            self._check_total_size(self._blob(current.code_sha256_hex), layers)
            fields["layers"] = dumps(layers)
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
        image = image_fields(row, blob)
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


@dataclass(frozen=True)
class _Current:
    """What an update needs of the row it replaces."""

    layers: tuple[LayerRef, ...]
    code_sha256_hex: str
    image: ImageCode | None = None
