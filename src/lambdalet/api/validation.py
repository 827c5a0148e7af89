"""Request validation for the Lambda API: pure functions from parsed JSON to store records.

No I/O.  Each function raises the ``LambdaApiError`` AWS would answer with, in AWS's words:
model constraints (lengths, ranges, patterns, enums) as ``ValidationException`` with the
"1 validation error detected" wording; semantic rules as ``InvalidParameterValueException``.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from lambdalet.api.arns import (
    LayerVersionRef,
    Scope,
    layer_version_arn,
    parse_layer_version_arn,
    validation_message,
)
from lambdalet.errors import (
    InvalidParameterValueException,
    InvalidRequestContentException,
    RequestEntityTooLargeException,
    RequestTooLargeException,
    ValidationException,
)
from lambdalet.images import reference as image_ref
from lambdalet.model import ImageCode
from lambdalet.runtimes.envvars import RESERVED_ENV_KEYS
from lambdalet.store.records import (
    MAX_ZIPPED_BYTES,
    AliasPatch,
    AliasSpec,
    FunctionPatch,
    FunctionSpec,
    LayerKey,
    LayerVersionSpec,
    LoggingSettings,
)

#: Runtimes this server runs.
RUNTIMES: tuple[str, ...] = (
    "python3.8",
    "python3.9",
    "python3.10",
    "python3.11",
    "python3.12",
    "python3.13",
    "python3.14",
    "nodejs20.x",
    "nodejs22.x",
    "nodejs24.x",
    "provided",
    "provided.al2",
    "provided.al2023",
)
#: Runtimes a layer may declare itself compatible with (Lambda's whole list).
LAYER_RUNTIMES: frozenset[str] = frozenset(
    RUNTIMES
    + tuple(f"nodejs{v}.x" for v in (10, 12, 14, 16, 18, 20, 22, 24))
    + ("java8", "java8.al2", "java11", "java17", "java21", "java25")
    + ("python2.7", "python3.6", "python3.7", "python3.15")
    + ("dotnetcore3.1", "dotnet6", "dotnet8", "dotnet10", "go1.x")
    + ("ruby2.7", "ruby3.2", "ruby3.3", "ruby3.4")
)
ARCHITECTURES = ("x86_64", "arm64")
TRACING_MODES = ("Active", "PassThrough")
LOG_FORMATS = ("JSON", "Text")
APPLICATION_LOG_LEVELS = ("TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL")
SYSTEM_LOG_LEVELS = ("DEBUG", "INFO", "WARN")
INVOCATION_TYPES = ("Event", "RequestResponse", "DryRun")
LOG_TYPES = ("None", "Tail")

ENV_KEY_PATTERN = "[a-zA-Z]([a-zA-Z0-9_])+"
_ENV_KEY_RE = re.compile(ENV_KEY_PATTERN)
MAX_ENV_BYTES = 4096
MAX_LAYERS = 5
FUNCTION_NAME_RE = re.compile(r"[a-zA-Z0-9_-]+")
ROLE_PATTERN = r"arn:(aws[a-zA-Z-]*)?:iam::\d{12}:role/?[a-zA-Z_0-9+=,.@\-_/]+"
_ROLE_RE = re.compile(ROLE_PATTERN)
_HANDLER_RE = re.compile(r"[^\s]+")

MAX_SYNC_PAYLOAD = 6_291_456
MAX_ASYNC_PAYLOAD = 1_048_576
MAX_CLIENT_CONTEXT = 3583
#: Request bodies carrying a zip: base64 of 50 MB, as AWS states the limit.
MAX_ZIP_REQUEST = 69_905_067

T = TypeVar("T")


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


@dataclass(frozen=True)
class InvokeParams:
    invocation_type: str
    log_tail: bool
    client_context: str | None


@dataclass(frozen=True)
class ListParams:
    after: str | None
    limit: int


# ------------------------------------------------------------------ helpers


def _invalid(value: object, field: str, constraint: str) -> ValidationException:
    return ValidationException(validation_message(value, field, constraint))


def _bad_type(field: str, expected: str) -> InvalidRequestContentException:
    return InvalidRequestContentException(
        f"Could not parse request body into json: {field} must be {expected}"
    )


def _str(body: Mapping[str, Any], key: str, field: str) -> str | None:
    v = body.get(key)
    if v is None:
        return None
    if not isinstance(v, str):
        raise _bad_type(key, "a string")
    return v


def _int(body: Mapping[str, Any], key: str) -> int | None:
    v = body.get(key)
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, int):
        raise _bad_type(key, "an integer")
    return v


def _bool(body: Mapping[str, Any], key: str) -> bool:
    v = body.get(key, False)
    if not isinstance(v, bool):
        raise _bad_type(key, "a boolean")
    return v


def _obj(body: Mapping[str, Any], key: str) -> Mapping[str, Any] | None:
    v = body.get(key)
    if v is None:
        return None
    if not isinstance(v, dict):
        raise _bad_type(key, "an object")
    return v


def _str_list(body: Mapping[str, Any], key: str) -> list[str] | None:
    v = body.get(key)
    if v is None:
        return None
    if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
        raise _bad_type(key, "a list of strings")
    return v


def _range(value: int, field: str, low: int, high: int) -> int:
    if value < low:
        raise _invalid(value, field, f"Member must have value greater than or equal to {low}")
    if value > high:
        raise _invalid(value, field, f"Member must have value less than or equal to {high}")
    return value


def _max_len(value: str, field: str, high: int) -> str:
    if len(value) > high:
        raise _invalid(value, field, f"Member must have length less than or equal to {high}")
    return value


def _enum(value: str, field: str, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise _invalid(value, field, f"Member must satisfy enum value set: [{', '.join(allowed)}]")
    return value


def _required(value: T | None, field: str) -> T:
    if value is None:
        raise _invalid(None, field, "Member must not be null")
    return value


# ------------------------------------------------------------------ bodies


def json_body(raw: bytes) -> Mapping[str, Any]:
    """The JSON object of a control-plane request; an empty body is ``{}``."""
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except RecursionError:
        raise InvalidRequestContentException(
            "Could not parse request body into json: nested too deeply"
        ) from None
    except (ValueError, UnicodeDecodeError) as e:
        raise InvalidRequestContentException(f"Could not parse request body into json: {e}") from e
    if not isinstance(body, dict):
        raise InvalidRequestContentException(
            "Could not parse request body into json: the body must be a JSON object"
        )
    return body


def zip_file(value: object, field: str, operation: str) -> bytes:
    """Decode a base64 ``ZipFile``; over 50 MB is refused like AWS's direct-upload limit."""
    if not isinstance(value, str):
        raise _bad_type(field, "a base64 string")
    try:
        data = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as e:
        raise InvalidRequestContentException(
            f"Could not parse request body into json: {field} is not valid base64"
        ) from e
    if len(data) > MAX_ZIPPED_BYTES:
        raise RequestEntityTooLargeException(
            f"Request must be smaller than {MAX_ZIP_REQUEST} bytes for the {operation} operation"
        )
    return data


