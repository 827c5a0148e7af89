"""Deployment plans from a SAM / CloudFormation template or a function folder's config.  No I/O.

A template is read by :mod:`lambdalet.ops.loader` into plain dicts (intrinsic tags become
``{"Ref": ...}``, ``{"Fn::Sub": ...}``, ``{"Fn::GetAtt": [...]}``); this module turns it into
:class:`LayerPlan` and :class:`FunctionPlan` records.  Layers are planned first: a layer's
version ARN is only known once it is published, so functions are planned with the ARNs of the
published layers (``Template.functions(layer_arns)``).

``Parameters`` (defaults, overrides), ``Mappings`` (``Fn::FindInMap``), ``Conditions``
(``Fn::Equals``, ``Fn::Not``, ``Fn::And``, ``Fn::Or``, ``Condition``) and ``Fn::If`` /
``AWS::NoValue`` are evaluated here too; a resource whose ``Condition`` is false is left out,
and resources of types lambdalet does not deploy are listed by :meth:`Template.skipped`.  A
``Ref`` / ``GetAtt`` / ``${X}`` to a skipped bucket, table, queue or topic gets the value
CloudFormation would give (see :mod:`lambdalet.ops.standins`), and each such use is listed by
:meth:`Template.skipped_references`.

Every error is a :class:`PlanError` naming the resource and the field.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import PurePath
from typing import Any

from lambdalet.ops.stack import physical_name
from lambdalet.ops.standins import STAND_INS, Reference, StandIn, generated_name

DEFAULT_ROLE = "arn:aws:iam::123456789012:role/lambdalet"
DEFAULT_REGION = "us-east-1"
DEFAULT_ACCOUNT = "123456789012"

SERVERLESS_FUNCTION = "AWS::Serverless::Function"
LAMBDA_FUNCTION = "AWS::Lambda::Function"
SERVERLESS_LAYER = "AWS::Serverless::LayerVersion"
LAMBDA_LAYER = "AWS::Lambda::LayerVersion"
FUNCTION_TYPES = (SERVERLESS_FUNCTION, LAMBDA_FUNCTION)
LAYER_TYPES = (SERVERLESS_LAYER, LAMBDA_LAYER)

_NAME_RE = re.compile(r"[a-zA-Z0-9_-]{1,64}")
_STACK_RE = re.compile(r"[a-zA-Z][-a-zA-Z0-9]{0,127}")
_CONDITION_FNS = ("Fn::Equals", "Fn::Not", "Fn::And", "Fn::Or", "Condition")


class _NoValue:
    """What ``!Ref AWS::NoValue`` resolves to: the property (or list item) is left out."""

    def __repr__(self) -> str:
        return "AWS::NoValue"


NO_VALUE: Any = _NoValue()
_SUB_RE = re.compile(r"\$\{([^}!][^}]*)\}")


class PlanError(Exception):
    """A template or config that cannot be deployed; names the resource and the field."""

    def __init__(self, resource: str, field_name: str, message: str) -> None:
        self.resource = resource
        self.field = field_name
        self.message = message
        where = f"{resource}.{field_name}" if field_name else resource
        super().__init__(f"{where}: {message}")


@dataclass(frozen=True)
class LayerPlan:
    logical_id: str
    name: str
    content_dir: PurePath
    compatible_runtimes: tuple[str, ...] = ()
    description: str = ""
    #: ``Metadata.BuildMethod`` (``python3.12``, ``nodejs22.x``, ...): build as ``sam build``
    build_method: str | None = None


@dataclass(frozen=True)
class DockerBuild:
    """A SAM image function's ``Metadata``: how ``sam build`` would build its image."""

    dockerfile: str  # relative to the context
    context: PurePath
    tag: str  # DockerTag (default "latest")
    build_args: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class FunctionPlan:
    logical_id: str
    name: str
    runtime: str
    handler: str
    code_dir: PurePath | None = None
    inline_code: str | None = None
    memory_mb: int = 128
    timeout_s: int = 3
    environment: Mapping[str, str] = field(default_factory=dict)
    layers: tuple[str, ...] = ()  # layer version ARNs
    description: str = ""
    role: str = DEFAULT_ROLE
    reserved_concurrency: int | None = None
    alias: str | None = None
    provisioned_concurrency: int | None = None
    package_type: str = "Zip"
    image_uri: str | None = None  # an image in a registry (no Metadata to build from)
    image_config: Mapping[str, Any] | None = None
    docker: DockerBuild | None = None  # build the image from the function's Metadata
    #: ``Metadata.BuildMethod`` when the template sets one (``makefile``, ``esbuild``, ...)
    build_method: str | None = None

    def configuration(self) -> dict[str, Any]:
        """The fields of CreateFunction / UpdateFunctionConfiguration this plan sets."""
        if self.package_type == "Image":
            out: dict[str, Any] = {
                "MemorySize": self.memory_mb,
                "Timeout": self.timeout_s,
                "Environment": {"Variables": dict(self.environment)},
                "Description": self.description,
                "Role": self.role,
            }
            if self.image_config:
                out["ImageConfig"] = dict(self.image_config)
            return out
        return {
            "Runtime": self.runtime,
            "Handler": self.handler,
            "MemorySize": self.memory_mb,
            "Timeout": self.timeout_s,
            "Environment": {"Variables": dict(self.environment)},
            "Layers": list(self.layers),
            "Description": self.description,
            "Role": self.role,
        }


