"""JSON shapes of the Lambda API built from store records.  Pure: no I/O.

Member names follow botocore's ``lambda/2015-03-31`` model exactly.
"""

from __future__ import annotations

import base64
from typing import Any

from lambdalet.api.arns import Scope, runtime_version_arn
from lambdalet.api.validation import encode_marker
from lambdalet.model import FunctionRecord
from lambdalet.store.records import (
    ACTIVE,
    IN_PROGRESS,
    MAX_UNZIPPED_BYTES,
    MAX_ZIPPED_BYTES,
    PENDING,
    AliasRecord,
    EventInvokeConfig,
    LayerVersionRecord,
    Page,
    ProvisionedConfig,
)

CREATING_REASON = "The function is being created."
#: Code storage quota of the account (75 GB, as GetAccountSettings shows it).
TOTAL_CODE_STORAGE = 80_530_636_800


def code_sha256_hex(record: FunctionRecord) -> str:
    """The hex digest naming the function's zip (CodeSha256 is base64)."""
    return base64.b64decode(record.code_sha256).hex()


def function_arn(record: FunctionRecord, alias: str | None = None) -> str:
    """The FunctionArn AWS shows: qualified by the alias the caller named, else by the
    version (published versions only)."""
    if alias is not None:
        return f"{record.arn}:{alias}"
    return record.arn if record.version == "$LATEST" else record.qualified_arn


def function_configuration(
    record: FunctionRecord, scope: Scope, alias: str | None = None
) -> dict[str, Any]:
    """FunctionConfiguration, as CreateFunction, GetFunctionConfiguration and updates answer.

    ``alias``: the alias the caller named (GetFunction/GetFunctionConfiguration by alias);
    ``FunctionArn`` is then the alias ARN while ``Version`` is the version it points to.
    """
    out: dict[str, Any] = {
        "FunctionName": record.name,
        "FunctionArn": function_arn(record, alias),
        "Runtime": record.runtime,
        "Role": record.role,
        "Handler": record.handler,
        "CodeSize": record.code_size,
        "Description": record.description,
        "Timeout": record.timeout_s,
        "MemorySize": record.memory_mb,
        "LastModified": record.last_modified,
        "CodeSha256": record.code_sha256,
        "Version": record.version,
        "TracingConfig": {"Mode": record.tracing_mode},
        "RevisionId": record.revision_id,
        "State": record.state,
        "LastUpdateStatus": record.last_update_status,
        "PackageType": "Zip",
        "Architectures": list(record.architectures),
        "EphemeralStorage": {"Size": record.ephemeral_mb},
        "SnapStart": {"ApplyOn": "None", "OptimizationStatus": "Off"},
        "RuntimeVersionConfig": {"RuntimeVersionArn": runtime_version_arn(scope, record.runtime)},
        "LoggingConfig": _logging(record),
    }
    if record.environment:
        out["Environment"] = {"Variables": dict(record.environment)}
    if record.layers:
        out["Layers"] = [{"Arn": ref.arn, "CodeSize": ref.code_size} for ref in record.layers]
    if record.image is not None:
        _image_configuration(record, out)
    if record.status_reasons:
        out.update(record.status_reasons)
    elif record.state == PENDING:
        out["StateReason"] = CREATING_REASON
        out["StateReasonCode"] = "Creating"
        out["LastUpdateStatusReason"] = CREATING_REASON
    elif record.last_update_status == IN_PROGRESS:
        out["LastUpdateStatusReason"] = "The function is being updated."
    return out


def _image_configuration(record: FunctionRecord, out: dict[str, Any]) -> None:
    """An image function: no Runtime, Handler or RuntimeVersionConfig; ImageConfigResponse."""
    assert record.image is not None
    for key in ("Runtime", "Handler", "RuntimeVersionConfig"):
        out.pop(key, None)
    out["PackageType"] = "Image"
    if record.image.config:
        out["ImageConfigResponse"] = {"ImageConfig": dict(record.image.config)}


def _logging(record: FunctionRecord) -> dict[str, str]:
    out = {
        "LogFormat": record.log_format,
        "LogGroup": record.log_group or f"/aws/lambda/{record.name}",
    }
    if record.application_log_level:
        out["ApplicationLogLevel"] = record.application_log_level
    if record.system_log_level:
        out["SystemLogLevel"] = record.system_log_level
    return out


def with_runtime_note(config: dict[str, Any], note: str | None) -> dict[str, Any]:
    """An Active function running on another Python than its runtime names: the note as
    its StateReason (Lambda gives Active functions none; lambdalet's only use of it)."""
    if note and config.get("State") == ACTIVE and "StateReason" not in config:
        config["StateReason"] = note
    return config


def get_function(
    record: FunctionRecord,
    scope: Scope,
    code_location: str,
    reserved: int | None = None,
    alias: str | None = None,
    runtime_note: str | None = None,
) -> dict[str, Any]:
    out: dict[str, Any] = {
        "Configuration": with_runtime_note(
            function_configuration(record, scope, alias), runtime_note
        ),
        "Code": {"RepositoryType": "S3", "Location": code_location},
    }
    if record.image is not None:
        out["Code"] = {
            "RepositoryType": "ECR",
            "ImageUri": record.image.uri,
            "ResolvedImageUri": record.image.resolved_uri,
        }
    if record.tags:
        out["Tags"] = dict(record.tags)
    if reserved is not None:
        out["Concurrency"] = {"ReservedConcurrentExecutions": reserved}
    return out


def list_functions(page: Page[FunctionRecord], scope: Scope) -> dict[str, Any]:
    return paged(
        "Functions", [function_configuration(r, scope) for r in page.items], page.next_after
    )