def _code_source(code: Mapping[str, Any], field: str, operation: str) -> bytes:
    if code.get("ZipFile") is not None:
        return zip_file(code["ZipFile"], f"{field}ZipFile", operation)
    if code.get("S3Bucket") is not None or code.get("S3Key") is not None:
        raise InvalidParameterValueException(
            "Code from S3 is not supported by this server; upload a ZipFile."
        )
    raise InvalidParameterValueException("Please provide a source for function code.")


# -------------------------------------------------------------- parameters


def function_name(value: object) -> str:
    """``FunctionName`` of CreateFunction: a bare name, 1-64 of ``[a-zA-Z0-9-_]``."""
    if value is not None and not isinstance(value, str):
        raise _bad_type("FunctionName", "a string")
    name = _required(value, "functionName")
    if not name:
        raise _invalid(name, "functionName", "Member must have length greater than or equal to 1")
    _max_len(name, "functionName", 64)
    if not FUNCTION_NAME_RE.fullmatch(name):
        raise _invalid(
            name,
            "functionName",
            "Member must satisfy regular expression pattern: [a-zA-Z0-9-_]+",
        )
    return name


def runtime(value: str) -> str:
    if value not in RUNTIMES:
        raise InvalidParameterValueException(
            validation_message(
                value, "runtime", f"Member must satisfy enum value set: [{', '.join(RUNTIMES)}]"
            )
        )
    return value


def handler(value: str) -> str:
    _max_len(value, "handler", 128)
    if not _HANDLER_RE.fullmatch(value):
        raise _invalid(value, "handler", r"Member must satisfy regular expression pattern: [^\s]+")
    return value