# --------------------------------------------------------------------------- templates


@dataclass(frozen=True)
class Template:
    """A parsed template: its resources, with Globals merged into SAM functions."""

    base_dir: PurePath
    resources: Mapping[str, Mapping[str, Any]]
    parameters: Mapping[str, Any]
    stack_name: str
    region: str = DEFAULT_REGION
    account_id: str = DEFAULT_ACCOUNT
    conditions: Mapping[str, bool] = field(default_factory=dict)
    mappings: Mapping[str, Mapping[str, Mapping[str, Any]]] = field(default_factory=dict)
    #: when a list, the resolver appends every use of a skipped resource's stand-in value
    references: list[Reference] | None = field(default=None, compare=False, repr=False)
    #: Globals sections other than ``Function`` (``Api``, ``HttpApi``, ...): not merged
    other_globals: tuple[str, ...] = ()

    def created(self, lid: str) -> bool:
        """Whether the resource is created: it has no Condition, or its Condition is true."""
        cond = self.resources[lid].get("Condition")
        return cond is None or self.conditions[cond]

    def _ids(self, types: tuple[str, ...]) -> list[str]:
        return [
            lid for lid, r in self.resources.items() if r["Type"] in types and self.created(lid)
        ]

    def layer_ids(self) -> list[str]:
        return self._ids(LAYER_TYPES)

    def function_ids(self) -> list[str]:
        return self._ids(FUNCTION_TYPES)

    def skipped(self) -> list[tuple[str, str]]:
        """(logical ID, Type) of the created resources whose types lambdalet does not deploy."""
        return [
            (lid, r["Type"])
            for lid, r in self.resources.items()
            if r["Type"] not in (*FUNCTION_TYPES, *LAYER_TYPES) and self.created(lid)
        ]

    def layers(self) -> list[LayerPlan]:
        return [self._layer(lid) for lid in self.layer_ids()]

    def skipped_references(self) -> list[Reference]:
        """Each property of a planned layer or function that refers to a skipped resource,
        once, with the value it gets (layer ARNs stand in as version 1: not known yet)."""
        t = replace(self, references=[])
        t.layers()
        t.functions(
            {
                lid: f"arn:aws:lambda:{self.region}:{self.account_id}:layer:{t.layer_name(lid)}:1"
                for lid in t.layer_ids()
            }
        )
        assert t.references is not None
        unique: dict[tuple[str, str, str], Reference] = {}
        for ref in t.references:
            unique.setdefault((ref.resource, ref.field, ref.target), ref)
        return list(unique.values())

    def functions(self, layer_arns: Mapping[str, str]) -> list[FunctionPlan]:
        """Plan every function; ``layer_arns`` maps layer logical IDs to published ARNs."""
        missing = [lid for lid in self.layer_ids() if lid not in layer_arns]
        resolver = _Resolver(self, {lid: layer_arns.get(lid, "") for lid in self.layer_ids()})
        plans = [self._function(lid, resolver) for lid in self.function_ids()]
        for p in plans:
            for arn in p.layers:
                if arn == "":
                    raise PlanError(p.logical_id, "Layers", f"layers {missing} are not published")
        names = [p.name for p in plans]
        for p in plans:
            if names.count(p.name) > 1:
                raise PlanError(p.logical_id, "FunctionName", f"{p.name!r} is used twice")
        return plans

    # ------------------------------------------------------------------ layers

    def layer_name(self, lid: str) -> str:
        props = _props(lid, self.resources[lid])
        name = _Resolver(self, {}).prop(props, "LayerName", lid, default=lid)
        return _check_name(lid, "LayerName", name)

    def _layer(self, lid: str) -> LayerPlan:
        res = self.resources[lid]
        props = _props(lid, res)
        r = _Resolver(self, {})
        key = "ContentUri" if res["Type"] == SERVERLESS_LAYER else "Content"
        runtimes = r.prop(props, "CompatibleRuntimes", lid, default=[])
        return LayerPlan(
            logical_id=lid,
            name=self.layer_name(lid),
            content_dir=self._local_dir(lid, key, r.prop(props, key, lid)),
            compatible_runtimes=tuple(_str_list(lid, "CompatibleRuntimes", runtimes)),
            description=_str(lid, "Description", r.prop(props, "Description", lid, default="")),
            build_method=_build_method(lid, res),
        )

    # ------------------------------------------------------------------ functions

    def function_name(self, lid: str) -> str:
        props = _props(lid, self.resources[lid])
        # no FunctionName: CloudFormation's <stack>-<LogicalId>-<SUFFIX> (ops/stack.py)
        default = physical_name(self.stack_name, lid)
        name = _Resolver(self, {}).prop(props, "FunctionName", lid, default=default)
        return _check_name(lid, "FunctionName", name)

    def _function(self, lid: str, r: _Resolver) -> FunctionPlan:
        res = self.resources[lid]
        props = _props(lid, res)

        def get(key: str, default: Any = None) -> Any:
            return r.prop(props, key, lid, default=default)

        inline: str | None = None
        code_dir: PurePath | None = None
        image = get("PackageType", "Zip") == "Image"
        if image:
            pass  # no code folder: the image is built from Metadata or named by ImageUri
        elif res["Type"] == SERVERLESS_FUNCTION:
            if "InlineCode" in props:
                inline = _str(lid, "InlineCode", get("InlineCode"))
            else:
                code_dir = self._local_dir(lid, "CodeUri", get("CodeUri"))
        else:
            code = get("Code")
            if not isinstance(code, Mapping) and not isinstance(code, str):
                raise PlanError(lid, "Code", "must be a local path or {ZipFile: ...}")
            if isinstance(code, Mapping) and "ZipFile" in code:
                inline = _str(lid, "Code.ZipFile", code["ZipFile"])
            else:
                code_dir = self._local_dir(lid, "Code", code)
        env = get("Environment", {})
        if not isinstance(env, Mapping):
            raise PlanError(lid, "Environment", "must be a mapping with Variables")
        variables = env.get("Variables", {}) or {}
        if not isinstance(variables, Mapping):
            raise PlanError(lid, "Environment.Variables", "must be a mapping")
        env_vars = {
            str(k): _scalar_str(lid, f"Environment.Variables.{k}", v) for k, v in variables.items()
        }
        layers = _str_list(lid, "Layers", get("Layers", []))
        reserved = get("ReservedConcurrentExecutions")
        alias = get("AutoPublishAlias")
        pc = get("ProvisionedConcurrencyConfig")
        provisioned: int | None = None
        if pc is not None:
            if not isinstance(pc, Mapping) or "ProvisionedConcurrentExecutions" not in pc:
                raise PlanError(
                    lid,
                    "ProvisionedConcurrencyConfig",
                    "must be a mapping with ProvisionedConcurrentExecutions",
                )
            provisioned = _int(
                lid,
                "ProvisionedConcurrencyConfig.ProvisionedConcurrentExecutions",
                pc["ProvisionedConcurrentExecutions"],
                minimum=1,
            )
            if alias is None:
                raise PlanError(
                    lid, "ProvisionedConcurrencyConfig", "needs AutoPublishAlias to be set"
                )
        role = get("Role", DEFAULT_ROLE)
        image_fields = self._image_fields(lid, r, get) if image else {}
        return FunctionPlan(
            logical_id=lid,
            name=self.function_name(lid),
            runtime=""
            if image
            else _str(lid, "Runtime", _required(lid, "Runtime", get("Runtime"))),
            handler=""
            if image
            else _str(lid, "Handler", _required(lid, "Handler", get("Handler"))),
            code_dir=code_dir,
            inline_code=inline,
            memory_mb=_int(lid, "MemorySize", get("MemorySize", 128), minimum=128, maximum=10240),
            timeout_s=_int(lid, "Timeout", get("Timeout", 3), minimum=1, maximum=900),
            environment=env_vars,
            layers=tuple(layers),
            description=_str(lid, "Description", get("Description", "")),
            role=role if isinstance(role, str) and role.startswith("arn:") else DEFAULT_ROLE,
            reserved_concurrency=(
                None
                if reserved is None
                else _int(lid, "ReservedConcurrentExecutions", reserved, minimum=0)
            ),
            alias=None if alias is None else _check_name(lid, "AutoPublishAlias", alias),
            provisioned_concurrency=provisioned,
            **image_fields,
            build_method=_build_method(lid, res),
        )

    def _image_fields(self, lid: str, r: _Resolver, get: Callable[..., Any]) -> dict[str, Any]:
        """A ``PackageType: Image`` function: built from its ``Metadata`` (Dockerfile,
        DockerContext, DockerTag, DockerBuildArgs) as ``sam build`` does, or the
        ``ImageUri`` (``Code.ImageUri``) it names.  Layers are refused, as by Lambda."""
        if get("Layers"):
            raise PlanError(lid, "Layers", "are not supported for PackageType Image")
        config = get("ImageConfig")
        if config is not None and not isinstance(config, Mapping):
            raise PlanError(lid, "ImageConfig", "must be a mapping")
        out: dict[str, Any] = {"package_type": "Image", "image_config": config}
        meta = self.resources[lid].get("Metadata") or {}
        if not isinstance(meta, Mapping):
            raise PlanError(lid, "Metadata", "must be a mapping")
        if "Dockerfile" in meta or "DockerContext" in meta:
            meta = {k: r.resolve(v, lid, f"Metadata.{k}") for k, v in meta.items()}
            args = meta.get("DockerBuildArgs") or {}
            if not isinstance(args, Mapping):
                raise PlanError(lid, "Metadata.DockerBuildArgs", "must be a mapping")
            out["docker"] = DockerBuild(
                dockerfile=_str(lid, "Metadata.Dockerfile", meta.get("Dockerfile", "Dockerfile")),
                context=self._local_dir(lid, "Metadata.DockerContext", meta.get("DockerContext")),
                tag=_scalar_str(lid, "Metadata.DockerTag", meta.get("DockerTag", "latest")),
                build_args={
                    str(k): _scalar_str(lid, f"Metadata.DockerBuildArgs.{k}", v)
                    for k, v in args.items()
                },
            )
            return out
        uri = get("ImageUri")
        code = get("Code")
        if uri is None and isinstance(code, Mapping):
            uri = code.get("ImageUri")
        if uri is None:
            raise PlanError(
                lid,
                "ImageUri",
                "is required for PackageType Image (or Metadata with Dockerfile and "
                "DockerContext to build it)",
            )
        out["image_uri"] = _str(lid, "ImageUri", uri)
        return out

    def _local_dir(self, lid: str, key: str, value: Any) -> PurePath:
        if value is None:
            raise PlanError(lid, key, "is required (a folder next to the template)")
        if not isinstance(value, str):
            raise PlanError(lid, key, "must be a local folder; S3 locations are not supported")
        if value.startswith("s3://"):
            raise PlanError(lid, key, f"{value!r}: S3 locations are not supported, use a folder")
        return self.base_dir / value


