"""The parameters of a function's configuration: name, runtime, handler, role, environment,
layers, architectures, tracing, logging, tags."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from lambdalet.api.arns import Scope, layer_version_arn, parse_layer_version_arn, validation_message
from lambdalet.api.validation.fields import (
    bad_type,
    invalid,
    is_utf8,
    max_len,
    one_of,
    opt_obj,
    opt_str,
    require,
)
from lambdalet.errors import InvalidParameterValueException, ValidationException
from lambdalet.runtimes.envvars import RESERVED_ENV_KEYS
from lambdalet.store.records import LayerKey, LoggingSettings

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


ENV_KEY_PATTERN = "[a-zA-Z]([a-zA-Z0-9_])+"

_ENV_KEY_RE = re.compile(ENV_KEY_PATTERN)

MAX_ENV_BYTES = 4096

MAX_LAYERS = 5

FUNCTION_NAME_RE = re.compile(r"[a-zA-Z0-9_-]+")

ROLE_PATTERN = r"arn:(aws[a-zA-Z-]*)?:iam::\d{12}:role/?[a-zA-Z_0-9+=,.@\-_/]+"

_ROLE_RE = re.compile(ROLE_PATTERN)

_HANDLER_RE = re.compile(r"[^\s]+")


def function_name(value: object) -> str:
    """``FunctionName`` of CreateFunction: a bare name, 1-64 of ``[a-zA-Z0-9-_]``."""
    if value is not None and not isinstance(value, str):
        raise bad_type("FunctionName", "a string")
    name = require(value, "functionName")
    if not name:
        raise invalid(name, "functionName", "Member must have length greater than or equal to 1")
    max_len(name, "functionName", 64)
    if not FUNCTION_NAME_RE.fullmatch(name):
        raise invalid(
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
    max_len(value, "handler", 128)
    if not _HANDLER_RE.fullmatch(value):
        raise invalid(value, "handler", r"Member must satisfy regular expression pattern: [^\s]+")
    return value


def role(value: str) -> str:
    if not _ROLE_RE.fullmatch(value):
        raise invalid(
            value, "role", f"Member must satisfy regular expression pattern: {ROLE_PATTERN}"
        )
    return value


def environment(value: Mapping[str, Any]) -> dict[str, str]:
    """``Environment``: reserved keys, key syntax, string values, 4 KB of compact JSON."""
    variables = opt_obj(value, "Variables") or {}
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
        raise bad_type("Environment.Variables", "a map of strings")
    with_nul = sorted(k for k, v in variables.items() if "\x00" in v)
    if with_nul:
        # a process environment cannot hold NUL: the function would never start
        raise InvalidParameterValueException(
            "Lambda was unable to configure your environment variables because the value of "
            f"{with_nul[0]} contains a NUL character, which an environment variable cannot hold."
        )
    unencodable = sorted(k for k, v in variables.items() if not is_utf8(v))
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
        raise invalid(values, "architectures", "Member must have length less than or equal to 1")
    return (one_of(values[0], "architectures.1.member", ARCHITECTURES),)


def tracing_mode(value: Mapping[str, Any]) -> str:
    return one_of(
        opt_str(value, "Mode", "Mode") or "PassThrough", "tracingConfig.mode", TRACING_MODES
    )


def logging(value: Mapping[str, Any]) -> LoggingSettings:
    fmt = one_of(
        opt_str(value, "LogFormat", "LogFormat") or "Text", "loggingConfig.logFormat", LOG_FORMATS
    )
    app = opt_str(value, "ApplicationLogLevel", "ApplicationLogLevel")
    system = opt_str(value, "SystemLogLevel", "SystemLogLevel")
    if app is not None:
        one_of(app, "loggingConfig.applicationLogLevel", APPLICATION_LOG_LEVELS)
    if system is not None:
        one_of(system, "loggingConfig.systemLogLevel", SYSTEM_LOG_LEVELS)
    if fmt == "JSON":
        app, system = app or "INFO", system or "INFO"
    else:
        app = system = None
    group = opt_str(value, "LogGroup", "LogGroup") or ""
    return LoggingSettings(fmt, app, system, max_len(group, "loggingConfig.logGroup", 512))


def tags(value: Mapping[str, Any]) -> dict[str, str]:
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        raise bad_type("Tags", "a map of strings")
    for k in value:
        max_len(k, "tags.key", 128)
    return dict(value)
