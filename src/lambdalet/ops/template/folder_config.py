"""A function folder's own config (``lambdalet.toml`` / ``lambdalet.json``) as a plan."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import PurePath
from typing import Any

from lambdalet.ops.template.document import Template, load_template
from lambdalet.ops.template.fields import (
    checked_name,
    int_field,
    required_field,
    scalar_str_field,
    str_field,
    str_list_field,
)
from lambdalet.ops.template.plans import SERVERLESS_FUNCTION, SERVERLESS_LAYER, PlanError

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
    name = checked_name(source, "name", required_field(source, "name", doc.get("name")))
    props: dict[str, Any] = {
        "FunctionName": name,
        "Runtime": str_field(
            source, "runtime", required_field(source, "runtime", doc.get("runtime"))
        ),
        "Handler": str_field(
            source, "handler", required_field(source, "handler", doc.get("handler"))
        ),
        "CodeUri": str_field(source, "code", doc.get("code", ".")),
        "MemorySize": int_field(
            source, "memory", doc.get("memory", 128), minimum=128, maximum=10240
        ),
        "Timeout": int_field(source, "timeout", doc.get("timeout", 3), minimum=1, maximum=900),
        "Description": str_field(source, "description", doc.get("description", "")),
    }
    env = doc.get("environment", {})
    if not isinstance(env, Mapping):
        raise PlanError(source, "environment", "must be a table of NAME = value")
    props["Environment"] = {
        "Variables": {
            str(k): scalar_str_field(source, f"environment.{k}", v) for k, v in env.items()
        }
    }
    resources: dict[str, Any] = {}
    layer_refs: list[Any] = []
    for i, layer in enumerate(str_list_field(source, "layers", doc.get("layers", []))):
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