def _build_method(lid: str, res: Mapping[str, Any]) -> str | None:
    """The resource's ``Metadata.BuildMethod`` (as ``sam build`` reads it), or None."""
    meta = res.get("Metadata") or {}
    if not isinstance(meta, Mapping):
        raise PlanError(lid, "Metadata", "must be a mapping")
    method = meta.get("BuildMethod")
    if method is None:
        return None
    return _str(lid, "Metadata.BuildMethod", method)


def load_template(
    doc: Any,
    base_dir: PurePath,
    *,
    stack_name: str = "lambdalet",
    parameters: Mapping[str, str] | None = None,
    region: str = DEFAULT_REGION,
    account_id: str = DEFAULT_ACCOUNT,
) -> Template:
    """Check a template's shape, merge ``Globals.Function`` into SAM functions."""
    if not isinstance(doc, Mapping):
        raise PlanError("Template", "", "is not a mapping")
    resources = doc.get("Resources")
    if not isinstance(resources, Mapping) or not resources:
        raise PlanError("Template", "Resources", "is missing or empty")
    globals_doc = doc.get("Globals") or {}
    if not isinstance(globals_doc, Mapping):
        raise PlanError("Globals", "", "must be a mapping")
    fn_globals = globals_doc.get("Function") or {}
    if not isinstance(fn_globals, Mapping):
        raise PlanError("Globals", "Function", "must be a mapping")
    merged: dict[str, Mapping[str, Any]] = {}
    for lid, res in resources.items():
        if not isinstance(res, Mapping) or not isinstance(res.get("Type"), str):
            raise PlanError(str(lid), "Type", "every resource needs a Type")
        if res["Type"] == SERVERLESS_FUNCTION:
            props = _props(str(lid), res)
            merged[str(lid)] = {**res, "Properties": merge_globals(fn_globals, props)}
        else:
            merged[str(lid)] = res
    if not _STACK_RE.fullmatch(stack_name):
        raise PlanError(
            "--stack-name",
            "",
            f"{stack_name!r} is not a valid stack name (a letter, then letters, digits and -)",
        )
    template = Template(
        base_dir=base_dir,
        resources=merged,
        parameters=_parameters(doc.get("Parameters"), parameters or {}),
        stack_name=stack_name,
        region=region,
        account_id=account_id,
        mappings=_mappings(doc.get("Mappings")),
        other_globals=tuple(sorted(str(k) for k in globals_doc if k != "Function")),
    )
    conditions = _Conditions(template, doc.get("Conditions")).evaluate_all()
    for lid, res in merged.items():
        cond = res.get("Condition")
        if cond is not None and (not isinstance(cond, str) or cond not in conditions):
            raise PlanError(lid, "Condition", f"{cond!r} is not declared in Conditions")
    return replace(template, conditions=conditions)