def layer_version(record: LayerVersionRecord, code_location: str) -> dict[str, Any]:
    """PublishLayerVersion / GetLayerVersion / GetLayerVersionByArn."""
    out: dict[str, Any] = {
        "Content": {
            "Location": code_location,
            "CodeSha256": record.code.sha256_b64,
            "CodeSize": record.code.size,
        },
        "LayerArn": record.layer_arn,
        "LayerVersionArn": record.layer_version_arn,
        "Description": record.description,
        "CreatedDate": record.created_date,
        "Version": record.version,
        "CompatibleRuntimes": list(record.compatible_runtimes),
        "CompatibleArchitectures": list(record.compatible_architectures),
    }
    if record.license_info is not None:
        out["LicenseInfo"] = record.license_info
    return out


def layer_versions_item(record: LayerVersionRecord) -> dict[str, Any]:
    out: dict[str, Any] = {
        "LayerVersionArn": record.layer_version_arn,
        "Version": record.version,
        "Description": record.description,
        "CreatedDate": record.created_date,
        "CompatibleRuntimes": list(record.compatible_runtimes),
        "CompatibleArchitectures": list(record.compatible_architectures),
    }
    if record.license_info is not None:
        out["LicenseInfo"] = record.license_info
    return out


def list_layer_versions(page: Page[LayerVersionRecord]) -> dict[str, Any]:
    return paged("LayerVersions", [layer_versions_item(r) for r in page.items], page.next_after)


def list_layers(page: Page[LayerVersionRecord]) -> dict[str, Any]:
    return paged(
        "Layers",
        [
            {
                "LayerName": r.name,
                "LayerArn": r.layer_arn,
                "LatestMatchingVersion": layer_versions_item(r),
            }
            for r in page.items
        ],
        page.next_after,
    )


# ------------------------------------------------------------------ versions and aliases


def list_versions(page: Page[FunctionRecord], scope: Scope) -> dict[str, Any]:
    return paged(
        "Versions", [function_configuration(r, scope) for r in page.items], page.next_after
    )


def alias_configuration(alias: AliasRecord) -> dict[str, Any]:
    out: dict[str, Any] = {
        "AliasArn": alias.arn,
        "Name": alias.name,
        "FunctionVersion": alias.function_version,
        "Description": alias.description,
        "RevisionId": alias.revision_id,
    }
    if alias.weights:
        out["RoutingConfig"] = {"AdditionalVersionWeights": dict(alias.weights)}
    return out


def list_aliases(page: Page[AliasRecord]) -> dict[str, Any]:
    return paged("Aliases", [alias_configuration(a) for a in page.items], page.next_after)


# ------------------------------------------------------------------ asynchronous invocation


def event_invoke_config(config: EventInvokeConfig, function_arn: str) -> dict[str, Any]:
    """FunctionEventInvokeConfig; ``LastModified`` is epoch seconds (a JSON number)."""
    destinations: dict[str, Any] = {"OnSuccess": {}, "OnFailure": {}}
    if config.on_success:
        destinations["OnSuccess"] = {"Destination": config.on_success}
    if config.on_failure:
        destinations["OnFailure"] = {"Destination": config.on_failure}
    out: dict[str, Any] = {
        "LastModified": config.last_modified,
        "FunctionArn": f"{function_arn}:{config.qualifier}",
        "DestinationConfig": destinations,
    }
    if config.max_retry_attempts is not None:
        out["MaximumRetryAttempts"] = config.max_retry_attempts
    if config.max_event_age_s is not None:
        out["MaximumEventAgeInSeconds"] = config.max_event_age_s
    return out


def list_event_invoke_configs(page: Page[EventInvokeConfig], function_arn: str) -> dict[str, Any]:
    return paged(
        "FunctionEventInvokeConfigs",
        [event_invoke_config(c, function_arn) for c in page.items],
        page.next_after,
    )


# ------------------------------------------------------------------ concurrency


def provisioned_config(
    config: ProvisionedConfig,
    requested: int,
    allocated: int,
    status: str,
    reason: str | None,
    function_arn: str | None = None,
) -> dict[str, Any]:
    out: dict[str, Any] = {
        "RequestedProvisionedConcurrentExecutions": requested,
        "AvailableProvisionedConcurrentExecutions": allocated,
        "AllocatedProvisionedConcurrentExecutions": allocated,
        "Status": status,
        "LastModified": config.last_modified,
    }
    if reason:
        out["StatusReason"] = reason
    if function_arn is not None:
        out = {"FunctionArn": f"{function_arn}:{config.qualifier}", **out}
    return out


def account_settings(
    account_limit: int, unreserved: int, total_code_size: int, function_count: int
) -> dict[str, Any]:
    return {
        "AccountLimit": {
            "TotalCodeSize": TOTAL_CODE_STORAGE,
            "CodeSizeUnzipped": MAX_UNZIPPED_BYTES,
            "CodeSizeZipped": MAX_ZIPPED_BYTES,
            "ConcurrentExecutions": account_limit,
            "UnreservedConcurrentExecutions": unreserved,
        },
        "AccountUsage": {"TotalCodeSize": total_code_size, "FunctionCount": function_count},
    }


def paged(key: str, items: list[Any], next_after: str | None) -> dict[str, Any]:
    """A list operation's answer: ``{key: items}``, with ``NextMarker`` when more follow."""
    out: dict[str, Any] = {key: items}
    if next_after is not None:
        out["NextMarker"] = encode_marker(next_after)
    return out
