"""``lambdalet deploy``: create or update layers and functions through the server's Lambda API.

Idempotent: a layer is published only when its zip differs from its latest version's, a
function's configuration and code are updated only when they differ from what the server has.
Functions are tagged with the deploy's stack; at the end, the stack's functions the template no
longer declares are deleted (:mod:`lambdalet.ops.stack`).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import io
import os
import stat
import time
import urllib.request
import zipfile
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from lambdalet.ops import build
from lambdalet.ops.deploy_events import apply_events
from lambdalet.ops.stack import STACK_TAG, owner_conflict, prune, stack_tags, tags_to_set
from lambdalet.ops.template import FunctionPlan, LayerPlan, PlanError, Template
from lambdalet.ops.template_events import api_specs, plan_events

Say = Callable[[str], None]

SKIPPED_DIRS = {
    "__pycache__",
    ".git",
    ".aws-sam",
    ".lambdalet-data",
    build.CACHE_DIR_NAME,
    ".venv",
    ".mypy_cache",
}
WAIT = {"Delay": 0.2, "MaxAttempts": 600}  # boto3 waiters: up to 2 minutes
PROVISIONED_WAIT_S = 300.0


class DeployError(Exception):
    """A deploy step failed; names the resource (logical ID) and what was being done."""

    def __init__(self, resource: str, step: str, message: str) -> None:
        self.resource = resource
        self.step = step
        super().__init__(f"{resource}: {step}: {message}")


@dataclass
class LayerResult:
    logicalId: str
    name: str
    arn: str
    action: str  # published | unchanged


@dataclass
class FunctionResult:
    logicalId: str
    name: str
    arn: str
    action: str  # created | updated | unchanged
    codeSha256: str
    changes: list[str] = field(default_factory=list)
    version: str | None = None
    alias: str | None = None
    provisionedConcurrency: int | None = None


@dataclass
class DeployResult:
    source: str
    layers: list[LayerResult]
    functions: list[FunctionResult]
    seconds: float = 0.0
    stack: str = ""
    deleted: list[str] = field(default_factory=list)  # functions the template dropped
    skipped: list[dict[str, str]] = field(default_factory=list)  # {logicalId, type}
    # uses of skipped resources: {logicalId, field, target, type, value}
    references: list[dict[str, str]] = field(default_factory=list)
    # triggers (ops/deploy_events.py): function URLs, SQS mappings, schedules, HTTP routes
    urls: list[dict[str, Any]] = field(default_factory=list)
    mappings: list[dict[str, Any]] = field(default_factory=list)
    schedules: list[dict[str, Any]] = field(default_factory=list)
    endpoints: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # what lambdalet does not act on

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


# --------------------------------------------------------------------------- zips


def _walk(root: Path, exclude: Iterable[Path]) -> list[Path]:
    excluded = {p.resolve() for p in exclude}
    out: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        d = Path(dirpath)
        dirnames[:] = sorted(
            n for n in dirnames if n not in SKIPPED_DIRS and (d / n).resolve() not in excluded
        )
        out.extend(d / n for n in sorted(filenames) if not n.endswith(".pyc"))
    return out


@dataclass(frozen=True)
class Tree:
    """A folder going into a zip under ``prefix`` (``""``: the zip's root)."""

    root: Path
    prefix: str = ""
    exclude: tuple[Path, ...] = ()


def zip_dir(root: Path, exclude: Iterable[Path] = ()) -> bytes:
    """The folder as a zip: sorted, fixed timestamps (same tree, same bytes), modes kept.

    A ``.zip`` file (e.g. a build's output) is used as it is.
    """
    if root.is_file() and root.suffix == ".zip":
        return root.read_bytes()
    return zip_trees([Tree(root, "", tuple(exclude))])


def zip_trees(trees: Iterable[Tree]) -> bytes:
    """Several folders in one zip; a later tree's file replaces an earlier one's (the
    function's code goes over its built dependencies, as ``sam build`` copies it)."""
    entries: dict[str, Path] = {}
    for tree in trees:
        if not tree.root.is_dir():
            raise FileNotFoundError(f"{tree.root} is not a folder")
        for path in _walk(tree.root, tree.exclude):
            name = path.relative_to(tree.root).as_posix()
            entries[f"{tree.prefix}/{name}" if tree.prefix else name] = path
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name in sorted(entries):
            path = entries[name]
            st = path.stat()
            info = zipfile.ZipInfo(name, (1980, 1, 1, 0, 0, 0))
            mode = 0o755 if st.st_mode & stat.S_IXUSR else 0o644
            info.external_attr = (stat.S_IFREG | mode) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, path.read_bytes())
    return buf.getvalue()