def role(value: str) -> str:
    if not _ROLE_RE.fullmatch(value):
        raise _invalid(
            value, "role", f"Member must satisfy regular expression pattern: {ROLE_PATTERN}"
        )
    return value


def _utf8(text: str) -> bool:
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


def environment(value: Mapping[str, Any]) -> dict[str, str]:
    """``Environment``: reserved keys, key syntax, string values, 4 KB of compact JSON."""
    variables = _obj(value, "Variables") or {}
    reserved = [k for k in variables if k in RESERVED_ENV_KEYS]
    if reserved:
        raise InvalidParameterValueException(
            "Lambda was unable to configure your environment variables because the environment "
            "variables you have provided contains reserved keys that are currently not supported "
            f"for modification. Reserved keys used in this request: {', '.join(reserved)}"
        )
    if any(not isinstance(k, str) or not _ENV_KEY_RE.fullmatch(k) for k in variables):
        raise ValidationException(
            "1 validation error detected: Value at 'environment.variables' failed to satisfy "
            "constraint: Map keys must satisfy constraint: [Member must satisfy regular "
            f"expression pattern: {ENV_KEY_PATTERN}]"
        )
    if not all(isinstance(v, str) for v in variables.values()):
        raise _bad_type("Environment.Variables", "a map of strings")
    with_nul = sorted(k for k, v in variables.items() if "\x00" in v)
    if with_nul:
        # a process environment cannot hold NUL: the function would never start
        raise InvalidParameterValueException(
            "Lambda was unable to configure your environment variables because the value of "
            f"{with_nul[0]} contains a NUL character, which an environment variable cannot hold."
        )
    unencodable = sorted(k for k, v in variables.items() if not _utf8(v))
    if unencodable:
        # a lone surrogate (JSON's "\ud800") has no UTF-8 form a process could be given
        raise InvalidParameterValueException(
            "Lambda was unable to configure your environment variables because the value of "
            f"{unencodable[0]} is not valid Unicode text."
        )
    measured = json.dumps(variables, separators=(",", ":"), ensure_ascii=False)
    if len(measured.encode()) > MAX_ENV_BYTES:
        raise InvalidParameterValueException(
            "Lambda was unable to configure your environment variables because the environment "
            f"variables you have provided exceeded the 4KB limit. String measured: {measured}"
        )
    return dict(variables)


def layers(values: list[str], scope: Scope) -> tuple[LayerKey, ...]:
    """``Layers``: at most 5 layer version ARNs of this region and account, one per layer."""
    if len(values) > MAX_LAYERS:
        raise InvalidParameterValueException(f"Cannot reference more than {MAX_LAYERS} layers.")
    keys: list[LayerKey] = []
    for arn in values:
        where, ref = parse_layer_version_arn(arn, "layers")
        if where != scope:
            raise InvalidParameterValueException(f"Layer version {arn} does not exist.")
        if any(k.name == ref.name for k in keys):
            raise InvalidParameterValueException(
                "Two different versions of the same layer are not allowed to be referenced in "
                f"the same function. {layer_version_arn(scope, ref.name, ref.version)}"
            )
        keys.append(LayerKey(ref.name, ref.version))
    return tuple(keys)


def architectures(values: list[str]) -> tuple[str, ...]:
    if len(values) != 1:
        raise _invalid(values, "architectures", "Member must have length less than or equal to 1")
    return (_enum(values[0], "architectures.1.member", ARCHITECTURES),)


def tracing_mode(value: Mapping[str, Any]) -> str:
    return _enum(_str(value, "Mode", "Mode") or "PassThrough", "tracingConfig.mode", TRACING_MODES)


def logging(value: Mapping[str, Any]) -> LoggingSettings:
    fmt = _enum(
        _str(value, "LogFormat", "LogFormat") or "Text", "loggingConfig.logFormat", LOG_FORMATS
    )
    app = _str(value, "ApplicationLogLevel", "ApplicationLogLevel")
    system = _str(value, "SystemLogLevel", "SystemLogLevel")
    if app is not None:
        _enum(app, "loggingConfig.applicationLogLevel", APPLICATION_LOG_LEVELS)
    if system is not None:
        _enum(system, "loggingConfig.systemLogLevel", SYSTEM_LOG_LEVELS)
    if fmt == "JSON":
        app, system = app or "INFO", system or "INFO"
    else:
        app = system = None
    group = _str(value, "LogGroup", "LogGroup") or ""
    return LoggingSettings(fmt, app, system, _max_len(group, "loggingConfig.logGroup", 512))


