"""Intrinsic functions in property values: Ref, Fn::Sub, Fn::GetAtt, Fn::FindInMap, Fn::If,
Fn::Join, Fn::Select and AWS::NoValue, with stand-ins for skipped resources."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from lambdalet.ops.standins import STAND_INS, Reference, StandIn, generated_name
from lambdalet.ops.template.fields import int_field, resource_props, scalar_str_field, str_field
from lambdalet.ops.template.plans import FUNCTION_TYPES, LAYER_TYPES, PlanError

if TYPE_CHECKING:
    from lambdalet.ops.template.document import Template


CONDITION_FNS = ("Fn::Equals", "Fn::Not", "Fn::And", "Fn::Or", "Condition")


class _NoValue:
    """What ``!Ref AWS::NoValue`` resolves to: the property (or list item) is left out."""

    def __repr__(self) -> str:
        return "AWS::NoValue"


NO_VALUE: Any = _NoValue()

_SUB_RE = re.compile(r"\$\{([^}!][^}]*)\}")


def is_plain_map(v: Any) -> bool:
    return isinstance(v, Mapping) and not (len(v) == 1 and _intrinsic_key(v) is not None)


def _intrinsic_key(v: Mapping[str, Any]) -> str | None:
    (key,) = v.keys()
    return key if key == "Ref" or str(key).startswith("Fn::") else None


class Resolver:
    """Evaluates Ref, Fn::Sub, Fn::GetAtt, Fn::Join, Fn::Select, Fn::If between resources."""

    def __init__(self, template: Template, layer_arns: Mapping[str, str]) -> None:
        self.t = template
        self.layer_arns = layer_arns
        self._naming: set[str] = set()  # skipped resources whose names are being resolved

    def prop(self, props: Mapping[str, Any], key: str, lid: str, default: Any = None) -> Any:
        """A resource property, resolved; ``default`` when absent or ``AWS::NoValue``."""
        value = self.resolve(props.get(key, default), lid, key)
        return default if value is NO_VALUE else value

    def resolve(self, value: Any, lid: str, key: str = "") -> Any:
        if isinstance(value, Mapping):
            if len(value) == 1 and _intrinsic_key(value) is not None:
                return self._intrinsic(value, lid, key)
            out = {
                k: self.resolve(v, lid, f"{key}.{k}" if key else str(k)) for k, v in value.items()
            }
            return {k: v for k, v in out.items() if v is not NO_VALUE}
        if isinstance(value, list):
            items = [self.resolve(v, lid, key) for v in value]
            return [v for v in items if v is not NO_VALUE]
        return value

    def _intrinsic(self, value: Mapping[str, Any], lid: str, key: str) -> Any:
        ((fn, arg),) = value.items()
        if fn == "Fn::If":
            if not isinstance(arg, list) or len(arg) != 3 or not isinstance(arg[0], str):
                raise PlanError(lid, key, "!If takes [condition name, value if true, if false]")
            if arg[0] not in self.t.conditions:
                raise PlanError(lid, key, f"!If {arg[0]}: no such condition in Conditions")
            return self.resolve(arg[1] if self.t.conditions[arg[0]] else arg[2], lid, key)
        if fn in CONDITION_FNS:
            raise PlanError(lid, key, f"{fn} is only allowed in Conditions")
        if fn == "Ref":
            return self.ref(str_field(lid, key, arg), lid, key)
        if fn == "Fn::GetAtt":
            if isinstance(arg, str):
                arg = arg.split(".", 1)
            if not isinstance(arg, list) or len(arg) != 2:
                raise PlanError(lid, key, f"!GetAtt {arg!r}: expected Resource.Attribute")
            return self.get_att(str(arg[0]), str(self.resolve(arg[1], lid, key)), lid, key)
        if fn == "Fn::Sub":
            variables: Mapping[str, Any] = {}
            if isinstance(arg, list):
                if len(arg) != 2 or not isinstance(arg[1], Mapping):
                    raise PlanError(lid, key, "!Sub takes a string or [string, {variables}]")
                arg, variables = arg[0], self.resolve(arg[1], lid, key)
            return self.sub(str_field(lid, key, arg), variables, lid, key)
        if fn == "Fn::Join":
            if not isinstance(arg, list) or len(arg) != 2:
                raise PlanError(lid, key, "!Join takes [delimiter, [values]]")
            items = self.resolve(arg[1], lid, key)
            if not isinstance(items, list):
                raise PlanError(lid, key, "!Join takes a list of values")
            return str(arg[0]).join(scalar_str_field(lid, key, v) for v in items)
        if fn == "Fn::FindInMap":
            return self.find_in_map(arg, lid, key)
        if fn == "Fn::Select":
            if not isinstance(arg, list) or len(arg) != 2:
                raise PlanError(lid, key, "!Select takes [index, [values]]")
            items = self.resolve(arg[1], lid, key)
            index = int_field(lid, key, self.resolve(arg[0], lid, key), minimum=0)
            if not isinstance(items, list) or index >= len(items):
                raise PlanError(lid, key, f"!Select index {index} is out of range")
            return items[index]
        raise PlanError(lid, key, f"intrinsic function {fn} is not supported")

    def ref(self, name: str, lid: str, key: str) -> Any:
        pseudo = {
            "AWS::Region": self.t.region,
            "AWS::AccountId": self.t.account_id,
            "AWS::StackName": self.t.stack_name,
            "AWS::Partition": "aws",
            "AWS::URLSuffix": "amazonaws.com",
        }
        if name == "AWS::NoValue":
            return NO_VALUE
        if name in pseudo:
            return pseudo[name]
        if name in self.t.parameters:
            return self.t.parameters[name]
        res = self._target(name, f"!Ref {name}", lid, key)
        if res["Type"] in FUNCTION_TYPES:
            return self.t.function_name(name)
        if res["Type"] in LAYER_TYPES:
            if name not in self.layer_arns:
                raise PlanError(lid, key, f"!Ref {name}: a layer version ARN is not known here")
            return self.layer_arns[name]
        stand_in = self._stand_in(name, res["Type"], f"!Ref {name}", lid, key)
        return self._noted(name, stand_in.ref, lid, key)

    def _target(self, name: str, what: str, lid: str, key: str) -> Mapping[str, Any]:
        """The resource a Ref / GetAtt names; an error if there is none or it is not created."""
        res = self.t.resources.get(name)
        if res is None:
            raise PlanError(lid, key, f"{what}: no such parameter or resource")
        if not self.t.created(name):
            cond = res["Condition"]
            raise PlanError(lid, key, f"{what}: {name} is not created (Condition {cond} is false)")
        return res

    def _stand_in(self, name: str, rtype: str, what: str, lid: str, key: str) -> StandIn:
        stand_in = STAND_INS.get(rtype)
        if stand_in is None:
            raise PlanError(lid, key, f"{what}: {name} ({rtype}) is not deployed by lambdalet")
        return stand_in

    def _noted(self, name: str, pattern: str, lid: str, key: str) -> str:
        """A skipped resource's stand-in value (``pattern`` over its name), recorded."""
        res = self.t.resources[name]
        stand_in = STAND_INS[res["Type"]]
        if name in self._naming:
            raise PlanError(name, stand_in.name_property, "refers to its own resource")
        props = resource_props(name, res)
        self._naming.add(name)
        try:
            given = self.prop(props, stand_in.name_property, name)
            fifo = self.prop(props, stand_in.fifo_property or "", name, default=False)
        finally:
            self._naming.discard(name)
        if given is None:
            fifo_on = scalar_str_field(name, stand_in.fifo_property or "", fifo).lower() == "true"
            physical = generated_name(stand_in, self.t.stack_name, name, fifo_on)
        else:
            physical = scalar_str_field(name, stand_in.name_property, given)
        value = pattern.format(name=physical, region=self.t.region, account=self.t.account_id)
        if self.t.references is not None:
            self.t.references.append(Reference(lid, key, name, res["Type"], value))
        return value

    def get_att(self, name: str, attr: str, lid: str, key: str) -> Any:
        what = f"!GetAtt {name}.{attr}"
        res = self._target(name, what, lid, key)
        if res["Type"] in FUNCTION_TYPES and attr == "Arn":
            return self.function_arn(self.t.function_name(name))
        if res["Type"] in LAYER_TYPES and attr in ("Arn", "LayerVersionArn"):
            return self.ref(name, lid, key)
        if res["Type"] in (*FUNCTION_TYPES, *LAYER_TYPES):
            raise PlanError(lid, key, f"{what}: attribute not supported")
        stand_in = self._stand_in(name, res["Type"], what, lid, key)
        if attr != stand_in.arn_attribute:
            raise PlanError(
                lid,
                key,
                f"{what}: {name} ({res['Type']}) is not deployed by lambdalet, "
                f"which knows only its {stand_in.arn_attribute}",
            )
        return self._noted(name, stand_in.arn, lid, key)

    def find_in_map(self, arg: Any, lid: str, key: str) -> Any:
        if not isinstance(arg, list) or len(arg) != 3:
            raise PlanError(
                lid, key, "!FindInMap takes [map name, top-level key, second-level key]"
            )
        map_name, top, second = (scalar_str_field(lid, key, self.resolve(a, lid, key)) for a in arg)
        what = f"!FindInMap [{map_name}, {top}, {second}]"
        if map_name not in self.t.mappings:
            known = ", ".join(self.t.mappings) or "none"
            raise PlanError(lid, key, f"{what}: no map {map_name!r} in Mappings (maps: {known})")
        level = self.t.mappings[map_name]
        if top not in level:
            raise PlanError(
                lid, key, f"{what}: map {map_name} has no key {top!r} (keys: {', '.join(level)})"
            )
        if second not in level[top]:
            keys = ", ".join(level[top])
            raise PlanError(
                lid, key, f"{what}: {map_name}.{top} has no key {second!r} (keys: {keys})"
            )
        return level[top][second]

    def function_arn(self, name: str) -> str:
        return f"arn:aws:lambda:{self.t.region}:{self.t.account_id}:function:{name}"

    def sub(self, text: str, variables: Mapping[str, Any], lid: str, key: str) -> str:
        def one(m: re.Match[str]) -> str:
            ref = m.group(1).strip()
            if ref in variables:
                return scalar_str_field(lid, key, variables[ref])
            if "." in ref and not ref.startswith("AWS::"):
                res, attr = ref.split(".", 1)
                return scalar_str_field(lid, key, self.get_att(res, attr, lid, key))
            value = self.ref(ref, lid, key)
            if value is NO_VALUE:
                raise PlanError(lid, key, "!Sub cannot use AWS::NoValue")
            return scalar_str_field(lid, key, value)

        return _SUB_RE.sub(one, text).replace("${!", "${")


class ParameterResolver(Resolver):
    """Conditions may refer to parameters and pseudo parameters, not to resources."""

    def _target(self, name: str, what: str, lid: str, key: str) -> Mapping[str, Any]:
        raise PlanError(lid, key, f"{what}: Conditions can refer only to parameters")