def _mappings(doc: Any) -> dict[str, dict[str, dict[str, Any]]]:
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


def _parameters(declared: Any, given: Mapping[str, str]) -> dict[str, Any]:
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
            raw = ",".join(_scalar_str(pname, "Default", v) for v in raw)
        text = _scalar_str(pname, "Default" if pname not in given else "value", raw)
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
            shown = [_scalar_str(pname, "AllowedValues", a) for a in allowed]
            for item in items:
                if item not in shown:
                    raise PlanError(
                        pname, "AllowedValues", f"{item!r} is not one of {', '.join(shown)}"
                    )
        out[pname] = value
    return out


class _Conditions:
    """Evaluates the Conditions section (each condition once; cycles are errors)."""

    def __init__(self, template: Template, doc: Any) -> None:
        if doc is None:
            doc = {}
        if not isinstance(doc, Mapping):
            raise PlanError("Conditions", "", "must be a mapping")
        self.doc = {str(k): v for k, v in doc.items()}
        self.resolver = _ParameterResolver(template, {})
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
            raise PlanError(where, name, f"must be one of {', '.join(_CONDITION_FNS)}")
        ((fn, arg),) = value.items()
        if fn == "Condition":
            return self.condition(_str(where, name, arg), where, name)
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
        return _scalar_str("Conditions", "", value)
    return value