def tags(value: Mapping[str, Any]) -> dict[str, str]:
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        raise _bad_type("Tags", "a map of strings")
    for k in value:
        _max_len(k, "tags.key", 128)
    return dict(value)


# -------------------------------------------------------------- operations


def image_source(value: object, field: str) -> ImageSource:
    """An ``ImageUri``: ``registry/repository:tag`` or ``...@sha256:<hex>``."""
    if not isinstance(value, str):
        raise _bad_type(field, "a string")
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
        items = _str_list(value, key)
        if items is None:
            continue
        if len(items) > 1500:
            raise _invalid(items, field, "Member must have length less than or equal to 1500")
        out[key] = list(items)
    wd = _str(value, "WorkingDirectory", "WorkingDirectory")
    if wd is not None:
        out["WorkingDirectory"] = _max_len(wd, "imageConfig.workingDirectory", 1000)
    return out


def create_function(
    body: Mapping[str, Any], scope: Scope
) -> tuple[FunctionSpec, bytes | ImageSource]:
    """CreateFunction: the spec to store and the decoded zip, or the image to pull."""
    name = function_name(body.get("FunctionName"))
    role_arn = role(_required(_str(body, "Role", "role"), "role"))
    code = _required(_obj(body, "Code"), "code")
    package = _str(body, "PackageType", "packageType") or "Zip"
    if _enum(package, "packageType", ("Zip", "Image")) == "Image":
        return _create_image_function(body, scope, name, role_arn, code)
    if _obj(body, "ImageConfig"):
        raise InvalidParameterValueException(
            "ImageConfig is not supported for functions created with deployment packages."
        )
    rt = _str(body, "Runtime", "runtime")
    hd = _str(body, "Handler", "handler")
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
        memory_mb=_range(_default(_int(body, "MemorySize"), 128), "memorySize", 128, 10240),
        timeout_s=_range(_default(_int(body, "Timeout"), 3), "timeout", 1, 900),
        ephemeral_mb=_default(_ephemeral(body), 512),
        environment=environment(_obj(body, "Environment") or {}),
        layers=layers(_str_list(body, "Layers") or [], scope),
        description=_max_len(_str(body, "Description", "description") or "", "description", 256),
        architectures=architectures(_str_list(body, "Architectures") or ["x86_64"]),
        tracing_mode=tracing_mode(_obj(body, "TracingConfig") or {}),
        logging=logging(_obj(body, "LoggingConfig") or {}),
        tags=tags(_obj(body, "Tags") or {}),
    )
    return spec, _code_source(code, "Code.", "CreateFunction")


def _common(body: Mapping[str, Any]) -> dict[str, Any]:
    """The FunctionSpec fields zip and image functions share."""
    return {
        "memory_mb": _range(_default(_int(body, "MemorySize"), 128), "memorySize", 128, 10240),
        "timeout_s": _range(_default(_int(body, "Timeout"), 3), "timeout", 1, 900),
        "ephemeral_mb": _default(_ephemeral(body), 512),
        "environment": environment(_obj(body, "Environment") or {}),
        "description": _max_len(_str(body, "Description", "description") or "", "description", 256),
        "architectures": architectures(_str_list(body, "Architectures") or ["x86_64"]),
        "tracing_mode": tracing_mode(_obj(body, "TracingConfig") or {}),
        "logging": logging(_obj(body, "LoggingConfig") or {}),
        "tags": tags(_obj(body, "Tags") or {}),
    }


def _create_image_function(
    body: Mapping[str, Any], scope: Scope, name: str, role_arn: str, code: Mapping[str, Any]
) -> tuple[FunctionSpec, ImageSource]:
    rt = _str(body, "Runtime", "runtime")
    hd = _str(body, "Handler", "handler")
    if rt is not None or hd is not None or _str_list(body, "Layers"):
        raise InvalidParameterValueException(IMAGE_ONLY_FIELDS_MESSAGE)
    if code.get("ImageUri") is None:
        raise InvalidParameterValueException("Please provide a source for function code.")
    source = image_source(code["ImageUri"], "Code.ImageUri")
    config = image_config(_obj(body, "ImageConfig") or {})
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
    storage = _obj(body, "EphemeralStorage")
    if storage is None:
        return None
    size = _required(_int(storage, "Size"), "ephemeralStorage.size")
    return _range(size, "ephemeralStorage.size", 512, 10240)


