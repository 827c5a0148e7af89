"""Resource policies and function URL configurations (part of ``Store``).

A policy is stored per function and qualifier ('' for the unqualified function) as a list
of statements with its own revision id; a function URL per function and qualifier
('' or an alias), addressed by its url id.  Both go with the function when it is deleted
(``forget_triggers``), and a policy or URL of an alias goes with the alias.
"""

from __future__ import annotations

import json
import sqlite3
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from lambdalet.errors import (
    PreconditionFailedException,
    ResourceConflictException,
    ResourceNotFoundException,
)
from lambdalet.model import FunctionRecord
from lambdalet.store.records import Page

if TYPE_CHECKING:
    from contextlib import AbstractContextManager

    from lambdalet.clock import Clock
    from lambdalet.store.connection import Connection

NO_POLICY = "The resource you requested does not exist."
POLICY_REVISION_MISMATCH = (
    "The Revision Id provided does not match the latest Revision Id. "
    "Call the GetPolicy API to retrieve the latest Revision Id"
)


@dataclass(frozen=True)
class Policy:
    statements: tuple[Mapping[str, Any], ...]
    revision_id: str


@dataclass(frozen=True)
class UrlConfig:
    """One function URL: ``qualifier`` is '' (the function) or an alias name."""

    url_id: str
    function_name: str
    qualifier: str
    auth_type: str
    cors: Mapping[str, Any] | None
    invoke_mode: str
    creation_time: str
    last_modified: str


@dataclass(frozen=True)
class MappingRecord:
    """One event source mapping; ``settings`` under AWS's field names."""

    uuid: str
    function_name: str
    qualifier: str  # '' when the mapping names the function unqualified
    source_arn: str
    settings: Mapping[str, Any]
    state: str
    last_modified: float
    last_result: str


@dataclass(frozen=True)
class ScheduleRow:
    """One schedule of a stack: ``spec`` is the validated JSON the deploy sent."""

    stack: str
    name: str
    spec: Mapping[str, Any]
    anchor: float
    next_fire: float


