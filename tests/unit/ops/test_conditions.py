"""Parameters, Conditions, Fn::If / AWS::NoValue, pseudo parameters and skipped resource types."""

from __future__ import annotations

from pathlib import Path, PurePath
from typing import Any

import pytest

from lambdalet.ops.loader import default_stack_name, load, parse_template_text
from lambdalet.ops.template import FunctionPlan, PlanError, Template, load_template

BASE = PurePath("/proj")

TEMPLATE = """
Parameters:
  Stage:
    Type: String
    Default: dev
    AllowedValues: [dev, prod]
  Memory:
    Type: Number
    Default: 256
  Extra:
    Type: CommaDelimitedList
    Default: "a, b"
Conditions:
  IsProd: !Equals [!Ref Stage, prod]
  IsDev: !Not [!Condition IsProd]
  BigAndProd: !And [!Condition IsProd, !Equals [!Ref Memory, 1024]]
  ProdOrBig: !Or [!Condition IsProd, !Equals ['1024', !Ref Memory]]
Resources:
  Bucket:
    Type: AWS::S3::Bucket
  Api:
    Type: AWS::Serverless::Api
    Condition: IsProd
  Main:
    Type: AWS::Serverless::Function
    Properties:
      FunctionName: !Sub '${AWS::StackName}-main-${Stage}'
      CodeUri: src
      Handler: app.handler
      Runtime: python3.11
      MemorySize: !Ref Memory
      Timeout: !If [IsProd, 30, !Ref AWS::NoValue]
      Description: !If [BigAndProd, big, small]
      Environment:
        Variables:
          WHERE: !Sub '${AWS::Region}/${AWS::AccountId}/${AWS::Partition}/${AWS::StackName}'
          ONLY_PROD: !If [IsProd, yes-prod, !Ref AWS::NoValue]
          SECOND: !Select [1, !Ref Extra]
          EITHER: !If [ProdOrBig, either, neither]
      Layers:
        - !If [IsDev, arn:aws:lambda:us-east-1:123456789012:layer:debug:1, !Ref AWS::NoValue]
  ProdOnly:
    Type: AWS::Serverless::Function
    Condition: IsProd
    Properties:
      CodeUri: src
      Handler: app.handler
      Runtime: python3.11
"""


def _template(text: str = TEMPLATE, **kwargs: Any) -> Template:
    return load_template(
        parse_template_text(text, "template.yaml"), BASE, stack_name="shop", **kwargs
    )


def _functions(t: Template) -> dict[str, FunctionPlan]:
    return {p.logical_id: p for p in t.functions({})}


def test_defaults_make_the_dev_stack() -> None:
    t = _template()
    assert t.conditions == {"IsProd": False, "IsDev": True, "BigAndProd": False, "ProdOrBig": False}
    fns = _functions(t)
    assert set(fns) == {"Main"}  # ProdOnly's Condition is false
    main = fns["Main"]
    assert main.name == "shop-main-dev"
    assert main.memory_mb == 256
    assert main.timeout_s == 3  # AWS::NoValue: the default
    assert main.description == "small"
    assert main.environment == {
        "WHERE": "us-east-1/123456789012/aws/shop",
        "SECOND": "b",
        "EITHER": "neither",
    }
    assert main.layers == ("arn:aws:lambda:us-east-1:123456789012:layer:debug:1",)


def test_overrides_make_the_prod_stack() -> None:
    t = _template(parameters={"Stage": "prod", "Memory": "1024"})
    assert t.conditions == {"IsProd": True, "IsDev": False, "BigAndProd": True, "ProdOrBig": True}
    fns = _functions(t)
    assert set(fns) == {"Main", "ProdOnly"}
    main = fns["Main"]
    assert (main.name, main.memory_mb, main.timeout_s) == ("shop-main-prod", 1024, 30)
    assert main.description == "big"
    assert main.environment["ONLY_PROD"] == "yes-prod"
    assert main.environment["EITHER"] == "either"
    assert main.layers == ()  # the only list item was AWS::NoValue


def test_unsupported_types_are_listed_once_each_when_created() -> None:
    assert _template().skipped() == [("Bucket", "AWS::S3::Bucket")]
    assert _template(parameters={"Stage": "prod"}).skipped() == [
        ("Bucket", "AWS::S3::Bucket"),
        ("Api", "AWS::Serverless::Api"),
    ]


def _main_with(extra: str, conditions: str = "") -> str:
    return (
        f"Conditions:\n  Never: !Equals [a, b]\n{conditions}"
        "Resources:\n  Bucket:\n    Type: AWS::S3::Bucket\n"
        "  Api:\n    Type: AWS::Serverless::Api\n"
        "  Gone:\n    Type: AWS::Serverless::Function\n    Condition: Never\n"
        "    Properties: {CodeUri: s, Handler: a.b, Runtime: python3.11}\n"
        "  Main:\n    Type: AWS::Serverless::Function\n    Properties:\n"
        "      CodeUri: src\n      Handler: a.b\n      Runtime: python3.11\n" + extra
    )


