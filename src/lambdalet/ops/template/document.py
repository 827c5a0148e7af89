"""A loaded template: which resources it deploys, in which order, with what properties."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import PurePath
from typing import Any

from lambdalet.ops.stack import physical_name
from lambdalet.ops.standins import Reference
from lambdalet.ops.template.conditions import Conditions
from lambdalet.ops.template.fields import (
    checked_name,
    int_field,
    required_field,
    resource_props,
    scalar_str_field,
    str_field,
    str_list_field,
)
from lambdalet.ops.template.intrinsics import Resolver
from lambdalet.ops.template.parameters import merge_globals, parse_mappings, parse_parameters
from lambdalet.ops.template.plans import (
    DEFAULT_ACCOUNT,
    DEFAULT_REGION,
    DEFAULT_ROLE,
    FUNCTION_TYPES,
    LAYER_TYPES,
    SERVERLESS_FUNCTION,
    SERVERLESS_LAYER,
    DockerBuild,
    FunctionPlan,
    LayerPlan,
    PlanError,
)

_STACK_RE = re.compile(r"[a-zA-Z][-a-zA-Z0-9]{0,127}")


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
        resolver = Resolver(self, {lid: layer_arns.get(lid, "") for lid in self.layer_ids()})
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
        props = resource_props(lid, self.resources[lid])
        name = Resolver(self, {}).prop(props, "LayerName", lid, default=lid)
        return checked_name(lid, "LayerName", name)

    def _layer(self, lid: str) -> LayerPlan:
        res = self.resources[lid]
        props = resource_props(lid, res)
        r = Resolver(self, {})
        key = "ContentUri" if res["Type"] == SERVERLESS_LAYER else "Content"
        runtimes = r.prop(props, "CompatibleRuntimes", lid, default=[])
        return LayerPlan(
            logical_id=lid,
            name=self.layer_name(lid),
            content_dir=self._local_dir(lid, key, r.prop(props, key, lid)),
            compatible_runtimes=tuple(str_list_field(lid, "CompatibleRuntimes", runtimes)),
            description=str_field(
                lid, "Description", r.prop(props, "Description", lid, default="")
            ),
            build_method=_build_method(lid, res),
        )

    # ------------------------------------------------------------------ functions

    def function_name(self, lid: str) -> str:
        props = resource_props(lid, self.resources[lid])
        # no FunctionName: CloudFormation's <stack>-<LogicalId>-<SUFFIX> (ops/stack.py)
        default = physical_name(self.stack_name, lid)
        name = Resolver(self, {}).prop(props, "FunctionName", lid, default=default)
        return checked_name(lid, "FunctionName", name)

    def _function(self, lid: str, r: Resolver) -> FunctionPlan:
        res = self.resources[lid]
        props = resource_props(lid, res)

        def get(key: str, default: Any = None) -> Any:
            return r.prop(props, key, lid, default=default)

        inline: str | None = None
        code_dir: PurePath | None = None
        image = get("PackageType", "Zip") == "Image"
        if image:
            pass  # no code folder: the image is built from Metadata or named by ImageUri
        elif res["Type"] == SERVERLESS_FUNCTION:
            if "InlineCode" in props:
                inline = str_field(lid, "InlineCode", get("InlineCode"))
            else:
                code_dir = self._local_dir(lid, "CodeUri", get("CodeUri"))
        else:
            code = get("Code")
            if not isinstance(code, Mapping) and not isinstance(code, str):
                raise PlanError(lid, "Code", "must be a local path or {ZipFile: ...}")
            if isinstance(code, Mapping) and "ZipFile" in code:
                inline = str_field(lid, "Code.ZipFile", code["ZipFile"])
            else:
                code_dir = self._local_dir(lid, "Code", code)
        env = get("Environment", {})
        if not isinstance(env, Mapping):
            raise PlanError(lid, "Environment", "must be a mapping with Variables")
        variables = env.get("Variables", {}) or {}
        if not isinstance(variables, Mapping):
            raise PlanError(lid, "Environment.Variables", "must be a mapping")
        env_vars = {
            str(k): scalar_str_field(lid, f"Environment.Variables.{k}", v)
            for k, v in variables.items()
        }
        layers = str_list_field(lid, "Layers", get("Layers", []))
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
            provisioned = int_field(
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
            else str_field(lid, "Runtime", required_field(lid, "Runtime", get("Runtime"))),
            handler=""
            if image
            else str_field(lid, "Handler", required_field(lid, "Handler", get("Handler"))),
            code_dir=code_dir,
            inline_code=inline,
            memory_mb=int_field(
                lid, "MemorySize", get("MemorySize", 128), minimum=128, maximum=10240
            ),
            timeout_s=int_field(lid, "Timeout", get("Timeout", 3), minimum=1, maximum=900),
            environment=env_vars,
            layers=tuple(layers),
            description=str_field(lid, "Description", get("Description", "")),
            role=role if isinstance(role, str) and role.startswith("arn:") else DEFAULT_ROLE,
            reserved_concurrency=(
                None
                if reserved is None
                else int_field(lid, "ReservedConcurrentExecutions", reserved, minimum=0)
            ),
            alias=None if alias is None else checked_name(lid, "AutoPublishAlias", alias),
            provisioned_concurrency=provisioned,
            **image_fields,
            build_method=_build_method(lid, res),
        )

    def _image_fields(self, lid: str, r: Resolver, get: Callable[..., Any]) -> dict[str, Any]:
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
                dockerfile=str_field(
                    lid, "Metadata.Dockerfile", meta.get("Dockerfile", "Dockerfile")
                ),
                context=self._local_dir(lid, "Metadata.DockerContext", meta.get("DockerContext")),
                tag=scalar_str_field(lid, "Metadata.DockerTag", meta.get("DockerTag", "latest")),
                build_args={
                    str(k): scalar_str_field(lid, f"Metadata.DockerBuildArgs.{k}", v)
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
        out["image_uri"] = str_field(lid, "ImageUri", uri)
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
    return str_field(lid, "Metadata.BuildMethod", method)


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
            props = resource_props(str(lid), res)
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
        parameters=parse_parameters(doc.get("Parameters"), parameters or {}),
        stack_name=stack_name,
        region=region,
        account_id=account_id,
        mappings=parse_mappings(doc.get("Mappings")),
        other_globals=tuple(sorted(str(k) for k in globals_doc if k != "Function")),
    )
    conditions = Conditions(template, doc.get("Conditions")).evaluate_all()
    for lid, res in merged.items():
        cond = res.get("Condition")
        if cond is not None and (not isinstance(cond, str) or cond not in conditions):
            raise PlanError(lid, "Condition", f"{cond!r} is not declared in Conditions")
    return replace(template, conditions=conditions)