class TriggersMixin:
    """Policies and URL configurations: methods of ``Store``."""

    if TYPE_CHECKING:  # provided by Store
        _db: Connection
        _clock: Clock

        def _tx(self) -> AbstractContextManager[None]: ...
        def function_arn(self, name: str) -> str: ...
        def get_function(self, name: str, qualifier: str | None = None) -> FunctionRecord: ...

    # ----------------------------------------------------------------- policies

    def get_policy(self, name: str, qualifier: str) -> Policy | None:
        row = self._db.execute(
            "SELECT statements, revision_id FROM resource_policies"
            " WHERE name = ? AND qualifier = ?",
            (name, qualifier),
        ).fetchone()
        if row is None:
            return None
        statements = json.loads(row["statements"])
        if not statements:
            return None
        return Policy(tuple(statements), str(row["revision_id"]))

    def add_statement(
        self,
        name: str,
        qualifier: str,
        statement: Mapping[str, Any],
        revision_id: str | None = None,
    ) -> Policy:
        """Append a statement; 409 for a Sid in use, 412 if ``revision_id`` is stale."""
        with self._tx():
            current = self.get_policy(name, qualifier)
            statements = list(current.statements) if current else []
            if revision_id is not None and (current is None or current.revision_id != revision_id):
                raise PreconditionFailedException(POLICY_REVISION_MISMATCH)
            sid = statement["Sid"]
            if any(s.get("Sid") == sid for s in statements):
                raise ResourceConflictException(
                    f"The statement id ({sid}) provided already exists. Please provide a new "
                    "statement id, or remove the existing statement."
                )
            statements.append(dict(statement))
            return self._write_policy(name, qualifier, statements)

    def remove_statement(
        self, name: str, qualifier: str, sid: str, revision_id: str | None = None
    ) -> None:
        with self._tx():
            current = self.get_policy(name, qualifier)
            if current is None:
                raise ResourceNotFoundException(NO_POLICY)
            if revision_id is not None and current.revision_id != revision_id:
                raise PreconditionFailedException(POLICY_REVISION_MISMATCH)
            kept = [s for s in current.statements if s.get("Sid") != sid]
            if len(kept) == len(current.statements):
                raise ResourceNotFoundException(f"Statement {sid} is not found in resource policy.")
            self._write_policy(name, qualifier, kept)

    def _write_policy(
        self, name: str, qualifier: str, statements: list[Mapping[str, Any]]
    ) -> Policy:
        revision = str(uuid.uuid4())
        self._db.execute(
            "INSERT OR REPLACE INTO resource_policies (name, qualifier, statements, revision_id)"
            " VALUES (?, ?, ?, ?)",
            (name, qualifier, json.dumps(statements), revision),
        )
        return Policy(tuple(statements), revision)

    # ------------------------------------------------------------ function URLs

    def create_url_config(self, config: UrlConfig) -> UrlConfig:
        with self._tx():
            existing = self._url_row(config.function_name, config.qualifier)
            if existing is not None:
                arn = self.function_arn(config.function_name)
                if config.qualifier:
                    arn = f"{arn}:{config.qualifier}"
                raise ResourceConflictException(
                    f"Failed to create function url config for [functionArn = {arn}]. "
                    "Error message:  FunctionUrlConfig exists for this Lambda function"
                )
            self._db.execute(
                "INSERT INTO function_urls (url_id, name, qualifier, auth_type, cors,"
                " invoke_mode, creation_time, last_modified) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    config.url_id,
                    config.function_name,
                    config.qualifier,
                    config.auth_type,
                    None if config.cors is None else json.dumps(config.cors),
                    config.invoke_mode,
                    config.creation_time,
                    config.last_modified,
                ),
            )
        return config

    def get_url_config(self, name: str, qualifier: str) -> UrlConfig:
        row = self._url_row(name, qualifier)
        if row is None:
            raise ResourceNotFoundException("The resource you requested does not exist.")
        return _url(row)

    def url_config_by_id(self, url_id: str) -> UrlConfig | None:
        row = self._db.execute("SELECT * FROM function_urls WHERE url_id = ?", (url_id,)).fetchone()
        return None if row is None else _url(row)

    def update_url_config(self, config: UrlConfig) -> UrlConfig:
        with self._tx():
            self._db.execute(
                "UPDATE function_urls SET auth_type = ?, cors = ?, invoke_mode = ?,"
                " last_modified = ? WHERE url_id = ?",
                (
                    config.auth_type,
                    None if config.cors is None else json.dumps(config.cors),
                    config.invoke_mode,
                    config.last_modified,
                    config.url_id,
                ),
            )
        return config

    def delete_url_config(self, name: str, qualifier: str) -> None:
        with self._tx():
            cur = self._db.execute(
                "DELETE FROM function_urls WHERE name = ? AND qualifier = ?", (name, qualifier)
            )
            if cur.rowcount == 0:
                raise ResourceNotFoundException("The resource you requested does not exist.")

    def list_url_configs(self, name: str, after: str | None, limit: int) -> Page[UrlConfig]:
        """``after`` and ``next_after`` are ``#`` + the last qualifier shown."""
        rows = self._db.execute(
            "SELECT * FROM function_urls WHERE name = ? AND (? IS NULL OR qualifier > ?)"
            " ORDER BY qualifier LIMIT ?",
            (name, after, (after or "#")[1:], limit + 1),
        ).fetchall()
        items = tuple(_url(r) for r in rows[:limit])
        more = len(rows) > limit
        return Page(items, "#" + items[-1].qualifier if more else None)

    def _url_row(self, name: str, qualifier: str) -> sqlite3.Row | None:
        row: sqlite3.Row | None = self._db.execute(
            "SELECT * FROM function_urls WHERE name = ? AND qualifier = ?", (name, qualifier)
        ).fetchone()
        return row

    # ------------------------------------------------------ event source mappings

    def put_mapping(self, mapping: MappingRecord) -> MappingRecord:
        """Insert or replace a mapping; 409 if another maps the same queue to the function."""
        with self._tx():
            other = self._db.execute(
                "SELECT uuid FROM event_source_mappings WHERE name = ? AND source_arn = ?"
                " AND uuid != ?",
                (mapping.function_name, mapping.source_arn, mapping.uuid),
            ).fetchone()
            if other is not None:
                raise ResourceConflictException(
                    f'An event source mapping with SQS arn (" {mapping.source_arn} ") and '
                    f'function (" {mapping.function_name} ") already exists. Please update or '
                    f"delete the existing mapping with UUID {other['uuid']}"
                )
            self._db.execute(
                "INSERT OR REPLACE INTO event_source_mappings (uuid, name, qualifier,"
                " source_arn, config, state, last_modified, last_result)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    mapping.uuid,
                    mapping.function_name,
                    mapping.qualifier,
                    mapping.source_arn,
                    json.dumps(dict(mapping.settings)),
                    mapping.state,
                    mapping.last_modified,
                    mapping.last_result,
                ),
            )
        return mapping

    def get_mapping(self, mapping_uuid: str) -> MappingRecord:
        row = self._db.execute(
            "SELECT * FROM event_source_mappings WHERE uuid = ?", (mapping_uuid,)
        ).fetchone()
        if row is None:
            raise ResourceNotFoundException("The resource you requested does not exist.")
        return _mapping(row)

    def set_mapping_state(
        self, mapping_uuid: str, state: str, last_result: str | None = None
    ) -> None:
        with self._tx():
            if last_result is None:
                self._db.execute(
                    "UPDATE event_source_mappings SET state = ? WHERE uuid = ?",
                    (state, mapping_uuid),
                )
            else:
                self._db.execute(
                    "UPDATE event_source_mappings SET state = ?, last_result = ? WHERE uuid = ?",
                    (state, last_result, mapping_uuid),
                )

    def set_mapping_result(self, mapping_uuid: str, last_result: str) -> None:
        with self._tx():
            self._db.execute(
                "UPDATE event_source_mappings SET last_result = ? WHERE uuid = ?",
                (last_result, mapping_uuid),
            )

    def delete_mapping(self, mapping_uuid: str) -> None:
        with self._tx():
            self._db.execute("DELETE FROM event_source_mappings WHERE uuid = ?", (mapping_uuid,))

    def list_mappings(
        self,
        *,
        function_name: str | None = None,
        source_arn: str | None = None,
        after: str | None = None,
        limit: int = 10000,
    ) -> Page[MappingRecord]:
        rows = self._db.execute(
            "SELECT * FROM event_source_mappings WHERE (? IS NULL OR name = ?)"
            " AND (? IS NULL OR source_arn = ?) AND (? IS NULL OR uuid > ?)"
            " ORDER BY uuid LIMIT ?",
            (function_name, function_name, source_arn, source_arn, after, after, limit + 1),
        ).fetchall()
        items = tuple(_mapping(r) for r in rows[:limit])
        return Page(items, items[-1].uuid if len(rows) > limit else None)

    # ------------------------------------------------------------------ schedules

    def schedules(self, stack: str | None = None) -> list[ScheduleRow]:
        rows = self._db.execute(
            "SELECT * FROM schedules WHERE (? IS NULL OR stack = ?) ORDER BY stack, name",
            (stack, stack),
        ).fetchall()
        return [
            ScheduleRow(
                str(r["stack"]),
                str(r["name"]),
                json.loads(r["spec"]),
                float(r["anchor"]),
                float(r["next_fire"]),
            )
            for r in rows
        ]

    def replace_schedules(self, stack: str, rows: list[ScheduleRow]) -> None:
        """The stack's schedules become ``rows`` (others of the stack are removed)."""
        with self._tx():
            self._db.execute("DELETE FROM schedules WHERE stack = ?", (stack,))
            self._db.executemany(
                "INSERT INTO schedules (stack, name, spec, anchor, next_fire)"
                " VALUES (?, ?, ?, ?, ?)",
                [(stack, r.name, json.dumps(dict(r.spec)), r.anchor, r.next_fire) for r in rows],
            )

    def set_next_fire(self, stack: str, name: str, next_fire: float) -> None:
        with self._tx():
            self._db.execute(
                "UPDATE schedules SET next_fire = ? WHERE stack = ? AND name = ?",
                (next_fire, stack, name),
            )

    # ------------------------------------------------------------------ HTTP APIs

    def http_apis(self) -> dict[str, list[Mapping[str, Any]]]:
        """Every stack's APIs (as ``PUT .../apis`` gave them)."""
        rows = self._db.execute("SELECT stack, apis FROM http_apis").fetchall()
        return {str(r["stack"]): json.loads(r["apis"]) for r in rows}

    def put_http_apis(self, stack: str, apis: list[Mapping[str, Any]]) -> None:
        with self._tx():
            if apis:
                self._db.execute(
                    "INSERT OR REPLACE INTO http_apis (stack, apis) VALUES (?, ?)",
                    (stack, json.dumps([dict(a) for a in apis])),
                )
            else:
                self._db.execute("DELETE FROM http_apis WHERE stack = ?", (stack,))

    # ------------------------------------------------------------------ cleanup

    def forget_triggers(self, name: str, qualifier: str | None = None) -> None:
        """Drop the policies and URLs of a deleted function (or of one deleted alias or
        version), inside the caller's transaction."""
        for table in ("resource_policies", "function_urls"):
            if qualifier is None:
                self._db.execute(f"DELETE FROM {table} WHERE name = ?", (name,))
            else:
                self._db.execute(
                    f"DELETE FROM {table} WHERE name = ? AND qualifier = ?", (name, qualifier)
                )


def _url(row: sqlite3.Row) -> UrlConfig:
    return UrlConfig(
        url_id=str(row["url_id"]),
        function_name=str(row["name"]),
        qualifier=str(row["qualifier"]),
        auth_type=str(row["auth_type"]),
        cors=None if row["cors"] is None else json.loads(row["cors"]),
        invoke_mode=str(row["invoke_mode"]),
        creation_time=str(row["creation_time"]),
        last_modified=str(row["last_modified"]),
    )


def _mapping(row: sqlite3.Row) -> MappingRecord:
    return MappingRecord(
        uuid=str(row["uuid"]),
        function_name=str(row["name"]),
        qualifier=str(row["qualifier"]),
        source_arn=str(row["source_arn"]),
        settings=json.loads(row["config"]),
        state=str(row["state"]),
        last_modified=float(row["last_modified"]),
        last_result=str(row["last_result"]),
    )
