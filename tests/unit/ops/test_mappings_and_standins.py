"""Mappings / Fn::FindInMap, and references to resources deploy skips (bucket, table, ...)."""

from __future__ import annotations

from pathlib import PurePath

import pytest

from lambdalet.ops.loader import parse_template_text
from lambdalet.ops.template import FunctionPlan, PlanError, Template, load_template

BASE = PurePath("/proj")

MAPPED = """
Parameters:
  Stage:
    Type: String
    Default: dev
Mappings:
  StageConfig:
    dev: {Memory: 256, Level: DEBUG, Zones: [a, b]}
    prod: {Memory: 1024, Level: WARN, Zones: [c]}
  RegionNames:
    us-east-1: {Short: use1}
    eu-west-1: {Short: euw1}
  Indirect:
    pick: {Map: StageConfig}
Resources:
  Main:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: src
      Handler: a.b
      Runtime: python3.11
      MemorySize: !FindInMap [StageConfig, !Ref Stage, Memory]
      Environment:
        Variables:
          LEVEL: !FindInMap [StageConfig, !Ref Stage, Level]
          SHORT: !FindInMap [RegionNames, !Ref AWS::Region, Short]
          NESTED: !FindInMap [!FindInMap [Indirect, pick, Map], !Ref Stage, Level]
          ZONE: !Select [0, !FindInMap [StageConfig, !Ref Stage, Zones]]
          SUBBED: !Sub
            - '${Short}-app'
            - Short: !FindInMap [RegionNames, !Ref AWS::Region, Short]
"""


def _template(text: str, **kw: object) -> Template:
    return load_template(parse_template_text(text, "t.yaml"), BASE, stack_name="shop", **kw)  # type: ignore[arg-type]


def _main(t: Template) -> FunctionPlan:
    (plan,) = t.functions({})
    return plan


def test_find_in_map_with_parameters_pseudo_parameters_and_nesting() -> None:
    dev = _main(_template(MAPPED))
    assert dev.memory_mb == 256
    assert dict(dev.environment) == {
        "LEVEL": "DEBUG",
        "SHORT": "use1",
        "NESTED": "DEBUG",
        "ZONE": "a",
        "SUBBED": "use1-app",
    }
    prod = _main(_template(MAPPED, parameters={"Stage": "prod"}, region="eu-west-1"))
    assert prod.memory_mb == 1024
    assert prod.environment["SHORT"] == "euw1" and prod.environment["ZONE"] == "c"


def test_find_in_map_in_conditions() -> None:
    text = MAPPED.replace(
        "Resources:",
        "Conditions:\n  Quiet: !Equals [!FindInMap [StageConfig, !Ref Stage, Level], WARN]\n"
        "Resources:",
    ).replace("          LEVEL:", "          QUIET: !If [Quiet, 'yes', 'no']\n          LEVEL:")
    assert _main(_template(text)).environment["QUIET"] == "no"
    assert _main(_template(text, parameters={"Stage": "prod"})).environment["QUIET"] == "yes"


@pytest.mark.parametrize(
    ("lookup", "words"),
    [
        ("[Nope, dev, Level]", "no map 'Nope' in Mappings (maps: StageConfig, RegionNames"),
        ("[StageConfig, !Ref AWS::StackName, Level]", "StageConfig has no key 'shop' (keys: dev"),
        ("[StageConfig, dev, Colour]", "StageConfig.dev has no key 'Colour' (keys: Memory"),
        ("[StageConfig, dev]", "!FindInMap takes [map name, top-level key, second-level key]"),
    ],
)
def test_find_in_map_errors_name_resource_and_field(lookup: str, words: str) -> None:
    text = MAPPED.replace("[StageConfig, !Ref Stage, Level]", lookup, 1)
    with pytest.raises(PlanError) as err:
        _template(text).functions({})
    assert (err.value.resource, err.value.field) == ("Main", "Environment.Variables.LEVEL")
    assert words in str(err.value)


@pytest.mark.parametrize(
    ("mappings", "field"),
    [("Mappings: [a]\n", ""), ("Mappings:\n  M: {k: v}\n", "M.k"), ("Mappings:\n  M: 1\n", "M")],
)
def test_malformed_mappings_are_errors(mappings: str, field: str) -> None:
    text = mappings + MAPPED[MAPPED.index("Resources:") :].replace("!FindInMap", "!Join")
    with pytest.raises(PlanError) as err:
        _template(text)
    assert (err.value.resource, err.value.field) == ("Mappings", field)


# --------------------------------------------------------------------------- skipped resources

SKIPPED = """
Parameters:
  Stage:
    Type: String
    Default: dev
Resources:
  Pictures:
    Type: AWS::S3::Bucket
    Properties:
      BucketName: !Sub 'pictures-${Stage}'
  Scratch:
    Type: AWS::S3::Bucket
  Orders:
    Type: AWS::DynamoDB::Table
  Jobs:
    Type: AWS::SQS::Queue
    Properties:
      QueueName: jobs-queue
  Ordered:
    Type: AWS::SQS::Queue
    Properties:
      FifoQueue: true
  Alerts:
    Type: AWS::SNS::Topic
  Api:
    Type: AWS::Serverless::Api
  Main:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: src
      Handler: a.b
      Runtime: python3.11
      Environment:
        Variables:
          BUCKET: !Ref Pictures
          SCRATCH: !Ref Scratch
          SCRATCH_ARN: !GetAtt Scratch.Arn
          TABLE: !Ref Orders
          TABLE_ARN: !GetAtt Orders.Arn
          QUEUE_URL: !Ref Jobs
          QUEUE_ARN: !GetAtt Jobs.Arn
          FIFO_URL: !Ref Ordered
          TOPIC: !Ref Alerts
          TOPIC_ARN: !GetAtt Alerts.TopicArn
          SUBBED: !Sub 's3://${Pictures}/in/${Orders.Arn}'
"""


