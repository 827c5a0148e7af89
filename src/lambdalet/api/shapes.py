"""JSON shapes of the Lambda API built from store records.  Pure: no I/O.

Member names follow botocore's ``lambda/2015-03-31`` model exactly.
"""

from __future__ import annotations

import base64
from typing import Any

from lambdalet.api.arns import Scope, runtime_version_arn
from lambdalet.api.validation import encode_marker
from lambdalet.model import FunctionRecord
from lambdalet.store.records import IN_PROGRESS, PENDING, LayerVersionRecord, Page

CREATING_REASON = "The function is being created."


def code_sha256_hex(record: FunctionRecord) -> str:
    """The hex digest naming the function's zip (CodeSha256 is base64)."""
    return base64.b64decode(record.code_sha256).hex()


def function_configuration(record: FunctionRecord, scope: Scope) -> dict[str, Any]:
    """FunctionConfiguration, as CreateFunction, GetFunctionConfiguration and updates answer."""
    out: dict[str, Any] = {
        "FunctionName": record.name,
        "FunctionArn": record.arn if record.version == "$LATEST" else record.qualified_arn,
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
    if record.state == PENDING:
        out["StateReason"] = CREATING_REASON
        out["StateReasonCode"] = "Creating"
        out["LastUpdateStatusReason"] = CREATING_REASON
    elif record.last_update_status == IN_PROGRESS:
        out["LastUpdateStatusReason"] = "The function is being updated."
    return out


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


def get_function(record: FunctionRecord, scope: Scope, code_location: str) -> dict[str, Any]:
    out: dict[str, Any] = {
        "Configuration": function_configuration(record, scope),
        "Code": {"RepositoryType": "S3", "Location": code_location},
    }
    if record.tags:
        out["Tags"] = dict(record.tags)
    return out


def list_functions(page: Page[FunctionRecord], scope: Scope) -> dict[str, Any]:
    out: dict[str, Any] = {"Functions": [function_configuration(r, scope) for r in page.items]}
    if page.next_after is not None:
        out["NextMarker"] = encode_marker(page.next_after)
    return out


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
    out: dict[str, Any] = {"LayerVersions": [layer_versions_item(r) for r in page.items]}
    if page.next_after is not None:
        out["NextMarker"] = encode_marker(page.next_after)
    return out


def list_layers(page: Page[LayerVersionRecord]) -> dict[str, Any]:
    out: dict[str, Any] = {
        "Layers": [
            {
                "LayerName": r.name,
                "LayerArn": r.layer_arn,
                "LatestMatchingVersion": layer_versions_item(r),
            }
            for r in page.items
        ]
    }
    if page.next_after is not None:
        out["NextMarker"] = encode_marker(page.next_after)
    return out
