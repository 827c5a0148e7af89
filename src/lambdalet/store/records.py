"""Records the store takes and gives, besides ``model.FunctionRecord``.

No I/O here.  The API builds the ``*Spec``/``*Patch`` records after validating a request;
the store turns them into rows and returns records with host paths resolved.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Generic, TypeVar

T = TypeVar("T")

# Function states and update statuses, as AWS spells them.
PENDING = "Pending"
ACTIVE = "Active"
IN_PROGRESS = "InProgress"
SUCCESSFUL = "Successful"

#: Direct-upload limit of a zip (bytes, decoded) and the unzipped limit including layers.
MAX_ZIPPED_BYTES = 52_428_800
MAX_UNZIPPED_BYTES = 262_144_000


@dataclass(frozen=True)
class CodeBlob:
    """A stored, unpacked zip; the same content is stored once."""

    sha256_hex: str
    sha256_b64: str  # as AWS shows CodeSha256
    size: int  # zipped bytes
    unzipped_size: int
    code_dir: Path  # unpacked content on the host


@dataclass(frozen=True)
class LayerKey:
    """One layer version named by a function's configuration."""

    name: str
    version: int


@dataclass(frozen=True)
class LoggingSettings:
    log_format: str = "Text"
    application_log_level: str | None = None
    system_log_level: str | None = None
    log_group: str = ""


@dataclass(frozen=True)
class FunctionSpec:
    """A validated CreateFunction request (zip package)."""

    name: str
    runtime: str
    handler: str
    role: str
    memory_mb: int = 128
    timeout_s: int = 3
    ephemeral_mb: int = 512
    environment: Mapping[str, str] = field(default_factory=dict)
    layers: tuple[LayerKey, ...] = ()
    description: str = ""
    architectures: tuple[str, ...] = ("x86_64",)
    tracing_mode: str = "PassThrough"
    logging: LoggingSettings = LoggingSettings()
    tags: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class FunctionPatch:
    """A validated UpdateFunctionConfiguration request: ``None`` leaves a field as it is.

    ``environment`` and ``layers`` replace the whole map / list when given.
    """

    runtime: str | None = None
    handler: str | None = None
    role: str | None = None
    memory_mb: int | None = None
    timeout_s: int | None = None
    ephemeral_mb: int | None = None
    environment: Mapping[str, str] | None = None
    layers: tuple[LayerKey, ...] | None = None
    description: str | None = None
    tracing_mode: str | None = None
    logging: LoggingSettings | None = None


@dataclass(frozen=True)
class LayerVersionSpec:
    """A validated PublishLayerVersion request."""

    name: str
    description: str = ""
    license_info: str | None = None
    compatible_runtimes: tuple[str, ...] = ()
    compatible_architectures: tuple[str, ...] = ()


@dataclass(frozen=True)
class LayerVersionRecord:
    name: str
    version: int
    layer_arn: str
    layer_version_arn: str
    description: str
    license_info: str | None
    compatible_runtimes: tuple[str, ...]
    compatible_architectures: tuple[str, ...]
    created_date: str  # AWS format, e.g. 2018-11-14T23:03:52.079+0000
    code: CodeBlob


@dataclass(frozen=True)
class Page(Generic[T]):
    """One page of a listing; ``next_after`` is the key to continue after, if more remain."""

    items: tuple[T, ...]
    next_after: str | None
