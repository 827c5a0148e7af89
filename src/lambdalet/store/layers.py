"""Layer versions (part of ``Store``): publish, read, list, delete, and resolving a
function's ``Layers`` to the code they name.

Version numbers of a layer are never reused, even after deletes.  A function keeps the code
of a layer version it uses after that version is deleted (its row records the code hash).
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lambdalet.errors import InvalidParameterValueException, ResourceNotFoundException
from lambdalet.model import LayerRef
from lambdalet.store.disk import frees_space
from lambdalet.store.records import (
    CodeBlob,
    LayerKey,
    LayerVersionRecord,
    LayerVersionSpec,
    Page,
    aws_timestamp,
    dumps,
)

if TYPE_CHECKING:
    from contextlib import AbstractContextManager

    from lambdalet.clock import Clock
    from lambdalet.config import ServerConfig
    from lambdalet.store.connection import Connection

LAYER_NOT_FOUND = "The resource you requested does not exist."


class LayersMixin:
    """Layer versions: methods of ``Store``."""

    if TYPE_CHECKING:  # provided by Store
        _db: Connection
        _clock: Clock
        _config: ServerConfig
        _fresh: dict[str, float]

        def _tx(self) -> AbstractContextManager[None]: ...
        def _blob(self, sha256_hex: str) -> CodeBlob: ...
        def _release_reserve(self) -> bool: ...
        def check_code_storage(self, adding: int) -> None: ...
        def collect_code(self) -> None: ...

    def layer_arn(self, name: str) -> str:
        c = self._config
        return f"arn:aws:lambda:{c.region}:{c.account_id}:layer:{name}"

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
                    dumps(list(spec.compatible_runtimes)),
                    dumps(list(spec.compatible_architectures)),
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


def layer_json_of(ref: LayerRef, code_dir: Path) -> dict[str, Any]:
    return {
        "arn": ref.arn,
        "sha256": ref.code_dir.relative_to(code_dir).as_posix(),
        "code_size": ref.code_size,
    }


def _layer_matches(row: sqlite3.Row, runtime: str | None, architecture: str | None) -> bool:
    if runtime is not None and runtime not in json.loads(row["compatible_runtimes"]):
        return False
    return architecture is None or architecture in json.loads(row["compatible_architectures"])
