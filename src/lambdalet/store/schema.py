"""SQLite schema, created and migrated when the store opens (``PRAGMA user_version``)."""

from __future__ import annotations

import sqlite3

#: Each entry migrates from version ``i`` to ``i + 1``.  Append only; never edit a shipped step.
MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE code_blobs (
        sha256 TEXT PRIMARY KEY,              -- hex
        size INTEGER NOT NULL,                -- zipped bytes
        unzipped_size INTEGER NOT NULL,
        created_at REAL NOT NULL
    );
    CREATE TABLE functions (
        name TEXT NOT NULL,
        version TEXT NOT NULL,                -- '$LATEST', later '1', '2', ...
        runtime TEXT NOT NULL,
        handler TEXT NOT NULL,
        role TEXT NOT NULL,
        memory_mb INTEGER NOT NULL,
        timeout_s INTEGER NOT NULL,
        ephemeral_mb INTEGER NOT NULL,
        description TEXT NOT NULL,
        environment TEXT NOT NULL,            -- JSON object
        layers TEXT NOT NULL,                 -- JSON list of {name, version, sha256}
        architectures TEXT NOT NULL,          -- JSON list
        tracing_mode TEXT NOT NULL,
        logging TEXT NOT NULL,                -- JSON object (LoggingSettings)
        tags TEXT NOT NULL,                   -- JSON object
        code_sha256 TEXT NOT NULL REFERENCES code_blobs (sha256),
        revision_id TEXT NOT NULL,
        state TEXT NOT NULL,
        last_update_status TEXT NOT NULL,
        last_modified TEXT NOT NULL,
        PRIMARY KEY (name, version)
    );
    CREATE TABLE layers (
        name TEXT PRIMARY KEY,
        last_version INTEGER NOT NULL         -- version numbers are never reused
    );
    CREATE TABLE layer_versions (
        name TEXT NOT NULL,
        version INTEGER NOT NULL,
        description TEXT NOT NULL,
        license_info TEXT,
        compatible_runtimes TEXT NOT NULL,    -- JSON list
        compatible_architectures TEXT NOT NULL,
        code_sha256 TEXT NOT NULL REFERENCES code_blobs (sha256),
        created_date TEXT NOT NULL,
        PRIMARY KEY (name, version)
    );
    """,
    # 2: versions, aliases, concurrency, asynchronous invocation
    """
    CREATE TABLE function_meta (
        name TEXT PRIMARY KEY,
        last_version INTEGER NOT NULL DEFAULT 0,  -- version numbers are not reused
        reserved_concurrency INTEGER              -- NULL: draws on the unreserved pool
    );
    INSERT INTO function_meta (name) SELECT name FROM functions WHERE version = '$LATEST';
    CREATE TABLE aliases (
        name TEXT NOT NULL,
        alias TEXT NOT NULL,
        function_version TEXT NOT NULL,
        description TEXT NOT NULL,
        routing TEXT NOT NULL,                    -- JSON object {version: weight}
        revision_id TEXT NOT NULL,
        PRIMARY KEY (name, alias)
    );
    CREATE TABLE event_invoke_configs (
        name TEXT NOT NULL,
        qualifier TEXT NOT NULL,                  -- '$LATEST', a version or an alias
        max_retry_attempts INTEGER,
        max_event_age_s INTEGER,
        on_success TEXT,
        on_failure TEXT,
        last_modified REAL NOT NULL,
        PRIMARY KEY (name, qualifier)
    );
    CREATE TABLE provisioned_configs (
        name TEXT NOT NULL,
        qualifier TEXT NOT NULL,                  -- a version or an alias
        requested INTEGER NOT NULL,
        last_modified TEXT NOT NULL,
        PRIMARY KEY (name, qualifier)
    );
    CREATE TABLE async_events (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        request_id TEXT NOT NULL UNIQUE,
        name TEXT NOT NULL,
        qualifier TEXT,                           -- as the caller gave it; resolved per attempt
        payload BLOB NOT NULL,
        enqueued_at REAL NOT NULL,                -- wall clock
        attempts INTEGER NOT NULL DEFAULT 0,      -- invocations started
        throttles INTEGER NOT NULL DEFAULT 0,     -- attempts refused for concurrency/platform
        due_at REAL NOT NULL                      -- wall clock of the next attempt
    );
    CREATE INDEX async_events_due ON async_events (due_at, seq);
    """,
    # 3: triggers: resource policies, function URLs, event source mappings
    """
    CREATE TABLE resource_policies (
        name TEXT NOT NULL,
        qualifier TEXT NOT NULL,                  -- '' for the unqualified function
        statements TEXT NOT NULL,                 -- JSON list of policy statements
        revision_id TEXT NOT NULL,
        PRIMARY KEY (name, qualifier)
    );
    CREATE TABLE function_urls (
        url_id TEXT PRIMARY KEY,                  -- 32 lower-case alphanumerics
        name TEXT NOT NULL,
        qualifier TEXT NOT NULL,                  -- '' for the unqualified function, or an alias
        auth_type TEXT NOT NULL,
        cors TEXT,                                -- JSON object, NULL when not configured
        invoke_mode TEXT NOT NULL,
        creation_time TEXT NOT NULL,
        last_modified TEXT NOT NULL,
        UNIQUE (name, qualifier)
    );
    CREATE TABLE event_source_mappings (
        uuid TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        qualifier TEXT NOT NULL,                  -- '' when unqualified
        source_arn TEXT NOT NULL,
        config TEXT NOT NULL,                     -- JSON: BatchSize, FilterCriteria, ...
        state TEXT NOT NULL,
        last_modified REAL NOT NULL,
        last_result TEXT NOT NULL
    );
    CREATE TABLE schedules (
        stack TEXT NOT NULL,
        name TEXT NOT NULL,                       -- rule / schedule name
        spec TEXT NOT NULL,                       -- JSON: function, type, expression, ...
        anchor REAL NOT NULL,                     -- wall clock a rate counts from
        next_fire REAL NOT NULL,                  -- wall clock of the next fire
        PRIMARY KEY (stack, name)
    );
    CREATE TABLE http_apis (
        stack TEXT PRIMARY KEY,
        apis TEXT NOT NULL                        -- JSON list of APIs with their routes
    );
    """,
    # 4: container image functions
    """
    ALTER TABLE functions ADD COLUMN package_type TEXT NOT NULL DEFAULT 'Zip';
    -- JSON {uri, digest, config: ImageConfig} for PackageType Image, else NULL;
    -- code_sha256 then names a code_blobs row of the image digest (size: compressed bytes)
    ALTER TABLE functions ADD COLUMN image TEXT;
    -- JSON {StateReason, StateReasonCode, LastUpdateStatusReason, LastUpdateStatusReasonCode}
    -- of a failed image pull; NULL otherwise
    ALTER TABLE functions ADD COLUMN status_reasons TEXT;
    """,
)


def migrate(conn: sqlite3.Connection) -> None:
    """Bring the schema to the newest version; ``conn`` must be in autocommit mode."""
    (current,) = conn.execute("PRAGMA user_version").fetchone()
    for i in range(int(current), len(MIGRATIONS)):
        try:
            conn.executescript(f"BEGIN;{MIGRATIONS[i]}PRAGMA user_version = {i + 1};COMMIT;")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
