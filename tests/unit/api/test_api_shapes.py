"""Response shapes: values as AWS shows them, member names as botocore's model has them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from lambdalet.api import shapes
from lambdalet.api.arns import Scope
from lambdalet.model import FunctionRecord, LayerRef
from lambdalet.store.records import (
    AliasRecord,
    CodeBlob,
    EventInvokeConfig,
    LayerVersionRecord,
    Page,
    ProvisionedConfig,
)
from tests.unit.api.model_check import conforms, out_shape

SCOPE = Scope("us-east-1", "123456789012")


def record(**kw: Any) -> FunctionRecord:
    base: dict[str, Any] = dict(
        name="fn",
        version="$LATEST",
        arn="arn:aws:lambda:us-east-1:123456789012:function:fn",
        runtime="python3.12",
        handler="app.handler",
        role="arn:aws:iam::123456789012:role/r",
        memory_mb=128,
        timeout_s=3,
        ephemeral_mb=512,
        environment={},
        layers=(),
        code_dir=Path("/data/code/ab"),
        code_sha256="q83vEjRWeJA=",
        code_size=10,
        revision_id="rev",
        last_modified="2024-01-01T00:00:00.000+0000",
    )
    base.update(kw)
    return FunctionRecord(**base)


def test_pending_function_configuration() -> None:
    cfg = shapes.function_configuration(
        record(state="Pending", last_update_status="InProgress"), SCOPE
    )
    conforms(cfg, out_shape("CreateFunction"))
    assert cfg["State"] == "Pending" and cfg["StateReasonCode"] == "Creating"
    assert cfg["StateReason"] == "The function is being created."
    assert cfg["LastUpdateStatus"] == "InProgress"
    assert "Environment" not in cfg and "Layers" not in cfg


def test_active_function_configuration() -> None:
    rec = record(
        environment={"AB": "1"},
        layers=(LayerRef("arn:aws:lambda:us-east-1:123456789012:layer:l:1", 5, Path("/x")),),
        log_format="JSON",
        application_log_level="INFO",
        system_log_level="WARN",
        tags={"a": "b"},
    )
    cfg = shapes.function_configuration(rec, SCOPE)
    conforms(cfg, out_shape("GetFunctionConfiguration"))
    assert "StateReasonCode" not in cfg and "LastUpdateStatusReason" not in cfg
    assert cfg["Layers"] == [
        {"Arn": "arn:aws:lambda:us-east-1:123456789012:layer:l:1", "CodeSize": 5}
    ]
    assert cfg["Environment"] == {"Variables": {"AB": "1"}}
    assert cfg["LoggingConfig"] == {
        "LogFormat": "JSON",
        "LogGroup": "/aws/lambda/fn",
        "ApplicationLogLevel": "INFO",
        "SystemLogLevel": "WARN",
    }
    for key in (
        "FunctionName",
        "FunctionArn",
        "Runtime",
        "Role",
        "Handler",
        "CodeSize",
        "Description",
        "Timeout",
        "MemorySize",
        "LastModified",
        "CodeSha256",
        "Version",
        "TracingConfig",
        "RevisionId",
        "State",
        "LastUpdateStatus",
        "PackageType",
        "Architectures",
        "EphemeralStorage",
        "SnapStart",
        "RuntimeVersionConfig",
        "LoggingConfig",
    ):
        assert key in cfg
    got = shapes.get_function(rec, SCOPE, "http://h/lambdalet/code/ab.zip")
    conforms(got, out_shape("GetFunction"))
    assert got["Code"] == {"RepositoryType": "S3", "Location": "http://h/lambdalet/code/ab.zip"}
    assert got["Tags"] == {"a": "b"}
    listing = shapes.list_functions(Page((rec,), "fn"), SCOPE)
    conforms(listing, out_shape("ListFunctions"))
    assert listing["NextMarker"]


def test_code_sha256_hex() -> None:
    assert shapes.code_sha256_hex(record()) == "abcdef1234567890"


@pytest.fixture
def layer() -> LayerVersionRecord:
    return LayerVersionRecord(
        name="l",
        version=2,
        layer_arn="arn:aws:lambda:us-east-1:123456789012:layer:l",
        layer_version_arn="arn:aws:lambda:us-east-1:123456789012:layer:l:2",
        description="d",
        license_info=None,
        compatible_runtimes=("python3.12",),
        compatible_architectures=(),
        created_date="2024-01-01T00:00:00.000+0000",
        code=CodeBlob("ab", "qw==", 7, 9, Path("/x")),
    )


def test_layer_shapes(layer: LayerVersionRecord) -> None:
    pub = shapes.layer_version(layer, "http://h/z.zip")
    conforms(pub, out_shape("PublishLayerVersion"))
    conforms(pub, out_shape("GetLayerVersion"))
    assert pub["Content"] == {"Location": "http://h/z.zip", "CodeSha256": "qw==", "CodeSize": 7}
    assert pub["Version"] == 2 and "LicenseInfo" not in pub
    versions = shapes.list_layer_versions(Page((layer,), None))
    conforms(versions, out_shape("ListLayerVersions"))
    assert "NextMarker" not in versions
    layers = shapes.list_layers(Page((layer,), "l"))
    conforms(layers, out_shape("ListLayers"))
    assert layers["Layers"][0]["LatestMatchingVersion"]["Version"] == 2


def test_the_model_check_refuses_what_botocore_does_not_know() -> None:
    cfg = shapes.function_configuration(record(), SCOPE)
    with pytest.raises(AssertionError, match="Bogus is not in"):
        conforms({**cfg, "Bogus": 1}, out_shape("GetFunctionConfiguration"))
    with pytest.raises(AssertionError, match="not in enum"):
        conforms({**cfg, "State": "Sleeping"}, out_shape("GetFunctionConfiguration"))
    with pytest.raises(AssertionError):
        conforms({**cfg, "Timeout": "3"}, out_shape("GetFunctionConfiguration"))


def test_alias_qualified_function_arn() -> None:
    rec = record(version="2")
    cfg = shapes.function_configuration(rec, SCOPE, alias="live")
    assert cfg["FunctionArn"] == f"{rec.arn}:live" and cfg["Version"] == "2"
    got = shapes.get_function(rec, SCOPE, "http://h/x.zip", None, "live")
    assert got["Configuration"]["FunctionArn"] == f"{rec.arn}:live"
    assert shapes.function_configuration(rec, SCOPE)["FunctionArn"] == f"{rec.arn}:2"
    assert shapes.function_configuration(record(), SCOPE)["FunctionArn"] == rec.arn


def test_issue_4_shapes() -> None:
    alias = AliasRecord("fn", "live", "arn:a:live", "1", "d", {"2": 0.5}, "rev")
    conforms(shapes.alias_configuration(alias), out_shape("GetAlias"))
    listing = shapes.list_aliases(Page((alias,), "live"))
    conforms(listing, out_shape("ListAliases"))
    assert listing["NextMarker"]
    conforms(
        shapes.list_versions(Page((record(),), None), SCOPE), out_shape("ListVersionsByFunction")
    )
    eic = EventInvokeConfig("fn", "1", 0, 60, "arn:ok", None, 1_700_000_000.5)
    body = shapes.event_invoke_config(eic, "arn:fn")
    conforms(body, out_shape("PutFunctionEventInvokeConfig"))
    assert body["LastModified"] == 1_700_000_000.5  # a number, not a string
    assert body["DestinationConfig"] == {"OnSuccess": {"Destination": "arn:ok"}, "OnFailure": {}}
    conforms(
        shapes.list_event_invoke_configs(Page((eic,), "1"), "arn:fn"),
        out_shape("ListFunctionEventInvokeConfigs"),
    )
    pc = ProvisionedConfig("fn", "live", 3, "2024-01-01T00:00:00.000+0000")
    failed = shapes.provisioned_config(pc, 3, 1, "FAILED", "why", "arn:fn")
    conforms(
        {"ProvisionedConcurrencyConfigs": [failed]}, out_shape("ListProvisionedConcurrencyConfigs")
    )
    ready = shapes.provisioned_config(pc, 3, 3, "READY", None)
    conforms(ready, out_shape("PutProvisionedConcurrencyConfig"))
    assert "StatusReason" not in ready and "FunctionArn" not in ready
    conforms(shapes.account_settings(1000, 900, 10, 2), out_shape("GetAccountSettings"))
