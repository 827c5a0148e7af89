"""Plain records shared by the control plane (API, store) and the invoke path.

No I/O here.  The store persists these; the API renders them; the invoker runs them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from lambdalet.streaming import ResponseStream

LATEST = "$LATEST"
ZIP = "Zip"
IMAGE = "Image"


@dataclass(frozen=True)
class ImageCode:
    """The code of a ``PackageType: Image`` function: the image as named and as resolved."""

    uri: str  # ImageUri as given
    digest: str  # sha256:<hex> of the manifest for the function's architecture
    resolved_uri: str  # repository@digest
    #: ImageConfig's overrides (JSON as AWS spells it: EntryPoint, Command, WorkingDirectory)
    config: Mapping[str, object] = field(default_factory=dict)


@dataclass(frozen=True)
class LayerRef:
    """One layer version attached to a function, as resolved at configuration time."""

    arn: str  # LayerVersionArn
    code_size: int
    code_dir: Path  # unpacked content on the host


@dataclass(frozen=True)
class FunctionRecord:
    """One function version's configuration, everything the invoke path needs."""

    name: str
    version: str  # "$LATEST" or "1", "2", ...
    arn: str  # unqualified function ARN
    runtime: str  # "python3.12", "provided.al2023", ...
    handler: str
    role: str
    memory_mb: int
    timeout_s: int
    ephemeral_mb: int
    environment: Mapping[str, str]
    layers: tuple[LayerRef, ...]
    code_dir: Path  # unpacked code on the host
    code_sha256: str  # base64 SHA-256 of the zip, as AWS shows it
    code_size: int
    revision_id: str  # changes on every update: environments of an old revision are retired
    description: str = ""
    architectures: tuple[str, ...] = ("x86_64",)
    tracing_mode: str = "PassThrough"
    last_modified: str = ""
    state: str = "Active"
    extra: Mapping[str, object] = field(default_factory=dict)
    last_update_status: str = "Successful"  # "InProgress" while an update settles
    tags: Mapping[str, str] = field(default_factory=dict)
    log_format: str = "Text"  # LoggingConfig.LogFormat: "Text" or "JSON"
    log_group: str = ""  # LoggingConfig.LogGroup; "" means /aws/lambda/<name>
    application_log_level: str | None = None  # JSON format only
    system_log_level: str | None = None  # JSON format only
    package_type: str = ZIP
    image: ImageCode | None = None  # set for PackageType Image
    #: StateReason(Code), LastUpdateStatusReason(Code) of a failed image pull
    status_reasons: Mapping[str, str] = field(default_factory=dict)

    @property
    def qualified_arn(self) -> str:
        return f"{self.arn}:{self.version}"


@dataclass(frozen=True)
class InvokeInput:
    """A synchronous invocation request after the API layer validated it."""

    function: FunctionRecord
    invoked_arn: str  # the ARN the caller used, qualified if it named a qualifier
    request_id: str
    payload: bytes
    client_context: str | None = None  # decoded JSON text of X-Amz-Client-Context
    log_tail: bool = False
    trace_id: str | None = None
    #: set by a streaming caller: the chunks of a streamed response go there as they come
    stream: ResponseStream | None = None


@dataclass(frozen=True)
class InvokeOutput:
    payload: bytes
    executed_version: str
    function_error: str | None = None  # "Unhandled" for every function failure
    log_result: str | None = None  # base64 of the last 4 KB of the invocation's log
    content_type: str = "application/json"


@dataclass(frozen=True)
class ProvisionResult:
    """How provisioning a config's environments went."""

    ready: int  # environments initialized and waiting
    failure: str | None = None  # StatusReason when some could not be initialized


class Invoker(Protocol):
    """What the API layer calls to run code; implemented by ``control.invoker``."""

    async def invoke(self, request: InvokeInput) -> InvokeOutput:
        """Run one synchronous invocation.  Raises ``LambdaApiError`` for service errors."""
        ...

    async def retire(self, function_name: str, version: str | None = None) -> None:
        """Shut down the on-demand environments of a function, or of one of its versions
        (code or configuration changed, version or function deleted)."""
        ...

    async def provision(
        self, config_key: str, function: FunctionRecord, count: int
    ) -> ProvisionResult:
        """Start (or trim to) ``count`` provisioned environments of this version for the
        config ``config_key``; returns when their Init phases are over."""
        ...

    async def unprovision(self, config_key: str) -> None:
        """Shut the provisioned environments of a config down."""
        ...
