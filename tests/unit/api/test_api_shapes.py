"""Response shapes: values as AWS shows them, member names as botocore's model has them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import botocore.session
import pytest

from lambdalet.api import shapes
from lambdalet.api.arns import Scope
from lambdalet.model import FunctionRecord, LayerRef
from lambdalet.store.records import CodeBlob, LayerVersionRecord, Page

SCOPE = Scope("us-east-1", "123456789012")
MODEL = botocore.session.get_session().get_service_model("lambda")


def conforms(value: Any, shape: Any, path: str = "") -> None:
    """Every member we send exists in the model with the right JSON type."""
    if shape.type_name == "structure":
        assert isinstance(value, dict), path
        for k, x in value.items():
            assert k in shape.members, f"{path}.{k} is not in {shape.name}"
            conforms(x, shape.members[k], f"{path}.{k}")
    elif shape.type_name == "list":
        assert isinstance(value, list), path
        for i, x in enumerate(value):
            conforms(x, shape.member, f"{path}[{i}]")
    elif shape.type_name == "map":
        assert isinstance(value, dict) and all(isinstance(x, str) for x in value.values()), path
    elif shape.type_name in ("integer", "long"):
        assert isinstance(value, int) and not isinstance(value, bool), path
    elif shape.type_name == "string":
        assert isinstance(value, str), path
        if shape.enum:
            assert value in shape.enum, f"{path}={value!r} not in enum"
    elif shape.type_name == "boolean":
        assert isinstance(value, bool), path


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


def out_shape(op: str) -> Any:
    return MODEL.operation_model(op).output_shape


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
