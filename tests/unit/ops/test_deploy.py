"""The deploy steps against a fake Lambda client: what is called when, and error naming."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from lambdalet.ops.deploy_common import DeployError
from lambdalet.ops.deploy_steps import deploy_function, deploy_layer
from lambdalet.ops.packaging import zip_dir
from lambdalet.ops.stack import stack_tags
from lambdalet.ops.template import FunctionPlan, LayerPlan, PlanError


class _NotFound(Exception):
    pass


class _Exceptions:
    ResourceNotFoundException = _NotFound
    ProvisionedConcurrencyConfigNotFoundException = _NotFound


class _Waiter:
    def wait(self, **kwargs: Any) -> None:
        pass


class FakeLambda:
    """Just enough of boto3's Lambda client; records the calls that change something."""

    exceptions = _Exceptions

    def __init__(self) -> None:
        self.functions: dict[str, dict[str, Any]] = {}
        self.layers: dict[str, list[str]] = {}
        self.calls: list[str] = []
        self.fail: str | None = None

    def _maybe_fail(self, op: str) -> None:
        if self.fail == op:
            raise ClientError(
                {"Error": {"Code": "InvalidParameterValueException", "Message": "bad Runtime"}},
                op,
            )

    def get_waiter(self, name: str) -> _Waiter:
        return _Waiter()

    def get_function(self, FunctionName: str) -> dict[str, Any]:
        if FunctionName not in self.functions:
            raise _NotFound(FunctionName)
        cfg = self.functions[FunctionName]
        return {"Configuration": cfg, "Tags": dict(cfg.get("Tags", {}))}

    def tag_resource(self, Resource: str, Tags: dict[str, str]) -> None:
        self.calls.append("tag")
        name = Resource.removeprefix("arn:fn:")
        self.functions[name]["Tags"] = {**self.functions[name].get("Tags", {}), **Tags}

    def create_function(self, **kw: Any) -> dict[str, Any]:
        self.calls.append("create")
        self._maybe_fail("CreateFunction")
        cfg = {k: v for k, v in kw.items() if k not in ("Code", "Publish")}
        cfg["Layers"] = [{"Arn": a} for a in kw["Layers"]]
        cfg["CodeSha256"] = _sha(kw["Code"]["ZipFile"])
        cfg["FunctionArn"] = f"arn:fn:{kw['FunctionName']}"
        self.functions[kw["FunctionName"]] = cfg
        return cfg

    def update_function_configuration(self, **kw: Any) -> None:
        self.calls.append("config")
        cfg = self.functions[kw["FunctionName"]]
        cfg.update({k: v for k, v in kw.items() if k != "Layers"})
        cfg["Layers"] = [{"Arn": a} for a in kw["Layers"]]

    def update_function_code(self, FunctionName: str, ZipFile: bytes) -> None:
        self.calls.append("code")
        self.functions[FunctionName]["CodeSha256"] = _sha(ZipFile)

    def get_function_concurrency(self, FunctionName: str) -> dict[str, Any]:
        return {}

    def list_layer_versions(self, LayerName: str) -> dict[str, Any]:
        shas = self.layers.get(LayerName, [])
        return {
            "LayerVersions": [
                {"Version": i + 1, "LayerVersionArn": f"arn:layer:{LayerName}:{i + 1}"}
                for i in range(len(shas))
            ]
        }

    def get_layer_version_by_arn(self, Arn: str) -> dict[str, Any]:
        name, version = Arn.split(":")[2:4]
        return {"Content": {"CodeSha256": self.layers[name][int(version) - 1]}}

    def publish_layer_version(self, **kw: Any) -> dict[str, Any]:
        self.calls.append("layer")
        shas = self.layers.setdefault(kw["LayerName"], [])
        shas.append(_sha(kw["Content"]["ZipFile"]))
        return {"Version": len(shas), "LayerVersionArn": f"arn:layer:{kw['LayerName']}:{len(shas)}"}


def _sha(data: bytes) -> str:
    from lambdalet.ops.packaging import sha256_b64

    return sha256_b64(data)


