"""``Conditions``: Fn::Equals, Fn::Not, Fn::And, Fn::Or and Condition, each evaluated once."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from lambdalet.ops.template.fields import scalar_str_field, str_field
from lambdalet.ops.template.intrinsics import CONDITION_FNS, ParameterResolver
from lambdalet.ops.template.plans import PlanError

if TYPE_CHECKING:
    from lambdalet.ops.template.document import Template


class Conditions:
    """Evaluates the Conditions section (each condition once; cycles are errors)."""

    def __init__(self, template: Template, doc: Any) -> None:
        if doc is None:
            doc = {}
        if not isinstance(doc, Mapping):
            raise PlanError("Conditions", "", "must be a mapping")
        self.doc = {str(k): v for k, v in doc.items()}
        self.resolver = ParameterResolver(template, {})
        self.values: dict[str, bool] = {}
        self.evaluating: list[str] = []

    def evaluate_all(self) -> dict[str, bool]:
        for name in self.doc:
            self.condition(name, "Conditions", name)
        return self.values

    def condition(self, name: str, lid: str, key: str) -> bool:
        if name in self.values:
            return self.values[name]
        if name not in self.doc:
            raise PlanError(lid, key, f"condition {name!r} is not declared in Conditions")
        if name in self.evaluating:
            cycle = " -> ".join([*self.evaluating[self.evaluating.index(name) :], name])
            raise PlanError("Conditions", name, f"refers to itself ({cycle})")
        self.evaluating.append(name)
        value = self.expr(self.doc[name], name)
        self.evaluating.pop()
        self.values[name] = value
        return value

    def expr(self, value: Any, name: str) -> bool:
        where = "Conditions"
        if not (isinstance(value, Mapping) and len(value) == 1):
            raise PlanError(where, name, f"must be one of {', '.join(CONDITION_FNS)}")
        ((fn, arg),) = value.items()
        if fn == "Condition":
            return self.condition(str_field(where, name, arg), where, name)
        if fn == "Fn::Equals":
            if not isinstance(arg, list) or len(arg) != 2:
                raise PlanError(where, name, "!Equals takes [value, value]")
            a, b = (self.resolver.resolve(v, where, name) for v in arg)
            return bool(_comparable(a) == _comparable(b))
        if fn in ("Fn::Not", "Fn::And", "Fn::Or"):
            short = fn.removeprefix("Fn::")
            if not isinstance(arg, list) or not arg:
                raise PlanError(where, name, f"!{short} takes a list of conditions")
            if fn == "Fn::Not":
                if len(arg) != 1:
                    raise PlanError(where, name, "!Not takes [one condition]")
                return not self.expr(arg[0], name)
            results = [self.expr(v, name) for v in arg]
            return all(results) if fn == "Fn::And" else any(results)
        raise PlanError(where, name, f"{fn} is not a condition function")


def _comparable(value: Any) -> Any:
    """Values as !Equals compares them: scalars as their text (1 equals '1')."""
    if isinstance(value, list):
        return [_comparable(v) for v in value]
    if isinstance(value, bool | int | float | str):
        return scalar_str_field("Conditions", "", value)
    return value