def zip_inline(code: str, runtime: str) -> bytes:
    """CloudFormation's ZipFile / SAM's InlineCode: one file, index.py or index.js."""
    name = "index.py" if runtime.startswith("python") else "index.js"
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        info = zipfile.ZipInfo(name, (1980, 1, 1, 0, 0, 0))
        info.external_attr = (stat.S_IFREG | 0o644) << 16
        zf.writestr(info, code)
    return buf.getvalue()


def sha256_b64(data: bytes) -> str:
    return base64.b64encode(hashlib.sha256(data).digest()).decode()


def function_zip(
    plan: FunctionPlan, layer_dirs: Iterable[Path] = (), deps: Path | None = None
) -> bytes:
    """The function's package: its code folder, over its built dependencies if any."""
    if plan.inline_code is not None:
        return zip_inline(plan.inline_code, plan.runtime)
    assert plan.code_dir is not None
    code = Path(plan.code_dir)
    if deps is None:
        return zip_dir(code, exclude=layer_dirs)
    exclude = tuple(layer_dirs)
    if plan.runtime.startswith("nodejs"):  # the built node_modules, not the source's
        exclude += (code / "node_modules",)
    return zip_trees([Tree(deps), Tree(code, "", exclude)])


def layer_zip(plan: LayerPlan, cache_root: Path, say: Say) -> bytes:
    """The layer's zip; with a BuildMethod, built as ``sam build`` does (``python/`` or
    ``nodejs/`` holding the source and its dependencies)."""
    content = Path(plan.content_dir)
    how = build.layer_build_runtime(plan.build_method)
    if how is None:
        if plan.build_method is not None:
            say(
                f"{plan.logical_id}: BuildMethod {plan.build_method} is not supported; "
                "ContentUri is published as it is"
            )
        return zip_dir(content)
    runtime, subdir = how
    manifest = build.find_manifest(runtime, content, subdir)
    trees: list[Tree] = []
    if manifest is not None:
        trees.append(Tree(build.build(manifest, cache_root, say, plan.logical_id)))
    exclude = (content / "node_modules",) if subdir == "nodejs" else ()
    trees.append(Tree(content, subdir, exclude))
    return zip_trees(trees)


def function_deps(plan: FunctionPlan, cache_root: Path, say: Say) -> Path | None:
    """Build the function's dependencies (requirements.txt, package.json); None: none."""
    if plan.code_dir is None:
        return None
    if plan.build_method is not None and plan.build_method not in (plan.runtime,):
        say(
            f"{plan.logical_id}: BuildMethod {plan.build_method} is not supported; "
            "dependencies are built as for its runtime"
        )
    runtime = build_runtime(plan.runtime)
    manifest = build.find_manifest(runtime, Path(plan.code_dir))
    if manifest is None:
        return None
    return build.build(manifest, cache_root, say, plan.logical_id)


def host_python_note(runtime: str) -> str | None:
    """When this host has no Python of a ``python3.X`` runtime: what the server will do."""
    from lambdalet.runtimes.python import RuntimeInstallError, is_python_runtime, select_python

    if not is_python_runtime(runtime):
        return None
    try:
        note = select_python(runtime).note
    except (ValueError, RuntimeInstallError):
        return None
    if note is None:
        return None
    return (
        f"{note.removeprefix('lambdalet: ')} (a server started with --python-fallback refuse "
        "rejects it instead)"
    )


