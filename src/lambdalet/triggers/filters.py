"""Lambda event filtering (``FilterCriteria``): EventBridge-style patterns over a record.  No I/O.

A pattern is a JSON object mirroring the record: every key it names must match (AND); a
list of values matches when any does (OR); an object descends into the record.  Value
matchers: literals (exact, numbers by value), ``null``, ``""``, ``{"prefix"}``,
``{"suffix"}``, ``{"equals-ignore-case"}``, ``{"anything-but": v | [..] | {"prefix"}}``,
``{"numeric": [op, n, (op, n)]}``, ``{"exists": bool}``.  For SQS the ``body`` key filters
the message body parsed as JSON; a pattern on the body of a message that is not a JSON
object drops the message (Lambda Developer Guide, "Lambda event filtering").
"""

from __future__ import annotations

import json
import operator
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from lambdalet.errors import InvalidParameterValueException

MAX_PATTERN_CHARS = 4096
MAX_FILTERS = 5
_MISSING = object()
_NUMERIC_OPS: dict[str, Callable[[float, float], bool]] = {
    "=": operator.eq,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}
_MATCHERS = ("prefix", "suffix", "equals-ignore-case", "anything-but", "numeric", "exists")


class InvalidPattern(InvalidParameterValueException):
    def __init__(self, detail: str) -> None:
        super().__init__(f"Invalid filter pattern definition. {detail}")


def parse_pattern(text: object) -> dict[str, Any]:
    """A ``Pattern`` string → its JSON object, checked (InvalidParameterValueException)."""
    if not isinstance(text, str) or len(text) > MAX_PATTERN_CHARS:
        raise InvalidPattern(f"A pattern is a JSON object of at most {MAX_PATTERN_CHARS} chars.")
    try:
        value = json.loads(text)
    except ValueError as e:
        raise InvalidPattern(f"Not JSON: {e}") from e
    if not isinstance(value, dict):
        raise InvalidPattern("The pattern must be a JSON object.")
    _check(value, "")
    return value


def _check(pattern: Mapping[str, Any], path: str) -> None:
    for key, value in pattern.items():
        where = f"{path}.{key}" if path else key
        if isinstance(value, dict):
            _check(value, where)
        elif isinstance(value, list):
            for item in value:
                if isinstance(item, dict):
                    _check_matcher(item, where)
                elif isinstance(item, list):
                    raise InvalidPattern(f"Nested arrays are not allowed at {where}.")
        else:
            raise InvalidPattern(f"The value at {where} must be an object or an array.")


def _check_matcher(matcher: Mapping[str, Any], where: str) -> None:
    if len(matcher) != 1 or next(iter(matcher)) not in _MATCHERS:
        raise InvalidPattern(f"Unrecognized match type at {where}: {json.dumps(matcher)}")
    kind, arg = next(iter(matcher.items()))
    if kind == "numeric":
        if not isinstance(arg, list) or len(arg) not in (2, 4):
            raise InvalidPattern(f"numeric at {where} takes [op, n] or [op, n, op, n].")
        for op, n in zip(arg[::2], arg[1::2], strict=True):
            if op not in _NUMERIC_OPS or isinstance(n, bool) or not isinstance(n, int | float):
                raise InvalidPattern(f"Bad numeric comparison at {where}.")
    elif kind == "exists" and not isinstance(arg, bool):
        raise InvalidPattern(f"exists at {where} takes true or false.")
    elif kind in ("prefix", "suffix", "equals-ignore-case") and not isinstance(arg, str):
        raise InvalidPattern(f"{kind} at {where} takes a string.")


def matches(pattern: Mapping[str, Any], record: Mapping[str, Any]) -> bool:
    """Whether ``record`` matches the (checked) ``pattern``."""
    for key, want in pattern.items():
        value = record.get(key, _MISSING) if isinstance(record, Mapping) else _MISSING
        if isinstance(want, dict):
            if not isinstance(value, Mapping) or not matches(want, value):
                return False
        elif not _matches_any(want, value):
            return False
    return True


def _matches_any(wanted: Sequence[Any], value: Any) -> bool:
    values = value if isinstance(value, list) else [value]
    for w in wanted:
        if isinstance(w, dict) and next(iter(w)) == "exists":
            if w["exists"] is (value is not _MISSING):
                return True
            continue
        if value is _MISSING:
            continue
        if any(_matches_one(w, v) for v in values):
            return True
    return False


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _matches_one(w: Any, v: Any) -> bool:
    if not isinstance(w, dict):
        if _is_number(w) and _is_number(v):
            return float(w) == float(v)
        return type(w) is type(v) and bool(w == v)
    kind, arg = next(iter(w.items()))
    if kind == "prefix":
        return isinstance(v, str) and v.startswith(arg)
    if kind == "suffix":
        return isinstance(v, str) and v.endswith(arg)
    if kind == "equals-ignore-case":
        return isinstance(v, str) and v.lower() == str(arg).lower()
    if kind == "numeric":
        if not _is_number(v):
            return False
        return all(
            _NUMERIC_OPS[op](float(v), float(n)) for op, n in zip(arg[::2], arg[1::2], strict=True)
        )
    if kind == "anything-but":
        if isinstance(arg, dict) and "prefix" in arg:
            return isinstance(v, str) and not v.startswith(arg["prefix"])
        excluded = arg if isinstance(arg, list) else [arg]
        return not any(_matches_one(x, v) for x in excluded)
    return False


def sqs_record_passes(patterns: Sequence[Mapping[str, Any]], record: Mapping[str, Any]) -> bool:
    """Whether an SQS record passes any of the filters (all pass when there are none).

    The record's ``body`` is matched as JSON when it is a JSON object; a pattern that names
    ``body`` as an object never matches a body that is not one (the message is dropped)."""
    if not patterns:
        return True
    body = record.get("body")
    parsed: Any = _MISSING
    if isinstance(body, str):
        try:
            parsed = json.loads(body)
        except ValueError:
            parsed = _MISSING
    for pattern in patterns:
        want_body = pattern.get("body", _MISSING)
        view = dict(record)
        if isinstance(want_body, dict):
            if not isinstance(parsed, dict):
                continue
            view["body"] = parsed
        if matches(pattern, view):
            return True
    return False
