"""Typed reads of JSON fields and AWS's constraint errors; request bodies, list paging."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from lambdalet.api.arns import validation_message
from lambdalet.errors import (
    InvalidParameterValueException,
    InvalidRequestContentException,
    RequestEntityTooLargeException,
    ValidationException,
)
from lambdalet.store.records import MAX_ZIPPED_BYTES

#: Request bodies carrying a zip: base64 of 50 MB, as AWS states the limit.
MAX_ZIP_REQUEST = 69_905_067


T = TypeVar("T")


@dataclass(frozen=True)
class ListParams:
    after: str | None
    limit: int


def invalid(value: object, field: str, constraint: str) -> ValidationException:
    return ValidationException(validation_message(value, field, constraint))


def bad_type(field: str, expected: str) -> InvalidRequestContentException:
    return InvalidRequestContentException(
        f"Could not parse request body into json: {field} must be {expected}"
    )


def opt_str(body: Mapping[str, Any], key: str, field: str) -> str | None:
    v = body.get(key)
    if v is None:
        return None
    if not isinstance(v, str):
        raise bad_type(key, "a string")
    return v


def opt_int(body: Mapping[str, Any], key: str) -> int | None:
    v = body.get(key)
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, int):
        raise bad_type(key, "an integer")
    return v


def flag(body: Mapping[str, Any], key: str) -> bool:
    v = body.get(key, False)
    if not isinstance(v, bool):
        raise bad_type(key, "a boolean")
    return v


def opt_obj(body: Mapping[str, Any], key: str) -> Mapping[str, Any] | None:
    v = body.get(key)
    if v is None:
        return None
    if not isinstance(v, dict):
        raise bad_type(key, "an object")
    return v


def opt_str_list(body: Mapping[str, Any], key: str) -> list[str] | None:
    v = body.get(key)
    if v is None:
        return None
    if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
        raise bad_type(key, "a list of strings")
    return v


def in_range(value: int, field: str, low: int, high: int) -> int:
    if value < low:
        raise invalid(value, field, f"Member must have value greater than or equal to {low}")
    if value > high:
        raise invalid(value, field, f"Member must have value less than or equal to {high}")
    return value


def max_len(value: str, field: str, high: int) -> str:
    if len(value) > high:
        raise invalid(value, field, f"Member must have length less than or equal to {high}")
    return value


def one_of(value: str, field: str, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise invalid(value, field, f"Member must satisfy enum value set: [{', '.join(allowed)}]")
    return value


def require(value: T | None, field: str) -> T:
    if value is None:
        raise invalid(None, field, "Member must not be null")
    return value


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
        raise bad_type(field, "a base64 string")
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


def is_utf8(text: str) -> bool:
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


def list_params(query: Mapping[str, str], max_items: int) -> ListParams:
    """``Marker`` and ``MaxItems`` of a listing (default page size 50)."""
    raw = query.get("MaxItems")
    limit = 50 if max_items >= 50 else max_items
    if raw is not None:
        try:
            limit = int(raw)
        except ValueError:
            raise invalid(raw, "maxItems", "Member must be an integer") from None
        in_range(limit, "maxItems", 1, max_items)
    marker = query.get("Marker")
    return ListParams(decode_marker(marker) if marker else None, limit)


def encode_marker(key: str) -> str:
    return base64.urlsafe_b64encode(key.encode()).decode()


def decode_marker(marker: str) -> str:
    try:
        return base64.urlsafe_b64decode(marker.encode()).decode()
    except (binascii.Error, ValueError):
        raise InvalidParameterValueException(f"Invalid marker: {marker}") from None


def publish_flag(body: Mapping[str, Any]) -> bool:
    """``Publish`` of CreateFunction / UpdateFunctionCode."""
    return flag(body, "Publish")
