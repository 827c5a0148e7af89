"""Records the store takes and gives, besides ``model.FunctionRecord``.

No I/O here.  The API builds the ``*Spec``/``*Patch`` records after validating a request;
the store turns them into rows and returns records with host paths resolved.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Generic, TypeVar

from lambdalet.model import ImageCode

T = TypeVar("T")

# Function states and update statuses, as AWS spells them.
PENDING = "Pending"
ACTIVE = "Active"
IN_PROGRESS = "InProgress"
SUCCESSFUL = "Successful"
FAILED = "Failed"

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
    package_type: str = "Zip"
    image: ImageCode | None = None  # PackageType Image: runtime and handler are ""


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
    image_config: Mapping[str, object] | None = None  # ImageConfig of an image function


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


# ------------------------------------------------------------------ versions and aliases


@dataclass(frozen=True)
class AliasSpec:
    """A validated CreateAlias request."""

    name: str
    function_version: str
    description: str = ""
    weights: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class AliasPatch:
    """A validated UpdateAlias request: ``None`` leaves a field as it is."""

    function_version: str | None = None
    description: str | None = None
    weights: Mapping[str, float] | None = None
    revision_id: str | None = None


@dataclass(frozen=True)
class AliasRecord:
    function_name: str
    name: str
    arn: str
    function_version: str
    description: str
    weights: Mapping[str, float]  # AdditionalVersionWeights: at most one other version
    revision_id: str


def pick_version(alias: AliasRecord, draw: float) -> str:
    """The version an invoke of ``alias`` runs, given a uniform draw in [0, 1)."""
    for version, weight in alias.weights.items():
        if draw < weight:
            return version
        draw -= weight
    return alias.function_version


# ------------------------------------------------------------------ asynchronous invocation

#: Lambda's defaults for asynchronous invocation.
DEFAULT_MAX_RETRY_ATTEMPTS = 2
DEFAULT_MAX_EVENT_AGE_S = 21_600


@dataclass(frozen=True)
class EventInvokeConfig:
    """PutFunctionEventInvokeConfig for one function, version or alias (``None``: default)."""

    function_name: str
    qualifier: str
    max_retry_attempts: int | None = None
    max_event_age_s: int | None = None
    on_success: str | None = None  # destination ARN
    on_failure: str | None = None
    last_modified: float = 0.0  # epoch seconds

    @property
    def retries(self) -> int:
        if self.max_retry_attempts is None:
            return DEFAULT_MAX_RETRY_ATTEMPTS
        return self.max_retry_attempts

    @property
    def max_age_s(self) -> int:
        return DEFAULT_MAX_EVENT_AGE_S if self.max_event_age_s is None else self.max_event_age_s


@dataclass(frozen=True)
class EventInvokePatch:
    """UpdateFunctionEventInvokeConfig: ``None`` leaves a field; ``""`` clears a destination."""

    max_retry_attempts: int | None = None
    max_event_age_s: int | None = None
    on_success: str | None = None
    on_failure: str | None = None


@dataclass(frozen=True)
class QueuedEvent:
    """One asynchronous invocation waiting in the durable queue."""

    seq: int
    request_id: str
    function_name: str
    qualifier: str | None
    payload: bytes
    enqueued_at: float  # wall clock
    attempts: int  # function invocations started so far
    throttles: int  # attempts refused (throttled, platform error)
    due_at: float


@dataclass(frozen=True)
class NewEvent:
    """An event to queue (an Event invoke, or a destination delivery)."""

    request_id: str
    function_name: str
    qualifier: str | None
    payload: bytes


# ------------------------------------------------------------------ provisioned concurrency


@dataclass(frozen=True)
class ProvisionedConfig:
    function_name: str
    qualifier: str  # a version number or an alias
    requested: int
    last_modified: str  # AWS format


def aws_timestamp(epoch_s: float) -> str:
    """``2019-11-21T19:32:12.000+0000``: the form Lambda uses for LastModified/CreatedDate."""
    ms = round(epoch_s * 1000)
    secs, millis = divmod(ms, 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs)) + f".{millis:03d}+0000"


def dumps(value: object) -> str:
    """The compact, key-sorted JSON of a column."""
    return json.dumps(value, separators=(",", ":"), sort_keys=True)


def logging_json(settings: LoggingSettings) -> dict[str, str]:
    """The ``logging`` column of ``settings`` (LoggingConfig's keys, unset ones left out)."""
    out = {"LogFormat": settings.log_format}
    if settings.log_group:
        out["LogGroup"] = settings.log_group
    if settings.application_log_level:
        out["ApplicationLogLevel"] = settings.application_log_level
    if settings.system_log_level:
        out["SystemLogLevel"] = settings.system_log_level
    return out
