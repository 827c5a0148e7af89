"""``Parameters`` (declared defaults and given overrides), ``Mappings`` and ``Globals``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from lambdalet.ops.template.fields import scalar_str_field
from lambdalet.ops.template.intrinsics import is_plain_map
from lambdalet.ops.template.plans import PlanError


def parse_mappings(doc: Any) -> dict[str, dict[str, dict[str, Any]]]:
    """The Mappings section: map name -> top-level key -> second-level key -> value."""
    if doc is None:
        return {}
    if not isinstance(doc, Mapping):
        raise PlanError("Mappings", "", "must be a mapping of maps")
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for name, top in doc.items():
        if not isinstance(top, Mapping) or not top:
            raise PlanError("Mappings", str(name), "must map keys to mappings of values")
        out[str(name)] = {}
        for key, second in top.items():
            if not isinstance(second, Mapping) or not second:
                raise PlanError(
                    "Mappings", f"{name}.{key}", "must be a mapping of second-level keys to values"
                )
            out[str(name)][str(key)] = {str(k): v for k, v in second.items()}
    return out


def parse_parameters(declared: Any, given: Mapping[str, str]) -> dict[str, Any]:
    """Parameter values: the given ones, else the Default; checked against Type and AllowedValues.

    ``CommaDelimitedList`` and ``List<...>`` parameters are lists of strings.
    """
    if declared is None:
        declared = {}
    if not isinstance(declared, Mapping):
        raise PlanError("Parameters", "", "must be a mapping")
    unknown = [k for k in given if k not in declared]
    if unknown:
        raise PlanError("Parameters", unknown[0], "is not declared in the template")
    out: dict[str, Any] = {}
    for pname, pdef in declared.items():
        pname = str(pname)
        if not isinstance(pdef, Mapping):
            raise PlanError(pname, "", "a parameter must be a mapping with a Type")
        if pname in given:
            raw: Any = given[pname]
        elif "Default" in pdef:
            raw = pdef["Default"]
        else:
            raise PlanError(pname, "Default", "parameter has no Default and no value given")
        ptype = str(pdef.get("Type", "String"))
        if isinstance(raw, list):
            raw = ",".join(scalar_str_field(pname, "Default", v) for v in raw)
        text = scalar_str_field(pname, "Default" if pname not in given else "value", raw)
        if ptype == "CommaDelimitedList" or ptype.startswith("List<"):
            value: Any = [v.strip() for v in text.split(",")] if text else []
            items = value
        else:
            value, items = text, [text]
        if ptype in ("Number", "List<Number>"):
            for item in items:
                try:
                    float(item)
                except ValueError:
                    raise PlanError(pname, "Type", f"{item!r} is not a Number") from None
        allowed = pdef.get("AllowedValues")
        if isinstance(allowed, list):
            shown = [scalar_str_field(pname, "AllowedValues", a) for a in allowed]
            for item in items:
                if item not in shown:
                    raise PlanError(
                        pname, "AllowedValues", f"{item!r} is not one of {', '.join(shown)}"
                    )
        out[pname] = value
    return out


def merge_globals(globals_: Mapping[str, Any], props: Mapping[str, Any]) -> dict[str, Any]:
    """SAM's Globals rules: maps merge (resource wins), lists concatenate, scalars override."""
    out: dict[str, Any] = dict(globals_)
    for key, value in props.items():
        if key not in out:
            out[key] = value
            continue
        g = out[key]
        if is_plain_map(g) and is_plain_map(value):
            out[key] = merge_globals(g, value)
        elif isinstance(g, list) and isinstance(value, list):
            out[key] = [*g, *value]
        else:
            out[key] = value
    return out