def build_runtime(runtime: str) -> str:
    """The runtime dependencies are built for: the Python the function will run on here."""
    from lambdalet.runtimes.python import RuntimeInstallError, is_python_runtime, select_python

    if not is_python_runtime(runtime):
        return runtime
    try:
        selection = select_python(runtime)
    except (ValueError, RuntimeInstallError):
        return runtime
    return runtime if selection.note is None else f"python{selection.install.minor_str}"


# --------------------------------------------------------------------------- deploy


def _error(resource: str, step: str, e: Exception) -> DeployError:
    from botocore.exceptions import ClientError, WaiterError

    if isinstance(e, ClientError):
        err = e.response.get("Error", {})
        return DeployError(resource, step, f"{err.get('Code')}: {err.get('Message')}")
    if isinstance(e, WaiterError):
        last = e.last_response or {}
        reason = last.get("Configuration", last).get("StateReason") or last.get(
            "Configuration", last
        ).get("LastUpdateStatusReason")
        return DeployError(resource, step, f"{e}{f' ({reason})' if reason else ''}")
    return DeployError(resource, step, str(e))


class Rollback:
    """What a deploy changed, so a failure half-way puts the functions back as they were.

    Functions it created are deleted; functions it updated get their configuration, code and
    tags back.  Published layer versions and function versions stay (they are immutable and
    unused by the restored functions); pruning runs only after every function deployed.
    """

    def __init__(self, lam: Any, say: Say) -> None:
        self._lam = lam
        self._say = say
        self.created: list[str] = []
        #: name -> (configuration, code zip or None if unchanged, tags) before the deploy
        self.updated: dict[str, tuple[dict[str, Any], bytes | None, dict[str, str]]] = {}

    def remember(
        self, name: str, current: dict[str, Any], code_url: str | None, tags: dict[str, str]
    ) -> None:
        """Before the first change to an existing function."""
        if name in self.updated:
            return
        code = None
        if code_url:
            with urllib.request.urlopen(code_url, timeout=60) as r:
                code = r.read()
        self.updated[name] = (current, code, dict(tags))

    def run(self) -> None:
        lam, say = self._lam, self._say
        for name in reversed(self.created):
            say(f"rolling back: deleting function {name}")
            with contextlib.suppress(Exception):
                lam.delete_function(FunctionName=name)
        for name, (config, code, tags) in self.updated.items():
            say(f"rolling back: restoring function {name}")
            try:
                lam.update_function_configuration(FunctionName=name, **_restorable(config))
                lam.get_waiter("function_updated_v2").wait(FunctionName=name, WaiterConfig=WAIT)
                if code is not None:
                    lam.update_function_code(FunctionName=name, ZipFile=code)
                    lam.get_waiter("function_updated_v2").wait(FunctionName=name, WaiterConfig=WAIT)
                arn = config["FunctionArn"]
                now = lam.list_tags(Resource=arn).get("Tags", {})
                added = [k for k in now if k not in tags]
                if added:
                    lam.untag_resource(Resource=arn, TagKeys=added)
                changed = {k: v for k, v in tags.items() if now.get(k) != v}
                if changed:
                    lam.tag_resource(Resource=arn, Tags=changed)
            except Exception as e:  # keep restoring the others; say what could not be
                say(f"rolling back {name} failed: {e}")


def _restorable(config: dict[str, Any]) -> dict[str, Any]:
    """UpdateFunctionConfiguration arguments that give a function this configuration back."""
    return {
        "Runtime": config.get("Runtime"),
        "Handler": config.get("Handler"),
        "MemorySize": config.get("MemorySize"),
        "Timeout": config.get("Timeout"),
        "Environment": {"Variables": config.get("Environment", {}).get("Variables", {})},
        "Layers": [layer["Arn"] for layer in config.get("Layers", [])],
        "Description": config.get("Description", ""),
        "Role": config.get("Role"),
    }