def _plan(code: Path, **kw: Any) -> FunctionPlan:
    return FunctionPlan(
        logical_id="Fn", name="fn", runtime="python3.11", handler="a.b", code_dir=code, **kw
    )


def test_create_then_unchanged_then_only_what_changed(tmp_path: Path) -> None:
    (tmp_path / "a.py").write_text("v = 1\n")
    lam, say = FakeLambda(), (lambda _m: None)
    assert deploy_function(lam, _plan(tmp_path), say).action == "created"
    assert deploy_function(lam, _plan(tmp_path), say).action == "unchanged"
    assert lam.calls == ["create"]
    r = deploy_function(lam, _plan(tmp_path, memory_mb=256), say)
    assert (r.action, r.changes, lam.calls[-1]) == ("updated", ["MemorySize"], "config")
    (tmp_path / "a.py").write_text("v = 2\n")
    r = deploy_function(lam, _plan(tmp_path, memory_mb=256), say)
    assert (r.changes, lam.calls[-1]) == (["Code"], "code")


def test_layers_are_published_only_when_their_content_changes(tmp_path: Path) -> None:
    (tmp_path / "python").mkdir()
    (tmp_path / "python" / "m.py").write_text("x = 1\n")
    lam, say = FakeLambda(), (lambda _m: None)
    plan = LayerPlan("L", "common", tmp_path)
    assert deploy_layer(lam, plan, say).arn == "arn:layer:common:1"
    assert deploy_layer(lam, plan, say).action == "unchanged"
    (tmp_path / "python" / "m.py").write_text("x = 2\n")
    second = deploy_layer(lam, plan, say)
    assert (second.action, second.arn) == ("published", "arn:layer:common:2")


def test_api_errors_name_the_resource_and_step(tmp_path: Path) -> None:
    lam = FakeLambda()
    lam.fail = "CreateFunction"
    with pytest.raises(DeployError) as err:
        deploy_function(lam, _plan(tmp_path), lambda _m: None)
    assert (err.value.resource, err.value.step) == ("Fn", "CreateFunction")
    assert "InvalidParameterValueException: bad Runtime" in str(err.value)


def test_missing_code_folder_names_the_field(tmp_path: Path) -> None:
    with pytest.raises(PlanError) as err:
        deploy_function(FakeLambda(), _plan(tmp_path / "nope"), lambda _m: None)
    assert (err.value.resource, err.value.field) == ("Fn", "CodeUri")


def test_a_zip_file_is_used_as_it_is(tmp_path: Path) -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("a.py", "x = 1")
    (tmp_path / "build.zip").write_bytes(buf.getvalue())
    assert zip_dir(tmp_path / "build.zip") == buf.getvalue()


def test_stack_tags_are_set_on_create_and_added_to_untagged_functions(tmp_path: Path) -> None:
    lam, say = FakeLambda(), (lambda _m: None)
    tags = stack_tags("shop", "Fn", "/p/template.yaml")
    deploy_function(lam, _plan(tmp_path), say, tags=tags)
    assert lam.functions["fn"]["Tags"] == tags and lam.calls == ["create"]
    assert deploy_function(lam, _plan(tmp_path), say, tags=tags).action == "unchanged"

    del lam.functions["fn"]["Tags"]  # deployed before stacks existed
    r = deploy_function(lam, _plan(tmp_path), say, tags=tags)
    assert (r.action, r.changes, lam.calls[-1]) == ("updated", ["Tags"], "tag")
    assert lam.functions["fn"]["Tags"] == tags


def test_a_function_of_another_stack_is_not_taken_over(tmp_path: Path) -> None:
    lam, say = FakeLambda(), (lambda _m: None)
    deploy_function(lam, _plan(tmp_path), say, tags=stack_tags("blog", "Fn", "/b/t.yaml"))
    with pytest.raises(DeployError) as err:
        deploy_function(lam, _plan(tmp_path, memory_mb=512), say, tags=stack_tags("shop", "F", "x"))
    assert (err.value.resource, err.value.step) == ("Fn", "stack")
    assert "belongs to stack 'blog'" in str(err.value)
    assert lam.calls == ["create"]  # nothing was changed