def merge_globals(globals_: Mapping[str, Any], props: Mapping[str, Any]) -> dict[str, Any]:
    """SAM's Globals rules: maps merge (resource wins), lists concatenate, scalars override."""
    out: dict[str, Any] = dict(globals_)
    for key, value in props.items():
        if key not in out:
            out[key] = value
            continue
        g = out[key]
        if _is_plain_map(g) and _is_plain_map(value):
            out[key] = merge_globals(g, value)
        elif isinstance(g, list) and isinstance(value, list):
            out[key] = [*g, *value]
        else:
            out[key] = value
    return out


def _is_plain_map(v: Any) -> bool:
    return isinstance(v, Mapping) and not (len(v) == 1 and _intrinsic_key(v) is not None)


def _intrinsic_key(v: Mapping[str, Any]) -> str | None:
    (key,) = v.keys()
    return key if key == "Ref" or str(key).startswith("Fn::") else None


class _Resolver:
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
        if fn in _CONDITION_FNS:
            raise PlanError(lid, key, f"{fn} is only allowed in Conditions")
        if fn == "Ref":
            return self.ref(_str(lid, key, arg), lid, key)
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
            return self.sub(_str(lid, key, arg), variables, lid, key)
        if fn == "Fn::Join":
            if not isinstance(arg, list) or len(arg) != 2:
                raise PlanError(lid, key, "!Join takes [delimiter, [values]]")
            items = self.resolve(arg[1], lid, key)
            if not isinstance(items, list):
                raise PlanError(lid, key, "!Join takes a list of values")
            return str(arg[0]).join(_scalar_str(lid, key, v) for v in items)
        if fn == "Fn::FindInMap":
            return self.find_in_map(arg, lid, key)
        if fn == "Fn::Select":
            if not isinstance(arg, list) or len(arg) != 2:
                raise PlanError(lid, key, "!Select takes [index, [values]]")
            items = self.resolve(arg[1], lid, key)
            index = _int(lid, key, self.resolve(arg[0], lid, key), minimum=0)
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
        props = _props(name, res)
        self._naming.add(name)
        try:
            given = self.prop(props, stand_in.name_property, name)
            fifo = self.prop(props, stand_in.fifo_property or "", name, default=False)
        finally:
            self._naming.discard(name)
        if given is None:
            fifo_on = _scalar_str(name, stand_in.fifo_property or "", fifo).lower() == "true"
            physical = generated_name(stand_in, self.t.stack_name, name, fifo_on)
        else:
            physical = _scalar_str(name, stand_in.name_property, given)
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
        map_name, top, second = (_scalar_str(lid, key, self.resolve(a, lid, key)) for a in arg)
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
                return _scalar_str(lid, key, variables[ref])
            if "." in ref and not ref.startswith("AWS::"):
                res, attr = ref.split(".", 1)
                return _scalar_str(lid, key, self.get_att(res, attr, lid, key))
            value = self.ref(ref, lid, key)
            if value is NO_VALUE:
                raise PlanError(lid, key, "!Sub cannot use AWS::NoValue")
            return _scalar_str(lid, key, value)

        return _SUB_RE.sub(one, text).replace("${!", "${")


