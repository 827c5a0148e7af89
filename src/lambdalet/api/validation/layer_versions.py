"""PublishLayerVersion and the layer listings' parameters."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from lambdalet.api.arns import LayerVersionRef, Scope, parse_layer_version_arn
from lambdalet.api.validation.fields import (
    encode_marker,
    invalid,
    max_len,
    one_of,
    opt_obj,
    opt_str,
    opt_str_list,
    require,
)
from lambdalet.api.validation.function_fields import ARCHITECTURES, LAYER_RUNTIMES
from lambdalet.api.validation.functions import _code_source
from lambdalet.errors import InvalidParameterValueException
from lambdalet.store.records import LayerVersionSpec


def publish_layer_version(name: str, body: Mapping[str, Any]) -> tuple[LayerVersionSpec, bytes]:
    content = require(opt_obj(body, "Content"), "content")
    runtimes = opt_str_list(body, "CompatibleRuntimes") or []
    if len(runtimes) > 15:
        raise invalid(
            runtimes, "compatibleRuntimes", "Member must have length less than or equal to 15"
        )
    for i, rt in enumerate(runtimes, 1):
        one_of(rt, f"compatibleRuntimes.{i}.member", tuple(sorted(LAYER_RUNTIMES)))
    archs = opt_str_list(body, "CompatibleArchitectures") or []
    if len(archs) > 2:
        raise invalid(
            archs, "compatibleArchitectures", "Member must have length less than or equal to 2"
        )
    for i, a in enumerate(archs, 1):
        one_of(a, f"compatibleArchitectures.{i}.member", ARCHITECTURES)
    license_info = opt_str(body, "LicenseInfo", "licenseInfo")
    spec = LayerVersionSpec(
        name=name,
        description=max_len(opt_str(body, "Description", "description") or "", "description", 256),
        license_info=max_len(license_info, "licenseInfo", 512) if license_info else None,
        compatible_runtimes=tuple(runtimes),
        compatible_architectures=tuple(archs),
    )
    return spec, _code_source(content, "Content.", "PublishLayerVersion")


def compatible_filters(query: Mapping[str, str]) -> tuple[str | None, str | None]:
    rt = query.get("CompatibleRuntime")
    arch = query.get("CompatibleArchitecture")
    if rt is not None:
        one_of(rt, "compatibleRuntime", tuple(sorted(LAYER_RUNTIMES)))
    if arch is not None:
        one_of(arch, "compatibleArchitecture", ARCHITECTURES)
    return rt, arch


def layer_version_number(raw: str) -> int:
    try:
        return int(raw)
    except ValueError:
        raise invalid(raw, "versionNumber", "Member must be a number") from None


def layer_version_arn_param(value: str | None, scope: Scope) -> LayerVersionRef | None:
    """``?Arn=`` of GetLayerVersionByArn; ``None`` when it names another region or account."""
    where, ref = parse_layer_version_arn(require(value, "arn"))
    return ref if where == scope else None


def version_marker(after: str | None) -> int | None:
    """The decoded marker of ListLayerVersions is the last version number shown."""
    if after is None:
        return None
    try:
        return int(after)
    except ValueError:
        raise InvalidParameterValueException(f"Invalid marker: {encode_marker(after)}") from None