def update_function_configuration(
    body: Mapping[str, Any], scope: Scope
) -> tuple[FunctionPatch, str | None]:
    """UpdateFunctionConfiguration: the patch and the RevisionId precondition, if any."""
    memory = _int(body, "MemorySize")
    timeout = _int(body, "Timeout")
    env = _obj(body, "Environment")
    layer_list = _str_list(body, "Layers")
    tracing = _obj(body, "TracingConfig")
    log_cfg = _obj(body, "LoggingConfig")
    rt = _str(body, "Runtime", "runtime")
    hd = _str(body, "Handler", "handler")
    rl = _str(body, "Role", "role")
    desc = _str(body, "Description", "description")
    img_cfg = _obj(body, "ImageConfig")
    patch = FunctionPatch(
        image_config=image_config(img_cfg) if img_cfg is not None else None,
        runtime=runtime(rt) if rt is not None else None,
        handler=handler(hd) if hd is not None else None,
        role=role(rl) if rl is not None else None,
        memory_mb=_range(memory, "memorySize", 128, 10240) if memory is not None else None,
        timeout_s=_range(timeout, "timeout", 1, 900) if timeout is not None else None,
        ephemeral_mb=_ephemeral(body),
        environment=environment(env) if env is not None else None,
        layers=layers(layer_list, scope) if layer_list is not None else None,
        description=_max_len(desc, "description", 256) if desc is not None else None,
        tracing_mode=tracing_mode(tracing) if tracing is not None else None,
        logging=logging(log_cfg) if log_cfg is not None else None,
    )
    return patch, _str(body, "RevisionId", "revisionId")


def update_function_code(body: Mapping[str, Any]) -> CodeUpdate:
    arch = _str_list(body, "Architectures")
    if body.get("ImageUri") is not None and body.get("ZipFile") is None:
        return CodeUpdate(
            zip_file=b"",
            image=image_source(body["ImageUri"], "ImageUri"),
            architectures=architectures(arch) if arch is not None else None,
            revision_id=_str(body, "RevisionId", "revisionId"),
            dry_run=_bool(body, "DryRun"),
            publish=_bool(body, "Publish"),
        )
    return CodeUpdate(
        zip_file=_code_source(body, "", "UpdateFunctionCode"),
        architectures=architectures(arch) if arch is not None else None,
        revision_id=_str(body, "RevisionId", "revisionId"),
        dry_run=_bool(body, "DryRun"),
        publish=_bool(body, "Publish"),
    )


def publish_layer_version(name: str, body: Mapping[str, Any]) -> tuple[LayerVersionSpec, bytes]:
    content = _required(_obj(body, "Content"), "content")
    runtimes = _str_list(body, "CompatibleRuntimes") or []
    if len(runtimes) > 15:
        raise _invalid(
            runtimes, "compatibleRuntimes", "Member must have length less than or equal to 15"
        )
    for i, rt in enumerate(runtimes, 1):
        _enum(rt, f"compatibleRuntimes.{i}.member", tuple(sorted(LAYER_RUNTIMES)))
    archs = _str_list(body, "CompatibleArchitectures") or []
    if len(archs) > 2:
        raise _invalid(
            archs, "compatibleArchitectures", "Member must have length less than or equal to 2"
        )
    for i, a in enumerate(archs, 1):
        _enum(a, f"compatibleArchitectures.{i}.member", ARCHITECTURES)
    license_info = _str(body, "LicenseInfo", "licenseInfo")
    spec = LayerVersionSpec(
        name=name,
        description=_max_len(_str(body, "Description", "description") or "", "description", 256),
        license_info=_max_len(license_info, "licenseInfo", 512) if license_info else None,
        compatible_runtimes=tuple(runtimes),
        compatible_architectures=tuple(archs),
    )
    return spec, _code_source(content, "Content.", "PublishLayerVersion")


def list_params(query: Mapping[str, str], max_items: int) -> ListParams:
    """``Marker`` and ``MaxItems`` of a listing (default page size 50)."""
    raw = query.get("MaxItems")
    limit = 50 if max_items >= 50 else max_items
    if raw is not None:
        try:
            limit = int(raw)
        except ValueError:
            raise _invalid(raw, "maxItems", "Member must be an integer") from None
        _range(limit, "maxItems", 1, max_items)
    marker = query.get("Marker")
    return ListParams(decode_marker(marker) if marker else None, limit)


