"""Function URL configurations: Create/UpdateFunctionUrlConfig's fields, CORS settings,
qualifiers, URL ids and hosts, the configuration's shape."""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from lambdalet.api.arns import validation_message
from lambdalet.errors import InvalidRequestContentException, ValidationException

AUTH_TYPES = ("NONE", "AWS_IAM")

INVOKE_MODES = ("BUFFERED", "RESPONSE_STREAM")

URL_PREFIX = "/lambda-url/"

_URL_ID_RE = re.compile(r"[a-z0-9]{32}")

#: ``<url-id>.lambda-url.<region>.<anything>``: host-based routing
_HOST_RE = re.compile(r"(?P<id>[a-z0-9]{32})\.lambda-url\.[a-z0-9-]+\..*")


@dataclass(frozen=True)
class UrlSettings:
    """A validated Create/UpdateFunctionUrlConfig body; None: not given."""

    auth_type: str | None
    cors: Mapping[str, Any] | None
    invoke_mode: str | None


def _invalid(value: object, name: str, constraint: str) -> ValidationException:
    return ValidationException(validation_message(value, name, constraint))


def _strings(cors: Mapping[str, Any], key: str, max_items: int, max_len: int) -> list[str]:
    values = cors.get(key)
    if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
        raise InvalidRequestContentException(
            f"Could not parse request body into json: Cors.{key} must be a list of strings"
        )
    field_name = f"cors.{key[0].lower()}{key[1:]}"
    if len(values) > max_items:
        raise _invalid(
            values, field_name, f"Member must have length less than or equal to {max_items}"
        )
    for v in values:
        if len(v) > max_len:
            raise _invalid(
                v, field_name, f"Member must have length less than or equal to {max_len}"
            )
    return values


def cors_config(value: object) -> dict[str, Any]:
    """A validated ``Cors`` object (AWS's limits)."""
    if not isinstance(value, dict):
        raise InvalidRequestContentException(
            "Could not parse request body into json: Cors must be an object"
        )
    out: dict[str, Any] = {}
    limits = {
        "AllowHeaders": (100, 1024),
        "AllowMethods": (6, 6),
        "AllowOrigins": (100, 253),
        "ExposeHeaders": (100, 1024),
    }
    for key, raw in value.items():
        if key == "AllowCredentials":
            if not isinstance(raw, bool):
                raise InvalidRequestContentException(
                    "Could not parse request body into json: Cors.AllowCredentials must be a "
                    "boolean"
                )
            out[key] = raw
        elif key == "MaxAge":
            if isinstance(raw, bool) or not isinstance(raw, int):
                raise InvalidRequestContentException(
                    "Could not parse request body into json: Cors.MaxAge must be an integer"
                )
            if not 0 <= raw <= 86400:
                raise _invalid(raw, "cors.maxAge", "Member must be between 0 and 86400")
            out[key] = raw
        elif key in limits:
            out[key] = _strings(value, key, *limits[key])
        else:
            raise InvalidRequestContentException(
                f"Could not parse request body into json: unknown field Cors.{key}"
            )
    return out


def url_settings(body: Mapping[str, Any], *, create: bool) -> UrlSettings:
    auth = body.get("AuthType")
    if auth is None and create:
        raise _invalid(None, "authType", "Member must not be null")
    if auth is not None and auth not in AUTH_TYPES:
        raise _invalid(
            auth, "authType", f"Member must satisfy enum value set: [{', '.join(AUTH_TYPES)}]"
        )
    mode = body.get("InvokeMode")
    if mode is not None and mode not in INVOKE_MODES:
        raise _invalid(
            mode,
            "invokeMode",
            f"Member must satisfy enum value set: [{', '.join(INVOKE_MODES)}]",
        )
    cors = body.get("Cors")
    return UrlSettings(auth, None if cors is None else cors_config(cors), mode)


def url_qualifier(value: str | None) -> str:
    """'' for the function itself (no qualifier or ``$LATEST``), else an alias name."""
    if value is None or value == "$LATEST":
        return ""
    if value.isdigit() or not re.fullmatch(r"[a-zA-Z0-9_-]{1,128}", value):
        raise _invalid(
            value,
            "qualifier",
            r"Member must satisfy regular expression pattern: ((?!^\d+$)^[0-9a-zA-Z-_]+$)",
        )
    return value


def is_url_id(value: str) -> bool:
    return _URL_ID_RE.fullmatch(value) is not None


def url_id_of_host(host: str) -> str | None:
    """The url id of a ``<url-id>.lambda-url.<region>.<anything>`` Host header."""
    m = _HOST_RE.fullmatch(host.lower())
    return None if m is None else m["id"]


def iso_time(epoch_s: float) -> str:
    """``2023-06-08T13:20:18.244654Z``, as CreationTime and LastModifiedTime read."""
    micros = round(epoch_s * 1_000_000)
    secs, frac = divmod(micros, 1_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs)) + f".{frac:06d}Z"


def url_config_shape(
    *,
    url: str,
    function_arn: str,
    auth_type: str,
    cors: Mapping[str, Any] | None,
    invoke_mode: str,
    creation_time: str,
    last_modified: str | None,
) -> dict[str, Any]:
    out: dict[str, Any] = {
        "FunctionUrl": url,
        "FunctionArn": function_arn,
        "AuthType": auth_type,
        "CreationTime": creation_time,
        "InvokeMode": invoke_mode,
    }
    if cors is not None:
        out["Cors"] = dict(cors)
    if last_modified is not None:
        out["LastModifiedTime"] = last_modified
    return out