def deploy(
    lam: Any, template: Template, source: str, say: Say, *, prune_dropped: bool = True
) -> DeployResult:
    """Publish changed layers, create or update every function, then delete dropped ones.

    Either every function deploys, or the functions are rolled back to what they were
    (:class:`Rollback`) and the error is raised.  ``source`` is the template's file name,
    next to ``template.base_dir``.
    """
    started = time.monotonic()
    stack = template.stack_name
    for lid in template.function_ids():  # refuse before changing anything
        _check_owner(lam, stack, lid, template.function_name(lid))
    layer_plans = template.layers()
    cache_root = Path(template.base_dir) / build.CACHE_DIR_NAME
    layer_results = [deploy_layer(lam, p, say, cache_root) for p in layer_plans]
    arns = {r.logicalId: r.arn for r in layer_results}
    fn_plans = template.functions(arns)
    for note in sorted({n for p in fn_plans if (n := host_python_note(p.runtime))}):
        say(f"warning: {note}")
    layer_dirs = [Path(p.content_dir) for p in layer_plans]
    path = str(Path(template.base_dir) / source)
    undo = Rollback(lam, say)
    try:
        fn_results = [
            deploy_function(
                lam,
                p,
                say,
                layer_dirs,
                stack_tags(stack, p.logical_id, path),
                cache_root,
                undo=undo,
            )
            for p in fn_plans
        ]
        events = plan_events(template)
        apis = api_specs(template, events)
        try:
            triggers = apply_events(lam, events, apis, stack, say)
        except PlanError:
            raise
        except Exception as e:
            raise _error(
                stack, "setting up triggers (URLs, queues, schedules, routes)", e
            ) from None
    except Exception:
        undo.run()
        raise
    deleted: list[str] = []
    if prune_dropped:
        try:
            deleted = prune(lam, stack, path, {p.name for p in fn_plans}, say)
        except Exception as e:
            raise _error(stack, "deleting functions the template no longer declares", e) from None
    return DeployResult(
        source,
        layer_results,
        fn_results,
        round(time.monotonic() - started, 3),
        stack=stack,
        deleted=deleted,
        skipped=[{"logicalId": lid, "type": t} for lid, t in template.skipped()],
        references=[r.as_json() for r in template.skipped_references()],
        urls=triggers["urls"],
        mappings=triggers["mappings"],
        schedules=triggers["schedules"],
        endpoints=triggers["endpoints"],
        notes=events.notes,
    )


def _check_owner(lam: Any, stack: str, lid: str, name: str) -> None:
    """A DeployError if the function exists and belongs to another stack."""
    try:
        tags = lam.get_function(FunctionName=name).get("Tags", {})
    except lam.exceptions.ResourceNotFoundException:
        return
    except Exception as e:
        raise _error(lid, "GetFunction", e) from None
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
        raise _error(lid, "PublishLayerVersion", e) from None
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
                lam.get_waiter("function_updated_v2").wait(FunctionName=name, WaiterConfig=WAIT)
            if code_changed and image_uri is not None:
                changes.append("Code")
                step = "UpdateFunctionCode"
                say(f"updating {name}: image {image_uri}")
                lam.update_function_code(FunctionName=name, ImageUri=image_uri)
                step = "waiting for LastUpdateStatus Successful"
                lam.get_waiter("function_updated_v2").wait(FunctionName=name, WaiterConfig=WAIT)
            elif code_changed:
                changes.append("Code")
                step = "UpdateFunctionCode"
                say(f"updating {name}: code ({_size(data)})")
                sent = time.monotonic()
                lam.update_function_code(FunctionName=name, ZipFile=data)
                _uploaded(say, name, data, sent)
                step = "waiting for LastUpdateStatus Successful"
                lam.get_waiter("function_updated_v2").wait(FunctionName=name, WaiterConfig=WAIT)
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
        raise _error(lid, step, e) from None
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
        raise _error(plan.logical_id, "AutoPublishAlias", e) from None
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
        raise _error(plan.logical_id, step, e) from None
    result.provisionedConcurrency = plan.provisioned_concurrency
