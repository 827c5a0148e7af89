"""CreateFunction, UpdateFunctionConfiguration, UpdateFunctionCode: zip or image code, and
which fields each package type takes."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from lambdalet.api.arns import Scope
from lambdalet.api.validation.fields import (
    bad_type,
    flag,
    in_range,
    invalid,
    max_len,
    one_of,
    opt_int,
    opt_obj,
    opt_str,
    opt_str_list,
    require,
    zip_file,
)
from lambdalet.api.validation.function_fields import (
    architectures,
    environment,
    function_name,
    handler,
    layers,
    logging,
    role,
    runtime,
    tags,
    tracing_mode,
)
from lambdalet.errors import InvalidParameterValueException
from lambdalet.images import reference as image_ref
from lambdalet.model import ImageCode
from lambdalet.store.records import FunctionPatch, FunctionSpec

IMAGE_ONLY_FIELDS_MESSAGE = (
    "Please don't provide Handler or Runtime or Layer when the intended function PackageType "
    "is Image."
)


@dataclass(frozen=True)
class ImageSource:
    """``Code.ImageUri`` (or UpdateFunctionCode's ``ImageUri``), parsed."""

    uri: str
    ref: image_ref.ImageRef


@dataclass(frozen=True)
class CodeUpdate:
    """A validated UpdateFunctionCode request: a zip or an image."""

    zip_file: bytes
    image: ImageSource | None = None
    architectures: tuple[str, ...] | None = None
    revision_id: str | None = None
    dry_run: bool = False
    publish: bool = False


def _code_source(code: Mapping[str, Any], field: str, operation: str) -> bytes:
    if code.get("ZipFile") is not None:
        return zip_file(code["ZipFile"], f"{field}ZipFile", operation)
    if code.get("S3Bucket") is not None or code.get("S3Key") is not None:
        raise InvalidParameterValueException(
            "Code from S3 is not supported by this server; upload a ZipFile."
        )
    raise InvalidParameterValueException("Please provide a source for function code.")


def image_source(value: object, field: str) -> ImageSource:
    """An ``ImageUri``: ``registry/repository:tag`` or ``...@sha256:<hex>``."""
    if not isinstance(value, str):
        raise bad_type(field, "a string")
    try:
        ref = image_ref.parse(value)
    except image_ref.BadReference:
        raise InvalidParameterValueException(
            f"Source image {value} is not valid. Provide a valid source image."
        ) from None
    return ImageSource(value, ref)


def image_config(value: Mapping[str, Any]) -> dict[str, object]:
    """``ImageConfig``: EntryPoint and Command (≤ 1500 strings), WorkingDirectory (≤ 1000)."""
    out: dict[str, object] = {}
    for key, field in (
        ("EntryPoint", "imageConfig.entryPoint"),
        ("Command", "imageConfig.command"),
    ):
        items = opt_str_list(value, key)
        if items is None:
            continue
        if len(items) > 1500:
            raise invalid(items, field, "Member must have length less than or equal to 1500")
        out[key] = list(items)
    wd = opt_str(value, "WorkingDirectory", "WorkingDirectory")
    if wd is not None:
        out["WorkingDirectory"] = max_len(wd, "imageConfig.workingDirectory", 1000)
    return out


def create_function(
    body: Mapping[str, Any], scope: Scope
) -> tuple[FunctionSpec, bytes | ImageSource]:
    """CreateFunction: the spec to store and the decoded zip, or the image to pull."""
    name = function_name(body.get("FunctionName"))
    role_arn = role(require(opt_str(body, "Role", "role"), "role"))
    code = require(opt_obj(body, "Code"), "code")
    package = opt_str(body, "PackageType", "packageType") or "Zip"
    if one_of(package, "packageType", ("Zip", "Image")) == "Image":
        return _create_image_function(body, scope, name, role_arn, code)
    if opt_obj(body, "ImageConfig"):
        raise InvalidParameterValueException(
            "ImageConfig is not supported for functions created with deployment packages."
        )
    rt = opt_str(body, "Runtime", "runtime")
    hd = opt_str(body, "Handler", "handler")
    if rt is None or hd is None:
        raise InvalidParameterValueException(
            "Runtime and Handler are mandatory parameters for functions created with deployment "
            "packages."
        )
    spec = FunctionSpec(
        name=name,
        runtime=runtime(rt),
        handler=handler(hd),
        role=role_arn,
        memory_mb=in_range(_default(opt_int(body, "MemorySize"), 128), "memorySize", 128, 10240),
        timeout_s=in_range(_default(opt_int(body, "Timeout"), 3), "timeout", 1, 900),
        ephemeral_mb=_default(_ephemeral(body), 512),
        environment=environment(opt_obj(body, "Environment") or {}),
        layers=layers(opt_str_list(body, "Layers") or [], scope),
        description=max_len(opt_str(body, "Description", "description") or "", "description", 256),
        architectures=architectures(opt_str_list(body, "Architectures") or ["x86_64"]),
        tracing_mode=tracing_mode(opt_obj(body, "TracingConfig") or {}),
        logging=logging(opt_obj(body, "LoggingConfig") or {}),
        tags=tags(opt_obj(body, "Tags") or {}),
    )
    return spec, _code_source(code, "Code.", "CreateFunction")


def _common(body: Mapping[str, Any]) -> dict[str, Any]:
    """The FunctionSpec fields zip and image functions share."""
    return {
        "memory_mb": in_range(_default(opt_int(body, "MemorySize"), 128), "memorySize", 128, 10240),
        "timeout_s": in_range(_default(opt_int(body, "Timeout"), 3), "timeout", 1, 900),
        "ephemeral_mb": _default(_ephemeral(body), 512),
        "environment": environment(opt_obj(body, "Environment") or {}),
        "description": max_len(
            opt_str(body, "Description", "description") or "", "description", 256
        ),
        "architectures": architectures(opt_str_list(body, "Architectures") or ["x86_64"]),
        "tracing_mode": tracing_mode(opt_obj(body, "TracingConfig") or {}),
        "logging": logging(opt_obj(body, "LoggingConfig") or {}),
        "tags": tags(opt_obj(body, "Tags") or {}),
    }


def _create_image_function(
    body: Mapping[str, Any], scope: Scope, name: str, role_arn: str, code: Mapping[str, Any]
) -> tuple[FunctionSpec, ImageSource]:
    rt = opt_str(body, "Runtime", "runtime")
    hd = opt_str(body, "Handler", "handler")
    if rt is not None or hd is not None or opt_str_list(body, "Layers"):
        raise InvalidParameterValueException(IMAGE_ONLY_FIELDS_MESSAGE)
    if code.get("ImageUri") is None:
        raise InvalidParameterValueException("Please provide a source for function code.")
    source = image_source(code["ImageUri"], "Code.ImageUri")
    config = image_config(opt_obj(body, "ImageConfig") or {})
    spec = FunctionSpec(
        name=name,
        runtime="",
        handler="",
        role=role_arn,
        package_type="Image",
        # the digest is filled in once the tag is resolved
        image=ImageCode(source.uri, "", "", config),
        **_common(body),
    )
    return spec, source


def _default(value: int | None, default: int) -> int:
    return default if value is None else value


def _ephemeral(body: Mapping[str, Any]) -> int | None:
    storage = opt_obj(body, "EphemeralStorage")
    if storage is None:
        return None
    size = require(opt_int(storage, "Size"), "ephemeralStorage.size")
    return in_range(size, "ephemeralStorage.size", 512, 10240)


def update_function_configuration(
    body: Mapping[str, Any], scope: Scope
) -> tuple[FunctionPatch, str | None]:
    """UpdateFunctionConfiguration: the patch and the RevisionId precondition, if any."""
    memory = opt_int(body, "MemorySize")
    timeout = opt_int(body, "Timeout")
    env = opt_obj(body, "Environment")
    layer_list = opt_str_list(body, "Layers")
    tracing = opt_obj(body, "TracingConfig")
    log_cfg = opt_obj(body, "LoggingConfig")
    rt = opt_str(body, "Runtime", "runtime")
    hd = opt_str(body, "Handler", "handler")
    rl = opt_str(body, "Role", "role")
    desc = opt_str(body, "Description", "description")
    img_cfg = opt_obj(body, "ImageConfig")
    patch = FunctionPatch(
        image_config=image_config(img_cfg) if img_cfg is not None else None,
        runtime=runtime(rt) if rt is not None else None,
        handler=handler(hd) if hd is not None else None,
        role=role(rl) if rl is not None else None,
        memory_mb=in_range(memory, "memorySize", 128, 10240) if memory is not None else None,
        timeout_s=in_range(timeout, "timeout", 1, 900) if timeout is not None else None,
        ephemeral_mb=_ephemeral(body),
        environment=environment(env) if env is not None else None,
        layers=layers(layer_list, scope) if layer_list is not None else None,
        description=max_len(desc, "description", 256) if desc is not None else None,
        tracing_mode=tracing_mode(tracing) if tracing is not None else None,
        logging=logging(log_cfg) if log_cfg is not None else None,
    )
    return patch, opt_str(body, "RevisionId", "revisionId")


def update_function_code(body: Mapping[str, Any]) -> CodeUpdate:
    arch = opt_str_list(body, "Architectures")
    if body.get("ImageUri") is not None and body.get("ZipFile") is None:
        return CodeUpdate(
            zip_file=b"",
            image=image_source(body["ImageUri"], "ImageUri"),
            architectures=architectures(arch) if arch is not None else None,
            revision_id=opt_str(body, "RevisionId", "revisionId"),
            dry_run=flag(body, "DryRun"),
            publish=flag(body, "Publish"),
        )
    return CodeUpdate(
        zip_file=_code_source(body, "", "UpdateFunctionCode"),
        architectures=architectures(arch) if arch is not None else None,
        revision_id=opt_str(body, "RevisionId", "revisionId"),
        dry_run=flag(body, "DryRun"),
        publish=flag(body, "Publish"),
    )
