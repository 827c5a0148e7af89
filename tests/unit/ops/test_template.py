"""Template → plan: resource types, Globals, intrinsics, errors naming resource and field."""

from __future__ import annotations

from pathlib import PurePath
from typing import Any

import pytest

from lambdalet.ops.loader import parse_template_text
from lambdalet.ops.template import (
    DEFAULT_ROLE,
    FunctionPlan,
    PlanError,
    Template,
    load_template,
    merge_globals,
)

BASE = PurePath("/proj")

SAM = """
AWSTemplateFormatVersion: '2010-09-09'
Transform: AWS::Serverless-2016-10-31
Parameters:
  Stage:
    Type: String
    Default: dev
Globals:
  Function:
    Runtime: python3.11
    Timeout: 10
    MemorySize: 256
    Environment:
      Variables:
        STAGE: !Ref Stage
        SHARED: global
    Layers:
      - !Ref CommonLayer
Resources:
  CommonLayer:
    Type: AWS::Serverless::LayerVersion
    Properties:
      LayerName: !Sub '${AWS::StackName}-common'
      ContentUri: layers/common
      CompatibleRuntimes: [python3.11]
  Api:
    Type: AWS::Serverless::Function
    Properties:
      FunctionName: !Sub '${AWS::StackName}-api-${Stage}'
      CodeUri: src/api/
      Handler: app.handler
      MemorySize: 512
      Environment:
        Variables:
          SHARED: mine
          WORKER: !Ref Worker
          WORKER_ARN: !GetAtt Worker.Arn
          SUBBED: !Sub 'worker is ${Worker} at ${Worker.Arn} in ${AWS::Region}, ${!literal}'
          JOINED: !Join ['-', [a, !Ref Stage]]
      Layers:
        - arn:aws:lambda:us-east-1:123456789012:layer:extra:3
      ReservedConcurrentExecutions: 4
  Worker:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: src/worker
      Handler: worker.main
      Runtime: python3.12
      AutoPublishAlias: live
      ProvisionedConcurrencyConfig:
        ProvisionedConcurrentExecutions: 2
  Plain:
    Type: AWS::Lambda::Function
    Properties:
      Handler: index.handler
      Runtime: python3.11
      Role: arn:aws:iam::123456789012:role/custom
      Code:
        ZipFile: |
          def handler(event, context):
              return 1
      Layers: [!GetAtt CommonLayer.Arn]
  Topic:
    Type: AWS::SNS::Topic
"""

LAYER_ARN = "arn:aws:lambda:us-east-1:123456789012:layer:shop-common:7"


def _template(text: str = SAM, **kwargs: Any) -> Template:
    return load_template(
        parse_template_text(text, "template.yaml"), BASE, stack_name="shop", **kwargs
    )


def _functions(t: Template) -> dict[str, FunctionPlan]:
    return {p.logical_id: p for p in t.functions({"CommonLayer": LAYER_ARN})}


def test_layers_are_planned_with_resolved_names() -> None:
    (layer,) = _template().layers()
    assert layer.logical_id == "CommonLayer"
    assert layer.name == "shop-common"
    assert layer.content_dir == BASE / "layers/common"
    assert layer.compatible_runtimes == ("python3.11",)


def test_globals_merge_into_serverless_functions() -> None:
    api = _functions(_template())["Api"]
    assert api.name == "shop-api-dev"
    assert api.runtime == "python3.11"
    assert api.timeout_s == 10
    assert api.memory_mb == 512  # the resource's own value wins
    assert api.code_dir == BASE / "src/api/"
    assert api.environment["SHARED"] == "mine"
    assert api.environment["STAGE"] == "dev"
    # lists concatenate, Globals first
    assert api.layers == (LAYER_ARN, "arn:aws:lambda:us-east-1:123456789012:layer:extra:3")
    assert api.reserved_concurrency == 4
    assert api.role == DEFAULT_ROLE


def test_intrinsics_between_resources() -> None:
    env = _functions(_template())["Api"].environment
    # no FunctionName: CloudFormation's <stack>-<LogicalId>-<SUFFIX>
    worker = "shop-Worker-A5ND4AHBLPW2"
    assert env["WORKER"] == worker
    assert env["WORKER_ARN"] == f"arn:aws:lambda:us-east-1:123456789012:function:{worker}"
    assert env["SUBBED"] == (
        f"worker is {worker} at arn:aws:lambda:us-east-1:123456789012:function:{worker}"
        " in us-east-1, ${literal}"
    )
    assert env["JOINED"] == "a-dev"


def test_parameters_override_defaults() -> None:
    api = _functions(_template(parameters={"Stage": "prod"}))["Api"]
    assert api.name == "shop-api-prod"
    assert api.environment["STAGE"] == "prod"


def test_alias_and_provisioned_concurrency() -> None:
    worker = _functions(_template())["Worker"]
    assert worker.runtime == "python3.12"
    assert worker.alias == "live"
    assert worker.provisioned_concurrency == 2
    assert worker.layers == (LAYER_ARN,)


def test_lambda_function_with_inline_code_gets_no_globals() -> None:
    plain = _functions(_template())["Plain"]
    assert plain.inline_code is not None and "def handler" in plain.inline_code
    assert plain.code_dir is None
    assert plain.timeout_s == 3 and plain.memory_mb == 128  # defaults, not Globals
    assert plain.layers == (LAYER_ARN,)
    assert plain.role == "arn:aws:iam::123456789012:role/custom"


def test_other_resource_types_are_ignored() -> None:
    assert set(_functions(_template())) == {"Api", "Worker", "Plain"}