class _ParameterResolver(_Resolver):
    """Conditions may refer to parameters and pseudo parameters, not to resources."""

    def _target(self, name: str, what: str, lid: str, key: str) -> Mapping[str, Any]:
        raise PlanError(lid, key, f"{what}: Conditions can refer only to parameters")


# --------------------------------------------------------------------------- folder config

CONFIG_FILES = ("lambdalet.toml", "lambdalet.json")
_CONFIG_KEYS = {
    "name",
    "runtime",
    "handler",
    "memory",
    "timeout",
    "environment",
    "layers",
    "description",
    "code",
    "reserved_concurrency",
    "alias",
    "provisioned_concurrency",
}


def load_config(
    doc: Any, base_dir: PurePath, source: str = "lambdalet.toml", stack_name: str = "lambdalet"
) -> Template:
    """A function folder's config as a one-function template.

    ``layers`` holds folders (relative to the function folder) published as layers named after
    the folder, or layer version ARNs used as they are.
    """
    if not isinstance(doc, Mapping):
        raise PlanError(source, "", "is not a table")
    unknown = sorted(set(doc) - _CONFIG_KEYS)
    if unknown:
        raise PlanError(
            source, unknown[0], f"unknown key (known: {', '.join(sorted(_CONFIG_KEYS))})"
        )
    name = _check_name(source, "name", _required(source, "name", doc.get("name")))
    props: dict[str, Any] = {
        "FunctionName": name,
        "Runtime": _str(source, "runtime", _required(source, "runtime", doc.get("runtime"))),
        "Handler": _str(source, "handler", _required(source, "handler", doc.get("handler"))),
        "CodeUri": _str(source, "code", doc.get("code", ".")),
        "MemorySize": _int(source, "memory", doc.get("memory", 128), minimum=128, maximum=10240),
        "Timeout": _int(source, "timeout", doc.get("timeout", 3), minimum=1, maximum=900),
        "Description": _str(source, "description", doc.get("description", "")),
    }
    env = doc.get("environment", {})
    if not isinstance(env, Mapping):
        raise PlanError(source, "environment", "must be a table of NAME = value")
    props["Environment"] = {
        "Variables": {str(k): _scalar_str(source, f"environment.{k}", v) for k, v in env.items()}
    }
    resources: dict[str, Any] = {}
    layer_refs: list[Any] = []
    for i, layer in enumerate(_str_list(source, "layers", doc.get("layers", []))):
        if layer.startswith("arn:"):
            layer_refs.append(layer)
            continue
        lname = PurePath(layer).name or f"layer{i}"
        lid = "Layer" + re.sub(r"[^A-Za-z0-9]", "", lname.title()) + str(i)
        lname = re.sub(r"[^a-zA-Z0-9_-]", "-", lname)
        resources[lid] = {
            "Type": SERVERLESS_LAYER,
            "Properties": {"LayerName": lname, "ContentUri": layer},
        }
        layer_refs.append({"Ref": lid})
    props["Layers"] = layer_refs
    if "reserved_concurrency" in doc:
        props["ReservedConcurrentExecutions"] = doc["reserved_concurrency"]
    if "alias" in doc:
        props["AutoPublishAlias"] = doc["alias"]
    if "provisioned_concurrency" in doc:
        props["ProvisionedConcurrencyConfig"] = {
            "ProvisionedConcurrentExecutions": doc["provisioned_concurrency"]
        }
    resources[name.replace("-", "").replace("_", "") or "Function"] = {
        "Type": SERVERLESS_FUNCTION,
        "Properties": props,
    }
    try:
        return load_template({"Resources": resources}, base_dir, stack_name=stack_name)
    except PlanError as e:
        raise PlanError(source, e.field, e.message) from None