def encode_marker(key: str) -> str:
    return base64.urlsafe_b64encode(key.encode()).decode()


def decode_marker(marker: str) -> str:
    try:
        return base64.urlsafe_b64decode(marker.encode()).decode()
    except (binascii.Error, ValueError):
        raise InvalidParameterValueException(f"Invalid marker: {marker}") from None


def function_version(query: Mapping[str, str]) -> None:
    value = query.get("FunctionVersion")
    if value is not None:
        _enum(value, "functionVersion", ("ALL",))


def compatible_filters(query: Mapping[str, str]) -> tuple[str | None, str | None]:
    rt = query.get("CompatibleRuntime")
    arch = query.get("CompatibleArchitecture")
    if rt is not None:
        _enum(rt, "compatibleRuntime", tuple(sorted(LAYER_RUNTIMES)))
    if arch is not None:
        _enum(arch, "compatibleArchitecture", ARCHITECTURES)
    return rt, arch


def layer_version_number(raw: str) -> int:
    try:
        return int(raw)
    except ValueError:
        raise _invalid(raw, "versionNumber", "Member must be a number") from None


def layer_version_arn_param(value: str | None, scope: Scope) -> LayerVersionRef | None:
    """``?Arn=`` of GetLayerVersionByArn; ``None`` when it names another region or account."""
    where, ref = parse_layer_version_arn(_required(value, "arn"))
    return ref if where == scope else None


# ------------------------------------------------------------------ invoke


def invoke_params(headers: Mapping[str, str]) -> InvokeParams:
    kind = _enum(
        headers.get("X-Amz-Invocation-Type") or "RequestResponse",
        "invocationType",
        INVOCATION_TYPES,
    )
    log_type = _enum(headers.get("X-Amz-Log-Type") or "None", "logType", LOG_TYPES)
    raw_ctx = headers.get("X-Amz-Client-Context")
    return InvokeParams(kind, log_type == "Tail", client_context(raw_ctx) if raw_ctx else None)


#: InvokeWithResponseStream's invocation types (no Event)
STREAM_INVOCATION_TYPES = ("RequestResponse", "DryRun")


def invoke_stream_params(headers: Mapping[str, str]) -> InvokeParams:
    """InvokeWithResponseStream's headers: Invoke's, without the ``Event`` type."""
    kind = _enum(
        headers.get("X-Amz-Invocation-Type") or "RequestResponse",
        "invocationType",
        STREAM_INVOCATION_TYPES,
    )
    log_type = _enum(headers.get("X-Amz-Log-Type") or "None", "logType", LOG_TYPES)
    raw_ctx = headers.get("X-Amz-Client-Context")
    return InvokeParams(kind, log_type == "Tail", client_context(raw_ctx) if raw_ctx else None)


def client_context(raw: str) -> str:
    """``X-Amz-Client-Context``: base64 of a JSON object, at most 3,583 bytes; returns the JSON."""
    if len(raw.encode()) > MAX_CLIENT_CONTEXT:
        raise InvalidParameterValueException(
            f"Client context must be {MAX_CLIENT_CONTEXT} bytes or less (base64-encoded)."
        )
    try:
        text = base64.b64decode(raw, validate=True).decode("utf-8")
        ok = isinstance(json.loads(text), dict)
    except (binascii.Error, ValueError, RecursionError):
        ok = False
    if not ok:
        raise InvalidRequestContentException(
            "Client context must be a valid Base64-encoded JSON object."
        )
    return text


def invoke_payload(raw: bytes, invocation_type: str) -> bytes:
    """The event bytes: within the size limit of the invocation type, JSON; empty means ``{}``."""
    limit = MAX_ASYNC_PAYLOAD if invocation_type == "Event" else MAX_SYNC_PAYLOAD
    if len(raw) > limit:
        raise RequestTooLargeException(
            f"{len(raw)} byte payload is too large for the {invocation_type} invocation type "
            f"(limit {limit} bytes)"
        )
    if not raw.strip():
        return b"{}"
    try:
        json.loads(raw)
    except RecursionError:
        raise InvalidRequestContentException(
            "Could not parse request body into json: Could not parse payload into json: "
            "nested too deeply"
        ) from None
    except (ValueError, UnicodeDecodeError) as e:
        raise InvalidRequestContentException(
            f"Could not parse request body into json: Could not parse payload into json: {e}"
        ) from e
    return raw


