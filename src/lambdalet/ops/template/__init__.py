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

One module per concern (plans, the template, parameters and mappings, conditions,
intrinsics, typed fields, the folder config); this package re-exports the public names.
"""

from lambdalet.ops.template.document import Template, load_template
from lambdalet.ops.template.folder_config import CONFIG_FILES, load_config
from lambdalet.ops.template.intrinsics import NO_VALUE
from lambdalet.ops.template.parameters import merge_globals
from lambdalet.ops.template.plans import (
    DEFAULT_ACCOUNT,
    DEFAULT_REGION,
    DEFAULT_ROLE,
    FUNCTION_TYPES,
    LAMBDA_FUNCTION,
    LAMBDA_LAYER,
    LAYER_TYPES,
    SERVERLESS_FUNCTION,
    SERVERLESS_LAYER,
    DockerBuild,
    FunctionPlan,
    LayerPlan,
    PlanError,
)

__all__ = [
    "CONFIG_FILES",
    "DEFAULT_ACCOUNT",
    "DEFAULT_REGION",
    "DEFAULT_ROLE",
    "FUNCTION_TYPES",
    "LAMBDA_FUNCTION",
    "LAMBDA_LAYER",
    "LAYER_TYPES",
    "NO_VALUE",
    "SERVERLESS_FUNCTION",
    "SERVERLESS_LAYER",
    "DockerBuild",
    "FunctionPlan",
    "LayerPlan",
    "PlanError",
    "Template",
    "load_config",
    "load_template",
    "merge_globals",
]