# --------------------------------------------------------------------------- checks


def _props(lid: str, res: Mapping[str, Any]) -> Mapping[str, Any]:
    props = res.get("Properties", {}) or {}
    if not isinstance(props, Mapping):
        raise PlanError(lid, "Properties", "must be a mapping")
    return props


def _required(lid: str, key: str, value: Any) -> Any:
    if value is None:
        raise PlanError(lid, key, "is required")
    return value


def _str(lid: str, key: str, value: Any) -> str:
    if not isinstance(value, str):
        raise PlanError(lid, key, f"must be a string, not {_shown(value)}")
    return value


def _scalar_str(lid: str, key: str, value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | int | float):
        return str(value)
    raise PlanError(lid, key, f"must be a string, not {_shown(value)}")


def _str_list(lid: str, key: str, value: Any) -> list[str]:
    if not isinstance(value, list):
        raise PlanError(lid, key, f"must be a list, not {_shown(value)}")
    return [_str(lid, key, v) for v in value]


def _int(
    lid: str, key: str, value: Any, *, minimum: int | None = None, maximum: int | None = None
) -> int:
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise PlanError(lid, key, f"must be an integer, not {_shown(value)}")
    if minimum is not None and value < minimum:
        raise PlanError(lid, key, f"{value} is below the minimum {minimum}")
    if maximum is not None and value > maximum:
        raise PlanError(lid, key, f"{value} is above the maximum {maximum}")
    return value


def _check_name(lid: str, key: str, value: Any) -> str:
    name = _str(lid, key, value)
    if not _NAME_RE.fullmatch(name):
        raise PlanError(lid, key, f"{name!r} is not a valid name (letters, digits, - and _)")
    return name


def _shown(value: Any) -> str:
    if isinstance(value, Mapping):
        return f"a mapping {dict(value)!r}"
    return f"{type(value).__name__} {value!r}"