def version_marker(after: str | None) -> int | None:
    """The decoded marker of ListLayerVersions is the last version number shown."""
    if after is None:
        return None
    try:
        return int(after)
    except ValueError:
        raise InvalidParameterValueException(f"Invalid marker: {encode_marker(after)}") from None


# ------------------------------------------------------------------ versions and aliases

ALIAS_PATTERN = "(?!^[0-9]+$)([a-zA-Z0-9-_]+)"
_ALIAS_RE = re.compile(r"(?!^[0-9]+$)[a-zA-Z0-9_-]{1,128}")
VERSION_PATTERN = r"(\$LATEST|[0-9]+)"
_VERSION_RE = re.compile(r"\$LATEST|[0-9]{1,1024}")


def alias_name(value: object, field: str = "name") -> str:
    if value is not None and not isinstance(value, str):
        raise _bad_type("Name", "a string")
    name = _required(value, field)
    if not name:
        raise _invalid(name, field, "Member must have length greater than or equal to 1")
    _max_len(name, field, 128)
    if not _ALIAS_RE.fullmatch(name):
        raise _invalid(
            name, field, f"Member must satisfy regular expression pattern: {ALIAS_PATTERN}"
        )
    return name


def function_version_value(value: object, field: str = "functionVersion") -> str:
    if value is not None and not isinstance(value, str):
        raise _bad_type("FunctionVersion", "a string")
    version = _required(value, field)
    if not _VERSION_RE.fullmatch(version):
        raise _invalid(
            version, field, f"Member must satisfy regular expression pattern: {VERSION_PATTERN}"
        )
    return version


def routing_config(value: Mapping[str, Any], primary: str | None) -> dict[str, float]:
    """``RoutingConfig.AdditionalVersionWeights``: one other published version, 0.0-1.0."""
    weights = _obj(value, "AdditionalVersionWeights") or {}
    out: dict[str, float] = {}
    for version, weight in weights.items():
        if isinstance(weight, bool) or not isinstance(weight, int | float):
            raise _bad_type("AdditionalVersionWeights", "a map of numbers")
        if not isinstance(version, str) or not version.isdigit() or len(version) > 1024:
            raise _invalid(
                version,
                "routingConfig.additionalVersionWeights.key",
                "Member must satisfy regular expression pattern: [0-9]+",
            )
        if not 0.0 <= float(weight) <= 1.0:
            raise _invalid(
                weight,
                "routingConfig.additionalVersionWeights.value",
                "Member must have value between 0.0 and 1.0",
            )
        out[version] = float(weight)
    if len(out) > 1:
        raise InvalidParameterValueException(
            "Number of items in AdditionalVersionWeights cannot be greater than 1"
        )
    if out and primary == "$LATEST":
        raise InvalidParameterValueException(
            "$LATEST is not supported for an alias pointing to more than 1 version"
        )
    if primary is not None and primary in out:
        raise InvalidParameterValueException(
            f"Invalid function version {primary}. Function version {primary} is already "
            "included in routing configuration."
        )
    return out


def create_alias(body: Mapping[str, Any]) -> AliasSpec:
    name = alias_name(body.get("Name"))
    version = function_version_value(body.get("FunctionVersion"))
    desc = _max_len(_str(body, "Description", "description") or "", "description", 256)
    routing = _obj(body, "RoutingConfig")
    weights = routing_config(routing, version) if routing is not None else {}
    return AliasSpec(name, version, desc, weights)


def update_alias(body: Mapping[str, Any]) -> AliasPatch:
    raw_version = body.get("FunctionVersion")
    version = function_version_value(raw_version) if raw_version is not None else None
    desc = _str(body, "Description", "description")
    routing = _obj(body, "RoutingConfig")
    return AliasPatch(
        function_version=version,
        description=_max_len(desc, "description", 256) if desc is not None else None,
        weights=routing_config(routing, version) if routing is not None else None,
        revision_id=_str(body, "RevisionId", "revisionId"),
    )


@dataclass(frozen=True)
class PublishParams:
    code_sha256: str | None
    description: str | None
    revision_id: str | None


