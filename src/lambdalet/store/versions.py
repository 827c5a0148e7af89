"""Published versions, aliases, tags and reserved concurrency of functions (part of ``Store``).

A version is a frozen copy of ``$LATEST``'s row under the next number of the function
(numbers are never reused while the function exists).  An alias names one version and
optionally one more with a weight (``AdditionalVersionWeights``).
"""

from __future__ import annotations

import json
import sqlite3
import uuid
from collections.abc import Mapping
from typing import TYPE_CHECKING

from lambdalet.errors import (
    InvalidParameterValueException,
    PreconditionFailedException,
    ResourceConflictException,
    ResourceNotFoundException,
)
from lambdalet.model import LATEST, FunctionRecord
from lambdalet.store.disk import frees_space
from lambdalet.store.records import (
    ACTIVE,
    IN_PROGRESS,
    PENDING,
    SUCCESSFUL,
    AliasPatch,
    AliasRecord,
    AliasSpec,
    CodeBlob,
    Page,
)

if TYPE_CHECKING:
    from contextlib import AbstractContextManager

    from lambdalet.clock import Clock
    from lambdalet.store.connection import Connection

#: Columns a version copies from ``$LATEST`` unchanged.
_COPIED = (
    "runtime",
    "handler",
    "role",
    "memory_mb",
    "timeout_s",
    "ephemeral_mb",
    "environment",
    "layers",
    "architectures",
    "tracing_mode",
    "logging",
    "tags",
    "code_sha256",
    "package_type",
    "image",
)
#: What makes two versions the same for PublishVersion (no new version when unchanged).
_SAME = tuple(c for c in _COPIED if c != "tags")


def version_sort_key(version: str) -> tuple[int, int]:
    return (0, 0) if version == LATEST else (1, int(version))