def test_references_to_skipped_resources_get_cloudformations_values() -> None:
    t = _template(SKIPPED, region="eu-west-1", account_id="111122223333")
    assert dict(_main(t).environment) == {
        "BUCKET": "pictures-dev",
        "SCRATCH": "shop-scratch",  # generated, lowercased for a bucket
        "SCRATCH_ARN": "arn:aws:s3:::shop-scratch",
        "TABLE": "shop-Orders",
        "TABLE_ARN": "arn:aws:dynamodb:eu-west-1:111122223333:table/shop-Orders",
        "QUEUE_URL": "https://sqs.eu-west-1.amazonaws.com/111122223333/jobs-queue",
        "QUEUE_ARN": "arn:aws:sqs:eu-west-1:111122223333:jobs-queue",
        "FIFO_URL": "https://sqs.eu-west-1.amazonaws.com/111122223333/shop-Ordered.fifo",
        "TOPIC": "arn:aws:sns:eu-west-1:111122223333:shop-Alerts",
        "TOPIC_ARN": "arn:aws:sns:eu-west-1:111122223333:shop-Alerts",
        "SUBBED": "s3://pictures-dev/in/arn:aws:dynamodb:eu-west-1:111122223333:table/shop-Orders",
    }


def test_each_reference_to_a_skipped_resource_is_reported_once() -> None:
    t = _template(SKIPPED)
    refs = t.skipped_references()
    assert [(r.field, r.target) for r in refs] == [
        ("Environment.Variables.BUCKET", "Pictures"),
        ("Environment.Variables.SCRATCH", "Scratch"),
        ("Environment.Variables.SCRATCH_ARN", "Scratch"),
        ("Environment.Variables.TABLE", "Orders"),
        ("Environment.Variables.TABLE_ARN", "Orders"),
        ("Environment.Variables.QUEUE_URL", "Jobs"),
        ("Environment.Variables.QUEUE_ARN", "Jobs"),
        ("Environment.Variables.FIFO_URL", "Ordered"),
        ("Environment.Variables.TOPIC", "Alerts"),
        ("Environment.Variables.TOPIC_ARN", "Alerts"),
        ("Environment.Variables.SUBBED", "Pictures"),
        ("Environment.Variables.SUBBED", "Orders"),
    ]
    assert refs[0].warning() == (
        "Main.Environment.Variables.BUCKET refers to Pictures (AWS::S3::Bucket), "
        "which lambdalet does not deploy; using 'pictures-dev'"
    )
    assert refs[0].as_json()["value"] == "pictures-dev"
    # planning itself records nothing
    t.functions({})
    assert t.references is None


def test_a_template_without_references_to_skipped_resources_reports_none() -> None:
    text = SKIPPED[: SKIPPED.index("      Environment:")]
    assert _template(text).skipped_references() == []


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ("!GetAtt Jobs.QueueName", "Jobs.QueueName: Jobs (AWS::SQS::Queue) is not deployed"),
        ("!GetAtt Alerts.Arn", "Alerts (AWS::SNS::Topic) is not deployed by lambdalet, which "
         "knows only its TopicArn"),
        ("!GetAtt Orders.StreamArn", "which knows only its Arn"),
        ("!Ref Api", "!Ref Api: Api (AWS::Serverless::Api) is not deployed by lambdalet"),
        ("!GetAtt Api.RootResourceId", "Api (AWS::Serverless::Api) is not deployed by lambdalet"),
        ("!Sub '${Api}'", "Api (AWS::Serverless::Api) is not deployed by lambdalet"),
    ],
)  # fmt: skip
def test_other_references_to_skipped_resources_are_errors(value: str, words: str) -> None:
    text = SKIPPED.replace("!Ref Pictures", value)
    with pytest.raises(PlanError) as err:
        _template(text).functions({})
    assert (err.value.resource, err.value.field) == ("Main", "Environment.Variables.BUCKET")
    assert words in str(err.value)


def test_a_name_that_refers_to_its_own_resource_is_an_error() -> None:
    text = SKIPPED.replace("BucketName: !Sub 'pictures-${Stage}'", "BucketName: !Ref Pictures")
    with pytest.raises(PlanError) as err:
        _template(text).functions({})
    assert (err.value.resource, err.value.field) == ("Pictures", "BucketName")


def test_an_execution_role_of_the_template_gives_its_arn() -> None:
    text = """
Resources:
  Exec:
    Type: AWS::IAM::Role
    Properties:
      RoleName: worker-role
  Other:
    Type: AWS::IAM::Role
  Main:
    Type: AWS::Lambda::Function
    Properties:
      Code: src
      Handler: a.b
      Runtime: python3.11
      Role: !GetAtt Exec.Arn
      Environment:
        Variables:
          OTHER: !GetAtt Other.Arn
          NAME: !Ref Exec
"""
    t = _template(text, region="eu-west-1", account_id="111122223333")
    main = _main(t)
    assert main.role == "arn:aws:iam::111122223333:role/worker-role"
    assert dict(main.environment) == {
        "OTHER": "arn:aws:iam::111122223333:role/shop-Other",
        "NAME": "worker-role",
    }