def publish_version(body: Mapping[str, Any]) -> PublishParams:
    desc = _str(body, "Description", "description")
    return PublishParams(
        code_sha256=_str(body, "CodeSha256", "codeSha256"),
        description=_max_len(desc, "description", 256) if desc is not None else None,
        revision_id=_str(body, "RevisionId", "revisionId"),
    )


def qualifier_param(query: Mapping[str, str], required: bool = False) -> str | None:
    value = query.get("Qualifier")
    if value is None:
        if required:
            raise _invalid(None, "qualifier", "Member must not be null")
        return None
    if not re.fullmatch(r"[a-zA-Z0-9$_-]{1,128}", value):
        raise _invalid(
            value,
            "qualifier",
            r"Member must satisfy regular expression pattern: (|[a-zA-Z0-9$_-]+)",
        )
    return value


# ------------------------------------------------------------------ asynchronous invocation


@dataclass(frozen=True)
class EventInvokeParams:
    max_retry_attempts: int | None
    max_event_age_s: int | None
    on_success: str | None  # "" clears (UpdateFunctionEventInvokeConfig)
    on_failure: str | None


def _destination(config: Mapping[str, Any] | None, key: str, scope: Scope) -> str | None:
    if config is None:
        return None
    target = _obj(config, key)
    if target is None:
        return None
    arn = _str(target, "Destination", "destination")
    if arn is None or arn == "":
        return "" if arn == "" else None
    _max_len(arn, f"destinationConfig.{key[0].lower()}{key[1:]}.destination", 350)
    m = re.fullmatch(
        r"arn:aws[a-zA-Z-]*:lambda:(?P<region>[a-z0-9-]+):(?P<account>\d{12}):function:"
        r"[a-zA-Z0-9_-]{1,64}(?::(?:\$LATEST|[a-zA-Z0-9_-]{1,128}))?",
        arn,
    )
    if m is None or (m["region"], m["account"]) != (scope.region, scope.account_id):
        raise InvalidParameterValueException(
            f"The destination ARN {arn} is invalid. This server delivers only to Lambda "
            f"functions in {scope.region} of account {scope.account_id}."
        )
    return arn


def event_invoke_config(body: Mapping[str, Any], scope: Scope) -> EventInvokeParams:
    retries = _int(body, "MaximumRetryAttempts")
    age = _int(body, "MaximumEventAgeInSeconds")
    dest = _obj(body, "DestinationConfig")
    return EventInvokeParams(
        max_retry_attempts=(
            _range(retries, "maximumRetryAttempts", 0, 2) if retries is not None else None
        ),
        max_event_age_s=(
            _range(age, "maximumEventAgeInSeconds", 60, 21600) if age is not None else None
        ),
        on_success=_destination(dest, "OnSuccess", scope),
        on_failure=_destination(dest, "OnFailure", scope),
    )


# ------------------------------------------------------------------ concurrency


def reserved_concurrency(body: Mapping[str, Any]) -> int:
    value = _required(_int(body, "ReservedConcurrentExecutions"), "reservedConcurrentExecutions")
    if value < 0:
        raise _invalid(
            value,
            "reservedConcurrentExecutions",
            "Member must have value greater than or equal to 0",
        )
    return value


def provisioned_concurrency(body: Mapping[str, Any]) -> int:
    value = _required(
        _int(body, "ProvisionedConcurrentExecutions"), "provisionedConcurrentExecutions"
    )
    if value < 1:
        raise _invalid(
            value,
            "provisionedConcurrentExecutions",
            "Member must have value greater than or equal to 1",
        )
    return value


# ------------------------------------------------------------------ tags


def tag_map(body: Mapping[str, Any]) -> dict[str, str]:
    tags_obj = _required(_obj(body, "Tags"), "tags")
    out = tags(tags_obj)
    for k, v in out.items():
        if not k:
            raise _invalid(k, "tags.key", "Member must have length greater than or equal to 1")
        _max_len(v, "tags.value", 256)
    return out


def tag_keys(values: list[str]) -> list[str]:
    if not values:
        raise _invalid(None, "tagKeys", "Member must not be null")
    for k in values:
        if not k:
            raise _invalid(
                k, "tagKeys.member", "Member must have length greater than or equal to 1"
            )
        _max_len(k, "tagKeys.member", 128)
    return values


def publish_flag(body: Mapping[str, Any]) -> bool:
    """``Publish`` of CreateFunction / UpdateFunctionCode."""
    return _bool(body, "Publish")
