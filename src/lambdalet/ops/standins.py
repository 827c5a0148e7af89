"""Values for references to resources lambdalet does not deploy.  No I/O.

A template often passes a bucket, table, queue or topic to a function (``BUCKET: !Ref
Pictures``), or gives it a role of its own (``Role: !GetAtt MyRole.Arn``).  lambdalet
deploys none of these, but the function still needs the value it would have had: the
physical name the template gives (``BucketName``, ...), else a deterministic
``<stack>-<LogicalId>``, shaped as CloudFormation shapes ``!Ref`` and
``!GetAtt X.Arn`` for that type.  Each use is reported as a :class:`Reference`.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class StandIn:
    """How one resource type's ``!Ref`` and ARN are made from its name.

    ``ref`` and ``arn`` are format strings over ``name``, ``region`` and ``account``.
    """

    name_property: str
    ref: str
    arn_attribute: str
    arn: str
    lowercase: bool = False
    #: a boolean property that, when true, makes a generated name end in ``.fifo``
    fifo_property: str | None = None


STAND_INS: dict[str, StandIn] = {
    "AWS::S3::Bucket": StandIn(
        "BucketName", ref="{name}", arn_attribute="Arn", arn="arn:aws:s3:::{name}", lowercase=True
    ),
    "AWS::DynamoDB::Table": StandIn(
        "TableName",
        ref="{name}",
        arn_attribute="Arn",
        arn="arn:aws:dynamodb:{region}:{account}:table/{name}",
    ),
    "AWS::SQS::Queue": StandIn(
        "QueueName",
        ref="https://sqs.{region}.amazonaws.com/{account}/{name}",
        arn_attribute="Arn",
        arn="arn:aws:sqs:{region}:{account}:{name}",
        fifo_property="FifoQueue",
    ),
    # the execution role of plain CloudFormation templates: Role: !GetAtt MyRole.Arn
    "AWS::IAM::Role": StandIn(
        "RoleName",
        ref="{name}",
        arn_attribute="Arn",
        arn="arn:aws:iam::{account}:role/{name}",
    ),
    "AWS::SNS::Topic": StandIn(
        "TopicName",
        ref="arn:aws:sns:{region}:{account}:{name}",
        # a topic's ARN attribute is TopicArn; it has no Arn
        arn_attribute="TopicArn",
        arn="arn:aws:sns:{region}:{account}:{name}",
        fifo_property="FifoTopic",
    ),
}


def generated_name(stand_in: StandIn, stack: str, logical_id: str, fifo: bool) -> str:
    """The name used when the template gives none: ``<stack>-<LogicalId>``."""
    name = f"{stack}-{logical_id}"
    if stand_in.lowercase:
        name = name.lower()
    if fifo and stand_in.fifo_property:
        name += ".fifo"
    return name


@dataclass(frozen=True)
class Reference:
    """One use of a skipped resource in a property, and the value it was given."""

    resource: str  # the resource whose property refers
    field: str  # e.g. Environment.Variables.BUCKET
    target: str  # the skipped resource's logical ID
    type: str
    value: str

    def warning(self) -> str:
        return (
            f"{self.resource}.{self.field} refers to {self.target} ({self.type}), "
            f"which lambdalet does not deploy; using {self.value!r}"
        )

    def as_json(self) -> dict[str, str]:
        return {
            "logicalId": self.resource,
            "field": self.field,
            "target": self.target,
            "type": self.type,
            "value": self.value,
        }
