"""What a deploy does, as records: layer and function plans, image builds, and PlanError."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import PurePath
from typing import Any

DEFAULT_ROLE = "arn:aws:iam::123456789012:role/lambdalet"

DEFAULT_REGION = "us-east-1"

DEFAULT_ACCOUNT = "123456789012"


SERVERLESS_FUNCTION = "AWS::Serverless::Function"

LAMBDA_FUNCTION = "AWS::Lambda::Function"

SERVERLESS_LAYER = "AWS::Serverless::LayerVersion"

LAMBDA_LAYER = "AWS::Lambda::LayerVersion"

FUNCTION_TYPES = (SERVERLESS_FUNCTION, LAMBDA_FUNCTION)

LAYER_TYPES = (SERVERLESS_LAYER, LAMBDA_LAYER)


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
