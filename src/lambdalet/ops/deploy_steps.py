"""One layer or one function brought to its plan through the Lambda API: published,
created or updated only where it differs, then its concurrency and alias."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lambdalet.ops import build
from lambdalet.ops.deploy_common import (
    WAIT,
    DeployError,
    FunctionResult,
    LayerResult,
    Say,
    deploy_error,
    wait_updated,
)
from lambdalet.ops.packaging import function_deps, function_zip, layer_zip, sha256_b64
from lambdalet.ops.stack import STACK_TAG, owner_conflict, tags_to_set
from lambdalet.ops.template import FunctionPlan, LayerPlan, PlanError

if TYPE_CHECKING:
    from lambdalet.ops.rollback import Rollback


PROVISIONED_WAIT_S = 300.0


def check_owner(lam: Any, stack: str, lid: str, name: str) -> None:
    """A DeployError if the function exists and belongs to another stack."""
    try:
        tags = lam.get_function(FunctionName=name).get("Tags", {})
    except lam.exceptions.ResourceNotFoundException:
        return
    except Exception as e:
        raise deploy_error(lid, "GetFunction", e) from None
    conflict = owner_conflict(stack, name, tags)
    if conflict is not None:
        raise DeployError(lid, "stack", conflict)


def deploy_layer(
    lam: Any, plan: LayerPlan, say: Say, cache_root: Path | None = None
) -> LayerResult:
    lid = plan.logical_id
    cache_root = cache_root or Path(plan.content_dir).parent / build.CACHE_DIR_NAME
    try:
        data = layer_zip(plan, cache_root, say)
    except OSError as e:
        raise PlanError(lid, "ContentUri", str(e)) from None
    except build.BuildError as e:
        raise DeployError(lid, "building dependencies", str(e)) from None
    sha = sha256_b64(data)
    try:
        versions = lam.list_layer_versions(LayerName=plan.name).get("LayerVersions", [])
        if versions:
            latest = max(versions, key=lambda v: int(v["Version"]))
            got = lam.get_layer_version_by_arn(Arn=latest["LayerVersionArn"])
            if got.get("Content", {}).get("CodeSha256") == sha:
                return LayerResult(lid, plan.name, latest["LayerVersionArn"], "unchanged")
        say(f"publishing layer {plan.name} ({len(data) / 1024:.1f} KiB)")
        kwargs: dict[str, Any] = {"LayerName": plan.name, "Content": {"ZipFile": data}}
        if plan.compatible_runtimes:
            kwargs["CompatibleRuntimes"] = list(plan.compatible_runtimes)
        if plan.description:
            kwargs["Description"] = plan.description
        out = lam.publish_layer_version(**kwargs)
    except Exception as e:
        raise deploy_error(lid, "PublishLayerVersion", e) from None
    say(f"layer {plan.name} is version {out['Version']}")
    return LayerResult(lid, plan.name, out["LayerVersionArn"], "published")


def _image_changed(lam: Any, name: str, uri: str, sha: str, current: dict[str, Any]) -> bool:
    """A built image changed when its digest did; a named one when its ImageUri did."""
    if sha != uri:
        return bool(current.get("CodeSha256") != sha)
    code = lam.get_function(FunctionName=name).get("Code", {})
    return bool(code.get("ImageUri") != uri)


def _config_changes(current: dict[str, Any], plan: FunctionPlan) -> list[str]:
    wanted = plan.configuration()
    have = {
        "Runtime": current.get("Runtime"),
        "Handler": current.get("Handler"),
        "MemorySize": current.get("MemorySize"),
        "Timeout": current.get("Timeout"),
        "Environment": {"Variables": current.get("Environment", {}).get("Variables", {})},
        "Layers": [layer["Arn"] for layer in current.get("Layers", [])],
        "Description": current.get("Description", ""),
        "Role": current.get("Role"),
        "ImageConfig": current.get("ImageConfigResponse", {}).get("ImageConfig"),
    }
    return [k for k in wanted if wanted[k] != have[k]]


def _image_code(lam: Any, plan: FunctionPlan, say: Say, stack: str) -> tuple[str, str | None]:
    """(ImageUri, CodeSha256 it will have, when known) of an image function: built from
    its Metadata and uploaded to the server, or the ImageUri the template names."""
    from lambdalet.ops.images import BuildError, build_and_upload

    if plan.docker is None:
        assert plan.image_uri is not None
        return plan.image_uri, None
    say(f"building image of {plan.name} ({plan.docker.dockerfile} in {plan.docker.context})")
    try:
        built = build_and_upload(lam.meta.endpoint_url, plan, stack)
    except BuildError as e:
        raise DeployError(plan.logical_id, "building the image", str(e)) from None
    return built.image_uri, built.digest.removeprefix("sha256:")


def deploy_function(
    lam: Any,
    plan: FunctionPlan,
    say: Say,
    layer_dirs: Iterable[Path] = (),
    tags: dict[str, str] | None = None,
    cache_root: Path | None = None,
    *,
    undo: Rollback | None = None,
) -> FunctionResult:
    """Create or update the function; ``tags`` (its stack's) are set on it either way."""
    lid, name = plan.logical_id, plan.name
    image_uri: str | None = None
    if plan.package_type == "Image":
        image_uri, image_sha = _image_code(lam, plan, say, (tags or {}).get(STACK_TAG, ""))
        data = b""
        sha = image_sha or image_uri
    else:
        try:
            deps = None
            if cache_root is not None:
                deps = function_deps(plan, cache_root, say)
            data = function_zip(plan, layer_dirs, deps)
        except OSError as e:
            raise PlanError(lid, "CodeUri", str(e)) from None
        except build.BuildError as e:
            raise DeployError(lid, "building dependencies", str(e)) from None
        sha = sha256_b64(data)
    step = "GetFunction"
    try:
        try:
            got = lam.get_function(FunctionName=name)
            current, current_tags = got["Configuration"], got.get("Tags", {})
            code_url = got.get("Code", {}).get("Location")
        except lam.exceptions.ResourceNotFoundException:
            current, current_tags, code_url = None, {}, None
        conflict = owner_conflict(tags[STACK_TAG], name, current_tags) if tags else None
        if conflict is not None:
            raise DeployError(lid, "stack", conflict)
        changes: list[str] = []
        if current is None:
            step = "CreateFunction"
            extra: dict[str, Any] = {"Tags": tags} if tags else {}
            if image_uri is not None:
                say(f"creating function {name} (image {image_uri})")
                extra |= {"Code": {"ImageUri": image_uri}, "PackageType": "Image"}
            else:
                say(f"creating function {name} ({_size(data)})")
                extra["Code"] = {"ZipFile": data}
            sent = time.monotonic()
            out = lam.create_function(
                FunctionName=name,
                Publish=False,
                **plan.configuration(),
                **extra,
            )
            _uploaded(say, name, data, sent)
            arn = out["FunctionArn"]
            if undo is not None:
                undo.created.append(name)
            say(f"waiting for {name} to be Active")
            step = "waiting for State Active"
            lam.get_waiter("function_active_v2").wait(FunctionName=name, WaiterConfig=WAIT)
            action = "created"
        else:
            arn = current["FunctionArn"]
            changes = _config_changes(current, plan)
            if image_uri is not None:
                code_changed = _image_changed(lam, name, image_uri, sha, current)
            else:
                code_changed = current.get("CodeSha256") != sha
            if undo is not None and (
                changes or code_changed or tags_to_set(current_tags, tags or {})
            ):
                step = "saving the function's state for a rollback"
                # an image function's code is not restored by a rollback (its image stays)
                keep_code = code_changed and image_uri is None
                undo.remember(name, current, code_url if keep_code else None, current_tags)
            if changes:
                step = "UpdateFunctionConfiguration"
                say(f"updating {name}: {', '.join(changes)}")
                lam.update_function_configuration(FunctionName=name, **plan.configuration())
                step = "waiting for LastUpdateStatus Successful"
                wait_updated(lam, name)
            if code_changed and image_uri is not None:
                changes.append("Code")
                step = "UpdateFunctionCode"
                say(f"updating {name}: image {image_uri}")
                lam.update_function_code(FunctionName=name, ImageUri=image_uri)
                step = "waiting for LastUpdateStatus Successful"
                wait_updated(lam, name)
            elif code_changed:
                changes.append("Code")
                step = "UpdateFunctionCode"
                say(f"updating {name}: code ({_size(data)})")
                sent = time.monotonic()
                lam.update_function_code(FunctionName=name, ZipFile=data)
                _uploaded(say, name, data, sent)
                step = "waiting for LastUpdateStatus Successful"
                wait_updated(lam, name)
            missing = tags_to_set(current_tags, tags or {})
            if missing:
                changes.append("Tags")
                step = "TagResource"
                if STACK_TAG in missing:
                    say(f"adding {name} to stack {missing[STACK_TAG]}")
                lam.tag_resource(Resource=arn, Tags=missing)
            action = "updated" if changes else "unchanged"
        result = FunctionResult(lid, name, arn, action, sha, changes)
        step = "PutFunctionConcurrency"
        _reserved(lam, plan)
        if plan.alias is not None:
            _alias(lam, plan, sha, result, say)
    except DeployError:
        raise
    except Exception as e:
        raise deploy_error(lid, step, e) from None
    return result


#: uploads from this size on say how long they took
LARGE_UPLOAD = 1024 * 1024


def _size(data: bytes) -> str:
    n = len(data)
    return f"{n / 1024 / 1024:.1f} MiB" if n >= LARGE_UPLOAD else f"{n / 1024:.1f} KiB"


def _uploaded(say: Say, name: str, data: bytes, sent: float) -> None:
    if len(data) >= LARGE_UPLOAD:
        took = max(time.monotonic() - sent, 1e-3)
        say(
            f"{name}: {_size(data)} uploaded and unpacked in {took:.1f} s "
            f"({len(data) / 1024 / 1024 / took:.1f} MiB/s)"
        )


def _reserved(lam: Any, plan: FunctionPlan) -> None:
    have = lam.get_function_concurrency(FunctionName=plan.name).get("ReservedConcurrentExecutions")
    if plan.reserved_concurrency is None:
        if have is not None:
            lam.delete_function_concurrency(FunctionName=plan.name)
    elif have != plan.reserved_concurrency:
        lam.put_function_concurrency(
            FunctionName=plan.name, ReservedConcurrentExecutions=plan.reserved_concurrency
        )


def _alias(lam: Any, plan: FunctionPlan, sha: str, result: FunctionResult, say: Say) -> None:
    from botocore.exceptions import ClientError

    assert plan.alias is not None
    name, alias = plan.name, plan.alias
    try:
        version = lam.publish_version(FunctionName=name, CodeSha256=sha)["Version"]
        lam.get_waiter("published_version_active").wait(
            FunctionName=name, Qualifier=version, WaiterConfig=WAIT
        )
        try:
            current = lam.get_alias(FunctionName=name, Name=alias)
        except lam.exceptions.ResourceNotFoundException:
            current = None
        if current is None:
            say(f"alias {name}:{alias} -> version {version}")
            lam.create_alias(FunctionName=name, Name=alias, FunctionVersion=version)
        elif current["FunctionVersion"] != version:
            say(f"alias {name}:{alias} -> version {version}")
            lam.update_alias(FunctionName=name, Name=alias, FunctionVersion=version)
    except Exception as e:
        raise deploy_error(plan.logical_id, "AutoPublishAlias", e) from None
    result.version, result.alias = version, alias
    step = "ProvisionedConcurrencyConfig"
    try:
        if plan.provisioned_concurrency is None:
            with contextlib.suppress(ClientError):
                lam.delete_provisioned_concurrency_config(FunctionName=name, Qualifier=alias)
            return
        have = None
        with contextlib.suppress(lam.exceptions.ProvisionedConcurrencyConfigNotFoundException):
            have = lam.get_provisioned_concurrency_config(FunctionName=name, Qualifier=alias)
        if have is None or have.get("RequestedProvisionedConcurrentExecutions") != (
            plan.provisioned_concurrency
        ):
            lam.put_provisioned_concurrency_config(
                FunctionName=name,
                Qualifier=alias,
                ProvisionedConcurrentExecutions=plan.provisioned_concurrency,
            )
        n = plan.provisioned_concurrency
        deadline = time.monotonic() + PROVISIONED_WAIT_S
        said = False
        while True:
            got = lam.get_provisioned_concurrency_config(FunctionName=name, Qualifier=alias)
            if got["Status"] == "READY":
                break
            if not said:
                say(f"waiting for {n} provisioned environments of {name}:{alias}")
                said = True
            if got["Status"] == "FAILED":
                raise DeployError(
                    plan.logical_id, step, f"FAILED: {got.get('StatusReason', 'no reason given')}"
                )
            if time.monotonic() > deadline:
                raise DeployError(plan.logical_id, step, f"still {got['Status']} after 300 s")
            time.sleep(0.2)
    except DeployError:
        raise
    except Exception as e:
        raise deploy_error(plan.logical_id, step, e) from None
    result.provisionedConcurrency = plan.provisioned_concurrency