def test_json_templates_use_long_form_intrinsics() -> None:
    text = """{"Resources": {"F": {"Type": "AWS::Lambda::Function", "Properties": {
        "Handler": "a.b", "Runtime": "python3.11", "Code": "code",
        "Environment": {"Variables": {"ME": {"Fn::Sub": "${AWS::StackName}-x"}}}}}}}"""
    (f,) = _template(text).functions({})
    assert f.environment == {"ME": "shop-x"}
    assert f.code_dir == BASE / "code"


def test_configuration_is_what_create_function_takes() -> None:
    cfg = _functions(_template())["Worker"].configuration()
    assert cfg["Runtime"] == "python3.12"
    assert cfg["Environment"] == {"Variables": {"STAGE": "dev", "SHARED": "global"}}
    assert cfg["Layers"] == [LAYER_ARN]


def test_merge_globals_keeps_intrinsics_whole() -> None:
    merged = merge_globals({"A": {"Ref": "X"}, "L": [1]}, {"A": {"Other": 1}, "L": [2]})
    assert merged == {"A": {"Other": 1}, "L": [1, 2]}


def _one(props: str) -> str:
    return f"""
Resources:
  Fn:
    Type: AWS::Serverless::Function
    Properties:
{props}
"""


BASIC = "      CodeUri: src\n      Handler: a.b\n      Runtime: python3.11\n"


@pytest.mark.parametrize(
    ("text", "resource", "field", "words"),
    [
        (_one("      CodeUri: src\n      Handler: a.b\n"), "Fn", "Runtime", "required"),
        (_one(BASIC + "      MemorySize: 64"), "Fn", "MemorySize", "minimum 128"),
        (_one(BASIC + "      Timeout: lots"), "Fn", "Timeout", "integer"),
        (_one(BASIC + "      Layers: !Ref Nope"), "Fn", "Layers", "Nope"),
        (
            _one(BASIC + "      Environment:\n        Variables:\n          A: !GetAtt Fn.Foo"),
            "Fn",
            "Environment.Variables.A",
            "Fn.Foo",
        ),
        (
            _one(
                "      CodeUri: s3://bucket/key.zip\n      Handler: a.b\n      Runtime: python3.11"
            ),
            "Fn",
            "CodeUri",
            "S3",
        ),
        (
            _one(
                BASIC + "      ProvisionedConcurrencyConfig:\n"
                "        ProvisionedConcurrentExecutions: 1"
            ),
            "Fn",
            "ProvisionedConcurrencyConfig",
            "AutoPublishAlias",
        ),
        (_one(BASIC + "      FunctionName: 'bad name'"), "Fn", "FunctionName", "valid name"),
        (_one(BASIC + "      Environment: !ImportValue x"), "Fn", "Environment", "Fn::ImportValue"),
    ],
)
def test_errors_name_resource_and_field(text: str, resource: str, field: str, words: str) -> None:
    with pytest.raises(PlanError) as err:
        _template(text).functions({})
    assert err.value.resource == resource
    assert err.value.field == field
    assert words in str(err.value)


def test_two_functions_with_one_name_are_refused() -> None:
    text = _one(BASIC + "      FunctionName: same") + (
        "  Other:\n    Type: AWS::Serverless::Function\n    Properties:\n"
        + BASIC
        + "      FunctionName: same\n"
    )
    with pytest.raises(PlanError, match="used twice"):
        _template(text).functions({})


def test_parameter_without_default_needs_a_value() -> None:
    text = "Parameters:\n  P:\n    Type: String\n" + _one(BASIC)
    with pytest.raises(PlanError) as err:
        _template(text)
    assert err.value.resource == "P"
    assert _template(text, parameters={"P": "x"}).parameters == {"P": "x"}


def test_missing_resources() -> None:
    with pytest.raises(PlanError, match="Resources"):
        load_template({"Globals": {}}, BASE)


IMAGE_SAM = """
Parameters:
  Tag:
    Type: String
    Default: v7
Globals:
  Function:
    Runtime: python3.12
    Handler: ignored.handler
    Timeout: 9
Resources:
  Img:
    Type: AWS::Serverless::Function
    Properties:
      PackageType: Image
      ImageConfig:
        Command: ["app.handler"]
    Metadata:
      Dockerfile: Dockerfile.lambda
      DockerContext: ./img
      DockerTag: !Ref Tag
      DockerBuildArgs:
        MODE: fast
  Pulled:
    Type: AWS::Lambda::Function
    Properties:
      PackageType: Image
      Role: arn:aws:iam::123456789012:role/r
      Code:
        ImageUri: 127.0.0.1:5000/app:v1
"""


def test_image_functions_are_planned_from_metadata_or_image_uri() -> None:
    fns = _functions(_template(IMAGE_SAM))
    img = fns["Img"]
    assert img.package_type == "Image" and img.docker is not None
    assert img.docker.context == BASE / "img"
    assert (img.docker.dockerfile, img.docker.tag) == ("Dockerfile.lambda", "v7")
    assert img.docker.build_args == {"MODE": "fast"}
    config = img.configuration()
    assert "Runtime" not in config and "Handler" not in config and "Layers" not in config
    assert config["ImageConfig"] == {"Command": ["app.handler"]}
    assert config["Timeout"] == 9
    assert fns["Pulled"].image_uri == "127.0.0.1:5000/app:v1"
    assert fns["Pulled"].docker is None


def test_image_function_without_a_source_or_with_layers() -> None:
    with pytest.raises(PlanError, match="ImageUri"):
        _functions(_template(_one("      PackageType: Image\n")))
    with pytest.raises(PlanError, match="Layers"):
        _functions(
            _template(
                _one("      PackageType: Image\n      ImageUri: r.io/a:b\n      Layers: [x]\n")
            )
        )