@pytest.mark.parametrize(
    ("extra", "field", "words"),
    [
        (
            "      Environment:\n        Variables:\n          A: !Ref Api\n",
            "Environment.Variables.A",
            "Api (AWS::Serverless::Api) is not deployed by lambdalet",
        ),
        (
            "      Description: !GetAtt Bucket.DomainName\n",
            "Description",
            "!GetAtt Bucket.DomainName: Bucket (AWS::S3::Bucket) is not deployed by lambdalet, "
            "which knows only its Arn",
        ),
        (
            "      Description: !Sub 'in ${Api}'\n",
            "Description",
            "Api (AWS::Serverless::Api) is not deployed by lambdalet",
        ),
        ("      Description: !Ref Gone\n", "Description", "Gone is not created (Condition Never"),
        ("      Timeout: !If [Maybe, 1, 2]\n", "Timeout", "no such condition"),
        ("      Timeout: !If [Never, 1]\n", "Timeout", "!If takes"),
        ("      Timeout: !Equals [1, 1]\n", "Timeout", "only allowed in Conditions"),
        ("      Description: !Sub '${AWS::NoValue}'\n", "Description", "AWS::NoValue"),
    ],
)
def test_errors_name_the_resource_and_field(extra: str, field: str, words: str) -> None:
    with pytest.raises(PlanError) as err:
        _template(_main_with(extra)).functions({})
    assert (err.value.resource, err.value.field) == ("Main", field)
    assert words in str(err.value)


@pytest.mark.parametrize(
    ("text", "resource", "field", "words"),
    [
        (
            _main_with("", "  Loop: !Condition Loop2\n  Loop2: !Not [!Condition Loop]\n"),
            "Conditions",
            "Loop",
            "refers to itself",
        ),
        (_main_with("", "  Bad: !Equals [a]\n"), "Conditions", "Bad", "!Equals takes"),
        (_main_with("", "  Bad: !If [Never, a, b]\n"), "Conditions", "Bad", "not a condition"),
        (_main_with("", "  Bad: !Condition Missing\n"), "Conditions", "Bad", "not declared"),
        (
            _main_with("", "  Bad: !Equals [!Ref Main, x]\n"),
            "Conditions",
            "Bad",
            "only to parameters",
        ),
        (
            _main_with("").replace("Condition: Never", "Condition: Missing"),
            "Gone",
            "Condition",
            "not declared",
        ),
        (
            "Parameters:\n  P: {Type: String, AllowedValues: [a]}\n" + _main_with(""),
            "P",
            "Default",
            "no Default",
        ),
    ],
)
def test_condition_and_parameter_errors(text: str, resource: str, field: str, words: str) -> None:
    with pytest.raises(PlanError) as err:
        _template(text)
    assert (err.value.resource, err.value.field) == (resource, field)
    assert words in str(err.value)


def test_parameter_values_are_checked() -> None:
    with pytest.raises(PlanError, match="'test' is not one of dev, prod") as err:
        _template(parameters={"Stage": "test"})
    assert (err.value.resource, err.value.field) == ("Stage", "AllowedValues")
    with pytest.raises(PlanError, match="not a Number"):
        _template(parameters={"Memory": "lots"})
    with pytest.raises(PlanError) as err:
        _template(parameters={"Nope": "1"})
    assert (err.value.resource, err.value.field) == ("Parameters", "Nope")


def test_stack_names() -> None:
    assert default_stack_name(Path("/x/my_app/template.yaml")) == "my-app"
    assert default_stack_name(Path("/x/2024-app/template.yaml")) == "stack-2024-app"
    assert default_stack_name(Path("/template.yaml")) == "lambdalet"
    with pytest.raises(PlanError, match="not a valid stack name"):
        load_template(parse_template_text(TEMPLATE, "t"), BASE, stack_name="bad_name")


def test_load_takes_the_stack_name_and_overrides(tmp_path: Path) -> None:
    proj = tmp_path / "shop_app"
    proj.mkdir()
    (proj / "template.yaml").write_text(TEMPLATE)
    _, t = load(proj)
    assert t.stack_name == "shop-app"
    _, t = load(proj, {"Stage": "prod"}, stack_name="other")
    assert (t.stack_name, t.conditions["IsProd"]) == ("other", True)
    assert _functions(t)["Main"].name == "other-main-prod"


def test_parameter_overrides_take_both_of_sams_forms() -> None:
    from lambdalet.ops.commands import parameters

    assert parameters(["Stage=prod", "ParameterKey=List,ParameterValue=a,b=c"]) == {
        "Stage": "prod",
        "List": "a,b=c",
    }
    with pytest.raises(PlanError) as err:
        parameters(["Stage"])
    assert (err.value.resource, err.value.field) == ("--parameter-overrides", "Stage")