class VersionsMixin:
    """Versions, aliases, tags, reserved concurrency: methods of ``Store``."""

    if TYPE_CHECKING:  # provided by Store
        _db: Connection
        _clock: Clock

        def _tx(self) -> AbstractContextManager[None]: ...
        def function_arn(self, name: str) -> str: ...
        def get_function(self, name: str, qualifier: str | None = None) -> FunctionRecord: ...
        def _record(self, row: sqlite3.Row) -> FunctionRecord: ...
        def _blob(self, sha256_hex: str) -> CodeBlob: ...
        def _release_reserve(self) -> bool: ...
        def collect_code(self) -> None: ...
        def check_code_storage(self, adding: int) -> None: ...

    # ------------------------------------------------------------------ versions

    def publish_version(
        self,
        name: str,
        *,
        code_sha256: str | None = None,
        description: str | None = None,
        revision_id: str | None = None,
    ) -> FunctionRecord:
        """Freeze ``$LATEST`` as the next version; unchanged since the last one: return that."""
        with self._tx():
            row = self._db.execute(
                "SELECT * FROM functions WHERE name = ? AND version = ?", (name, LATEST)
            ).fetchone()
            if row is None:
                raise ResourceNotFoundException(f"Function not found: {self.function_arn(name)}")
            if row["state"] == PENDING or row["last_update_status"] == IN_PROGRESS:
                raise ResourceConflictException(
                    "The operation cannot be performed at this time. "
                    f"An update is in progress for resource: {self.function_arn(name)}"
                )
            if revision_id is not None and revision_id != row["revision_id"]:
                raise PreconditionFailedException(
                    "The Revision Id provided does not match the latest Revision Id. "
                    "Call the GetFunction/GetAlias API to retrieve the latest Revision Id"
                )
            current = (
                str(row["code_sha256"])  # an image's CodeSha256 is its digest, in hex
                if row["image"] is not None
                else self._blob(str(row["code_sha256"])).sha256_b64
            )
            if code_sha256 is not None and code_sha256 != current:
                raise InvalidParameterValueException(
                    f"CodeSHA256 ({code_sha256}) is different from current CodeSHA256 in "
                    f"$LATEST ({current}). Please try again."
                )
            last = self._db.execute(
                "SELECT * FROM functions WHERE name = ? AND version != ?"
                " ORDER BY CAST(version AS INTEGER) DESC LIMIT 1",
                (name, LATEST),
            ).fetchone()
            if last is not None and all(last[c] == row[c] for c in _SAME):
                return self._record(last)
            meta = self._db.execute(
                "SELECT last_version FROM function_meta WHERE name = ?", (name,)
            ).fetchone()
            number = (int(meta["last_version"]) if meta is not None else 0) + 1
            self.check_code_storage(self._blob(str(row["code_sha256"])).size)
            self._db.execute(
                "INSERT INTO function_meta (name, last_version) VALUES (?, ?)"
                " ON CONFLICT (name) DO UPDATE SET last_version = excluded.last_version",
                (name, number),
            )
            cols = ", ".join(_COPIED)
            self._db.execute(
                f"INSERT INTO functions (name, version, {cols}, description, revision_id, state,"
                " last_update_status, last_modified)"
                f" SELECT name, ?, {cols}, ?, ?, ?, ?, last_modified FROM functions"
                " WHERE name = ? AND version = ?",
                (
                    str(number),
                    row["description"] if description is None else description,
                    str(uuid.uuid4()),
                    ACTIVE,
                    SUCCESSFUL,
                    name,
                    LATEST,
                ),
            )
        return self.get_function(name, str(number))

    def list_versions(self, name: str, after: str | None, limit: int) -> Page[FunctionRecord]:
        """``$LATEST`` then the published versions in order, continuing after ``after``."""
        rows = self._db.execute("SELECT * FROM functions WHERE name = ?", (name,)).fetchall()
        if not rows:
            raise ResourceNotFoundException(f"Function not found: {self.function_arn(name)}")
        rows.sort(key=lambda r: version_sort_key(r["version"]))
        if after is not None:
            start = _valid_version(after)
            rows = [r for r in rows if version_sort_key(r["version"]) > version_sort_key(start)]
        items = tuple(self._record(r) for r in rows[:limit])
        return Page(items, items[-1].version if len(rows) > limit else None)

    def list_all_versions(self, after: str | None, limit: int) -> Page[FunctionRecord]:
        """ListFunctions with ``FunctionVersion=ALL``: every version of every function."""
        rows = self._db.execute("SELECT * FROM functions").fetchall()

        def key(r: object) -> tuple[str, tuple[int, int]]:
            return (r["name"], version_sort_key(r["version"]))  # type: ignore[index]

        rows.sort(key=key)
        if after is not None:
            name, _, version = after.partition("\t")
            mark = (name, version_sort_key(_valid_version(version)))
            rows = [r for r in rows if key(r) > mark]
        items = tuple(self._record(r) for r in rows[:limit])
        more = len(rows) > limit
        return Page(items, f"{items[-1].name}\t{items[-1].version}" if more else None)

    @frees_space
    def delete_version(self, name: str, version: str) -> None:
        """Delete one published version; refused while an alias points to it."""
        with self._tx():
            row = self._db.execute(
                "SELECT 1 FROM functions WHERE name = ? AND version = ?", (name, version)
            ).fetchone()
            if row is None:
                raise ResourceNotFoundException(
                    f"Function not found: {self.function_arn(name)}:{version}"
                )
            users = [
                a.name
                for a in self._aliases_of(name)
                if a.function_version == version or version in a.weights
            ]
            if users:
                raise ResourceConflictException(
                    "Unable to delete version because the following aliases reference it: "
                    f"[{', '.join(users)}]"
                )
            self._db.execute(
                "DELETE FROM functions WHERE name = ? AND version = ?", (name, version)
            )
            self._db.execute(
                "DELETE FROM resource_policies WHERE name = ? AND qualifier = ?", (name, version)
            )
            for table in ("event_invoke_configs", "provisioned_configs"):
                self._db.execute(
                    f"DELETE FROM {table} WHERE name = ? AND qualifier = ?", (name, version)
                )

    def _forget_function(self, name: str) -> None:
        """Everything a deleted function leaves behind (inside the caller's transaction)."""
        for table in (
            "function_meta",
            "aliases",
            "event_invoke_configs",
            "provisioned_configs",
            "resource_policies",
            "function_urls",
        ):
            self._db.execute(f"DELETE FROM {table} WHERE name = ?", (name,))

    # ------------------------------------------------------------------ qualifiers

    def resolve(
        self, name: str, qualifier: str | None
    ) -> tuple[FunctionRecord, AliasRecord | None]:
        """The version a qualifier names (``$LATEST``, a number or an alias) and the alias."""
        if qualifier is None or qualifier == LATEST or qualifier.isdigit():
            return self.get_function(name, qualifier), None
        alias = self._alias_row(name, qualifier)
        if alias is None:
            raise ResourceNotFoundException(
                f"Function not found: {self.function_arn(name)}:{qualifier}"
            )
        return self.get_function(name, alias.function_version), alias

    # ------------------------------------------------------------------ aliases

    def create_alias(self, function_name: str, spec: AliasSpec) -> AliasRecord:
        with self._tx():
            self._check_versions(function_name, spec.function_version, spec.weights)
            arn = f"{self.function_arn(function_name)}:{spec.name}"
            if self._alias_row(function_name, spec.name) is not None:
                raise ResourceConflictException(f"Alias already exists: {arn}")
            self._db.execute(
                "INSERT INTO aliases (name, alias, function_version, description, routing,"
                " revision_id) VALUES (?, ?, ?, ?, ?, ?)",
                (
                    function_name,
                    spec.name,
                    spec.function_version,
                    spec.description,
                    json.dumps(dict(spec.weights)),
                    str(uuid.uuid4()),
                ),
            )
        return self.get_alias(function_name, spec.name)

    def get_alias(self, function_name: str, name: str) -> AliasRecord:
        alias = self._alias_row(function_name, name)
        if alias is None:
            self.get_function(function_name)
            raise ResourceNotFoundException(
                f"Alias not found: {self.function_arn(function_name)}:{name}"
            )
        return alias

    def update_alias(self, function_name: str, name: str, patch: AliasPatch) -> AliasRecord:
        with self._tx():
            current = self.get_alias(function_name, name)
            if patch.revision_id is not None and patch.revision_id != current.revision_id:
                raise PreconditionFailedException(
                    "The Revision Id provided does not match the latest Revision Id. "
                    "Call the GetFunction/GetAlias API to retrieve the latest Revision Id"
                )
            version = patch.function_version or current.function_version
            weights = current.weights if patch.weights is None else patch.weights
            self._check_versions(function_name, version, weights)
            self._db.execute(
                "UPDATE aliases SET function_version = ?, description = ?, routing = ?,"
                " revision_id = ? WHERE name = ? AND alias = ?",
                (
                    version,
                    current.description if patch.description is None else patch.description,
                    json.dumps(dict(weights)),
                    str(uuid.uuid4()),
                    function_name,
                    name,
                ),
            )
        return self.get_alias(function_name, name)

    @frees_space
    def delete_alias(self, function_name: str, name: str) -> None:
        """Idempotent like AWS once the function exists."""
        self.get_function(function_name)
        with self._tx():
            self._db.execute(
                "DELETE FROM aliases WHERE name = ? AND alias = ?", (function_name, name)
            )
            for table in (
                "event_invoke_configs",
                "provisioned_configs",
                "resource_policies",
                "function_urls",
            ):
                self._db.execute(
                    f"DELETE FROM {table} WHERE name = ? AND qualifier = ?", (function_name, name)
                )

    def list_aliases(
        self,
        function_name: str,
        *,
        function_version: str | None,
        after: str | None,
        limit: int,
    ) -> Page[AliasRecord]:
        self.get_function(function_name)
        aliases = [
            a
            for a in self._aliases_of(function_name)
            if (function_version is None or a.function_version == function_version)
            and (after is None or a.name > after)
        ]
        items = tuple(aliases[:limit])
        return Page(items, items[-1].name if len(aliases) > limit else None)

    def _aliases_of(self, function_name: str) -> list[AliasRecord]:
        rows = self._db.execute(
            "SELECT * FROM aliases WHERE name = ? ORDER BY alias", (function_name,)
        ).fetchall()
        return [self._alias_record(r) for r in rows]

    def _alias_row(self, function_name: str, name: str) -> AliasRecord | None:
        row = self._db.execute(
            "SELECT * FROM aliases WHERE name = ? AND alias = ?", (function_name, name)
        ).fetchone()
        return None if row is None else self._alias_record(row)

    def _alias_record(self, row: sqlite3.Row) -> AliasRecord:
        name = str(row["name"])
        return AliasRecord(
            function_name=name,
            name=str(row["alias"]),
            arn=f"{self.function_arn(name)}:{row['alias']}",
            function_version=str(row["function_version"]),
            description=str(row["description"]),
            weights={str(k): float(v) for k, v in json.loads(str(row["routing"])).items()},
            revision_id=str(row["revision_id"]),
        )

    def _check_versions(
        self, function_name: str, version: str, weights: Mapping[str, float]
    ) -> None:
        self.get_function(function_name)
        for v in (version, *weights):
            self.get_function(function_name, v)

    # ------------------------------------------------------------------ tags

    def tag_function(self, name: str, tags: Mapping[str, str]) -> None:
        current = dict(self.get_function(name).tags)
        current.update(tags)
        if len(current) > 50:
            raise InvalidParameterValueException("Number of tags exceeds resource tag limit of 50.")
        self._set_tags(name, current)

    def untag_function(self, name: str, keys: list[str]) -> None:
        current = dict(self.get_function(name).tags)
        for k in keys:
            current.pop(k, None)
        self._set_tags(name, current)

    def _set_tags(self, name: str, tags: Mapping[str, str]) -> None:
        with self._tx():
            self._db.execute(
                "UPDATE functions SET tags = ? WHERE name = ?",
                (json.dumps(dict(tags), separators=(",", ":"), sort_keys=True), name),
            )

    # ------------------------------------------------------------------ reserved concurrency

    def set_reserved_concurrency(self, name: str, value: int | None) -> None:
        self.get_function(name)
        with self._tx():
            self._db.execute(
                "INSERT INTO function_meta (name, reserved_concurrency) VALUES (?, ?)"
                " ON CONFLICT (name) DO UPDATE SET reserved_concurrency = excluded."
                "reserved_concurrency",
                (name, value),
            )

    def reserved_concurrency(self, name: str) -> int | None:
        row = self._db.execute(
            "SELECT reserved_concurrency FROM function_meta WHERE name = ?", (name,)
        ).fetchone()
        if row is None or row["reserved_concurrency"] is None:
            return None
        return int(row["reserved_concurrency"])

    def all_reserved_concurrency(self) -> dict[str, int]:
        rows = self._db.execute(
            "SELECT name, reserved_concurrency FROM function_meta"
            " WHERE reserved_concurrency IS NOT NULL"
        ).fetchall()
        return {str(r["name"]): int(r["reserved_concurrency"]) for r in rows}

    def account_usage(self) -> tuple[int, int]:
        """(total zipped code bytes of every version and layer, number of functions)."""
        (count,) = self._db.execute(
            "SELECT COUNT(*) FROM functions WHERE version = ?", (LATEST,)
        ).fetchone()
        (size,) = self._db.execute(
            "SELECT COALESCE(SUM(b.size), 0) FROM ("
            " SELECT code_sha256 FROM functions UNION ALL SELECT code_sha256 FROM layer_versions"
            ") c JOIN code_blobs b ON b.sha256 = c.code_sha256"
        ).fetchone()
        return int(size), int(count)


def _valid_version(value: str) -> str:
    if value == LATEST or value.isdigit():
        return value
    raise InvalidParameterValueException("Invalid marker.")
