"""Container image functions end to end: a real registry (docker-registry on loopback),
real images (buildah, FROM scratch + a static probe runtime), the real server and boto3."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.integration.harness import Server, free_port, invoke, require_sandbox, unique
from tests.integration.images.tools import (
    Builder,
    Registry,
    TokenServer,
    build_probe,
    docker_config,
    manifest_digest,
    require_image_tools,
)
from tests.needs import NO_IMAGES, rootless_lacks

pytestmark = pytest.mark.integration

ROLE = "arn:aws:iam::123456789012:role/lambda-role"

PROBE_DOCKERFILE = """\
FROM scratch
COPY probe /bin/probe
ENV FOO=from-image PATH=/bin SHARED=image LANG=C.image
WORKDIR /work
ENTRYPOINT ["/bin/probe"]
CMD ["app.handler"]
"""


@dataclass
class Env:
    server: Server
    lam: Any
    registry: Registry
    builder: Builder
    probe: Path
    auth_file: Path  # the server's --registry-auth-file (Docker's config.json format)

    def push(
        self,
        repo_tag: str,
        dockerfile: str,
        compression: str = "gzip",
        **extra: Path | bytes,
    ) -> str:
        """Build and push ``repo_tag`` to the registry; returns its ImageUri."""
        local = f"localhost/{repo_tag}"
        self.builder.build(local, dockerfile, {"probe": self.probe, **extra})
        uri = f"{self.registry.host}/{repo_tag}"
        self.builder.push(local, uri, compression=compression)
        return uri


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    require_sandbox()
    rootless_lacks(NO_IMAGES)
    require_image_tools()
    base = tmp_path_factory.mktemp("images")
    registry = Registry(base / "registry", free_port())
    registry.start()
    auth_file = base / "docker-config.json"
    auth_file.write_text('{"auths": {}}')
    server = Server(base / "data", free_port(), extra_args=("--registry-auth-file", str(auth_file)))
    try:
        server.start()
        yield Env(
            server,
            server.client(),
            registry,
            Builder(base / "buildah"),
            build_probe(base),
            auth_file,
        )
    finally:
        if server.proc is not None and server.proc.poll() is None:
            server.stop()
        registry.stop()


def wait_settled(lam: Any, name: str, timeout_s: float = 120) -> dict[str, Any]:
    """The configuration once the image is pulled (or failed to be)."""
    deadline = time.monotonic() + timeout_s
    while True:
        cfg: dict[str, Any] = lam.get_function_configuration(FunctionName=name)
        if cfg["State"] != "Pending" and cfg["LastUpdateStatus"] != "InProgress":
            return cfg
        assert time.monotonic() < deadline, cfg
        time.sleep(0.1)


def create_image_function(env: Env, uri: str, **kwargs: Any) -> tuple[str, dict[str, Any]]:
    name = unique("img")
    created = env.lam.create_function(
        FunctionName=name, Role=ROLE, PackageType="Image", Code={"ImageUri": uri}, **kwargs
    )
    return name, created


def probe(env: Env, name: str, event: Any = None) -> dict[str, Any]:
    r = invoke(env.lam, name, event or {"ping": 1})
    assert r.function_error is None, (r.payload, r.log, env.server.log_tail())
    out: dict[str, Any] = r.json()
    return out


def test_create_and_invoke_an_image_function(env: Env) -> None:
    uri = env.push("probe:v1", PROBE_DOCKERFILE)
    digest = manifest_digest(uri)
    name, created = create_image_function(
        env,
        uri,
        Environment={
            "Variables": {"BAR": "from-function", "SHARED": "function", "LANG": "C.function"}
        },
        MemorySize=256,
    )
    assert created["PackageType"] == "Image"
    assert created["State"] == "Pending"
    assert created["CodeSha256"] == digest.removeprefix("sha256:")
    assert "Runtime" not in created and "Handler" not in created
    assert wait_settled(env.lam, name)["State"] == "Active"

    got = env.lam.get_function(FunctionName=name)
    assert got["Code"] == {
        "RepositoryType": "ECR",
        "ImageUri": uri,
        "ResolvedImageUri": f"{env.registry.host}/probe@{digest}",
    }
    seen = probe(env, name, {"hello": "image"})
    assert seen["event"] == {"hello": "image"}
    assert seen["argv"] == ["/bin/probe", "app.handler"]
    assert seen["cwd"] == "/work"
    assert (seen["uid"], seen["gid"]) == (993, 990)  # sbx_user1051, as Lambda
    assert seen["tmpWritable"] is True and seen["rootWritable"] is False
    e = seen["env"]
    assert e["FOO"] == "from-image" and e["PATH"] == "/bin"
    assert e["BAR"] == "from-function" and e["SHARED"] == "function"
    # Lambda's defaults (PATH, LANG, TZ, ...) < the image's ENV < the function's variables
    assert e["LANG"] == "C.function" and e["TZ"] == ":UTC"
    assert e["AWS_LAMBDA_FUNCTION_NAME"] == name
    assert e["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"] == "256"
    assert e["AWS_LAMBDA_RUNTIME_API"] == "169.254.100.1:9001"
    assert "_HANDLER" not in e
    assert seen["extension"] is False
    # warm: the same environment answers again
    assert probe(env, name)["event"] == {"ping": 1}
    # pinned by digest (with or without its tag): the same image
    for pinned in (f"{uri}@{digest}", f"{env.registry.host}/probe@{digest}"):
        _, again = create_image_function(env, pinned)
        assert again["CodeSha256"] == digest.removeprefix("sha256:")


def test_image_config_overrides_and_code_update(env: Env) -> None:
    uri = env.push("probe:v1", PROBE_DOCKERFILE)
    name, created = create_image_function(
        env,
        uri,
        ImageConfig={
            "EntryPoint": ["/bin/probe", "--flag"],
            "Command": ["other.handler"],
            "WorkingDirectory": "/tmp",
        },
    )
    assert created["ImageConfigResponse"]["ImageConfig"]["Command"] == ["other.handler"]
    wait_settled(env.lam, name)
    seen = probe(env, name)
    assert seen["argv"] == ["/bin/probe", "--flag", "other.handler"]
    assert seen["cwd"] == "/tmp"

    env.lam.update_function_configuration(FunctionName=name, ImageConfig={"Command": ["x.y"]})
    wait_settled(env.lam, name)
    assert probe(env, name)["argv"] == ["/bin/probe", "x.y"]

    # v2's layers are zstd-compressed
    v2 = env.push("probe:v2", PROBE_DOCKERFILE + "ENV VERSION=2\n", compression="zstd")
    updated = env.lam.update_function_code(FunctionName=name, ImageUri=v2)
    assert updated["CodeSha256"] == manifest_digest(v2).removeprefix("sha256:")
    assert wait_settled(env.lam, name)["LastUpdateStatus"] == "Successful"
    assert probe(env, name)["env"]["VERSION"] == "2"


#: the layout of AWS's base images (public.ecr.aws/lambda/*), which this host cannot pull:
#: /lambda-entrypoint.sh takes the handler as its one argument and starts the runtime
#: interface emulator unless AWS_LAMBDA_RUNTIME_API is set
BASE_IMAGE_DOCKERFILE = """\
FROM scratch
COPY busybox /bin/busybox
COPY probe /var/runtime/bootstrap
COPY lambda-entrypoint.sh /lambda-entrypoint.sh
ENV LANG=en_US.UTF-8 TZ=:/etc/localtime PATH=/var/lang/bin:/usr/local/bin:/usr/bin/:/bin \\
    LAMBDA_TASK_ROOT=/var/task LAMBDA_RUNTIME_DIR=/var/runtime
WORKDIR /var/task
ENTRYPOINT ["/lambda-entrypoint.sh"]
CMD ["app.handler"]
"""
ENTRYPOINT_SH = b"""#!/bin/busybox sh
if [ $# -ne 1 ]; then
  echo "entrypoint requires the handler name to be the first argument" 1>&2
  exit 142
fi
export _HANDLER="$1"
if [ -z "${AWS_LAMBDA_RUNTIME_API}" ]; then
  exec /usr/local/bin/aws-lambda-rie /var/runtime/bootstrap
else
  exec /var/runtime/bootstrap
fi
"""


def test_an_image_laid_out_like_the_aws_base_images(env: Env, tmp_path: Path) -> None:
    script = tmp_path / "lambda-entrypoint.sh"
    script.write_bytes(ENTRYPOINT_SH)
    script.chmod(0o755)
    busybox = Path(shutil.which("busybox") or "/bin/busybox")
    uri = env.push(
        "base-like:v1",
        BASE_IMAGE_DOCKERFILE,
        busybox=busybox,
        **{"lambda-entrypoint.sh": script},
    )
    name, _ = create_image_function(env, uri)
    wait_settled(env.lam, name)
    seen = probe(env, name)
    assert seen["argv"] == ["/var/runtime/bootstrap"]  # the entrypoint exec'd the runtime
    assert seen["env"]["_HANDLER"] == "app.handler"
    assert seen["cwd"] == "/var/task"
    assert seen["env"]["LAMBDA_TASK_ROOT"] == "/var/task"
    # two arguments: the entrypoint refuses, as AWS's does, and Init fails
    env.lam.update_function_configuration(
        FunctionName=name, ImageConfig={"Command": ["a.b", "extra"]}
    )
    wait_settled(env.lam, name)
    r = invoke(env.lam, name)
    assert r.function_error == "Unhandled"
    assert r.json()["errorType"] == "Runtime.ExitError"
    assert "entrypoint requires the handler name" in r.log
    # the exit ended Init at once (not at the 10 s Init limit), though the runtime exited
    # before its spawn had even returned
    log = (env.server.data_dir / "logs" / f"{name}.log").read_text()
    assert "Phase: init\tStatus: error\tError Type: Runtime.ExitError" in log, log


LAYERED_DOCKERFILE = """\
FROM scratch
COPY busybox /bin/busybox
COPY probe /bin/probe
RUN ["/bin/busybox", "sh", "-c", "mkdir -p /gone /opaque && touch /gone/f /opaque/old /kept"]
RUN ["/bin/busybox", "sh", "-c", "rm -rf /gone /opaque && mkdir /opaque && touch /opaque/new"]
ENTRYPOINT ["/bin/probe"]
"""


def test_layers_apply_in_order_with_whiteouts(env: Env) -> None:
    # the last RUN's layer holds the whiteouts .wh.gone and opaque/.wh.old
    busybox = Path(shutil.which("busybox") or "/bin/busybox")
    uri = env.push("layered:v1", LAYERED_DOCKERFILE, busybox=busybox)
    name, _ = create_image_function(env, uri)
    wait_settled(env.lam, name)
    expected = {"/kept": True, "/gone": False, "/opaque/old": False, "/opaque/new": True}
    for path, there in expected.items():
        assert probe(env, name, {"exists": path})["exists"] is there, path


def test_extension_in_the_image_and_a_timeout(env: Env) -> None:
    dockerfile = PROBE_DOCKERFILE + "COPY probe /opt/extensions/probe-ext\n"
    uri = env.push("probe-ext:v1", dockerfile)
    name, _ = create_image_function(env, uri, Timeout=1)
    wait_settled(env.lam, name)
    seen = probe(env, name)
    assert seen["extension"] is True
    # the lifecycle is the zip functions': a timeout resets the environment (Init again,
    # extension included, in the same sandbox), and the next invoke is answered
    timed_out = invoke(env.lam, name, {"sleep": 1})
    assert timed_out.function_error == "Unhandled"
    assert timed_out.json()["errorType"] == "Sandbox.Timedout"
    again = probe(env, name)
    assert again["extension"] is True and again["event"] == {"ping": 1}


def test_refused_requests(env: Env) -> None:
    lam = env.lam
    uri = env.push("probe:v1", PROBE_DOCKERFILE)

    def error_of(**kwargs: Any) -> tuple[str, str]:
        with pytest.raises(lam.exceptions.ClientError) as e:
            lam.create_function(FunctionName=unique("bad"), Role=ROLE, **kwargs)
        err = e.value.response["Error"]
        return err["Code"], err["Message"]

    code, msg = error_of(PackageType="Image", Code={"ImageUri": uri}, Runtime="python3.12")
    assert code == "InvalidParameterValueException"
    assert msg == (
        "Please don't provide Handler or Runtime or Layer when the intended function "
        "PackageType is Image."
    )
    missing = f"{env.registry.host}/probe:nope"
    code, msg = error_of(PackageType="Image", Code={"ImageUri": missing})
    assert (code, msg) == (
        "InvalidParameterValueException",
        f"Source image {missing} does not exist. Provide a valid source image.",
    )
    code, msg = error_of(PackageType="Image", Code={"ImageUri": "no-registry-or-tag"})
    assert msg == "Source image no-registry-or-tag is not valid. Provide a valid source image."

    zip_fn = unique("zip")
    lam.create_function(
        FunctionName=zip_fn,
        Role=ROLE,
        Runtime="provided.al2023",
        Handler="x",
        Code={"ZipFile": b"PK\x05\x06" + b"\0" * 18},
    )
    wait_settled(lam, zip_fn)
    with pytest.raises(lam.exceptions.InvalidParameterValueException):
        lam.update_function_code(FunctionName=zip_fn, ImageUri=uri)


def test_corrupt_image_fails_the_function(env: Env) -> None:
    # a layer of its own (a layer other images share is already in the server's store,
    # and skopeo does not fetch it again)
    uri = env.push("corrupt:v1", PROBE_DOCKERFILE + "COPY probe /bin/corrupt\n")
    manifest = json.loads(env.registry.blob_path(manifest_digest(uri)).read_bytes())
    layer = env.registry.blob_path(manifest["layers"][-1]["digest"])
    layer.write_bytes(b"not the layer it claims to be")
    name, _ = create_image_function(env, uri)
    cfg = wait_settled(env.lam, name)
    assert cfg["State"] == "Failed"
    assert cfg["StateReasonCode"] == "InvalidImage"
    assert cfg["LastUpdateStatus"] == "Failed"
    with pytest.raises(env.lam.exceptions.ResourceConflictException) as e:
        env.lam.invoke(FunctionName=name, Payload=b"{}")
    assert "Failed" in e.value.response["Error"]["Message"]


SAM_TEMPLATE = """\
AWSTemplateFormatVersion: '2010-09-09'
Transform: AWS::Serverless-2016-10-31
Globals:
  Function:
    Timeout: 10
Resources:
  ImgFunction:
    Type: AWS::Serverless::Function
    Properties:
      PackageType: Image
      FunctionName: {name}
      ImageConfig:
        Command: ["sam.handler"]
    Metadata:
      Dockerfile: Dockerfile
      DockerContext: ./img
      DockerTag: v1
      DockerBuildArgs:
        GREETING: {greeting}
"""

SAM_DOCKERFILE = """\
FROM scratch
ARG GREETING
COPY probe /bin/probe
ENV GREETING=$GREETING
ENTRYPOINT ["/bin/probe"]
CMD ["ignored.handler"]
"""


def lambdalet_cli(env: Env, *args: str, endpoint: bool = True) -> str:
    import os
    import subprocess
    import sys

    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "lambdalet.cli",
            *args,
            *(["--endpoint", env.server.url] if endpoint else []),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "LAMBDALET_BUILDAH_ROOT": str(env.builder.root)},
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_sam_image_function_built_from_its_dockerfile(
    env: Env, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.integration.test_ops_cli import Watcher

    name = unique("sam-img")
    proj = tmp_path / "samimg"
    (proj / "img").mkdir(parents=True)
    (proj / "img" / "Dockerfile").write_text(SAM_DOCKERFILE)
    (proj / "img" / "probe").write_bytes(env.probe.read_bytes())
    (proj / "img" / "probe").chmod(0o755)
    (proj / "template.yaml").write_text(SAM_TEMPLATE.format(name=name, greeting="hello"))
    lambdalet_cli(env, "deploy", str(proj), "--json")
    got = env.lam.get_function(FunctionName=name)
    assert got["Configuration"]["PackageType"] == "Image"
    assert got["Code"]["ImageUri"] == "lambdalet.local/samimg/imgfunction:v1"
    seen = probe(env, name)
    assert seen["env"]["GREETING"] == "hello"
    assert seen["argv"] == ["/bin/probe", "sam.handler"]

    # a changed build argument is a new image: the redeploy updates the code
    (proj / "template.yaml").write_text(SAM_TEMPLATE.format(name=name, greeting="again"))
    summary = json.loads(lambdalet_cli(env, "deploy", str(proj), "--json"))
    assert summary["functions"][0]["changes"] == ["Code"], summary
    assert probe(env, name)["env"]["GREETING"] == "again"

    # --watch: unchanged at first (the same inputs build the same image), then a change in
    # the Docker context rebuilds it
    monkeypatch.setenv("LAMBDALET_BUILDAH_ROOT", str(env.builder.root))
    watcher = Watcher(env.server, proj)
    try:
        first = watcher.next_deploy()
        assert first["functions"][0]["action"] == "unchanged", first
        watcher.wait_watching()
        (proj / "img" / "Dockerfile").write_text(SAM_DOCKERFILE + "ENV WATCHED=yes\n")
        rebuilt = watcher.next_deploy()
        assert rebuilt["functions"][0]["changes"] == ["Code"], rebuilt
    finally:
        assert watcher.stop() == 0, "".join(watcher.errors)
    assert probe(env, name)["env"]["WATCHED"] == "yes"

    # the first build's image is used by no version any more: it was pruned
    data = ["--data-dir", str(env.server.data_dir)]
    listed = json.loads(lambdalet_cli(env, "images", "--json", *data, endpoint=False))
    digests = {row["digest"] for row in listed}
    current = "sha256:" + env.lam.get_function(FunctionName=name)["Configuration"]["CodeSha256"]
    assert current in digests
    assert all(row["usedBy"] for row in listed), listed


def test_registry_with_bearer_tokens(env: Env, tmp_path: Path) -> None:
    tokens = TokenServer(tmp_path / "token", free_port(), "puller", "s3cret")
    registry = Registry(tmp_path / "registry", free_port(), auth_yaml=tokens.auth_yaml)
    registry.start()
    try:
        pusher = tmp_path / "push-auth.json"
        docker_config(pusher, registry.host, "puller", "s3cret")
        env.builder.build("localhost/private:v1", PROBE_DOCKERFILE, {"probe": env.probe})
        uri = f"{registry.host}/private:v1"
        env.builder.push("localhost/private:v1", uri, authfile=pusher)

        # no credentials for this registry yet: refused as Lambda refuses an image it
        # may not read
        with pytest.raises(env.lam.exceptions.InvalidParameterValueException) as e:
            create_image_function(env, uri)
        assert e.value.response["Error"]["Message"] == (
            "Lambda does not have permission to access the ECR image. Check the ECR permissions."
        )
        # the server's Docker config.json has them: the token flow gets the image
        docker_config(env.auth_file, registry.host, "puller", "s3cret")
        name, created = create_image_function(env, uri)
        assert created["CodeSha256"] == manifest_digest(uri, pusher).removeprefix("sha256:")
        assert wait_settled(env.lam, name)["State"] == "Active"
        assert probe(env, name)["argv"] == ["/bin/probe", "app.handler"]
    finally:
        env.auth_file.write_text('{"auths": {}}')
        registry.stop()
        tokens.stop()


def test_an_index_resolves_to_the_functions_architecture(env: Env) -> None:
    for arch in ("amd64", "arm64"):
        env.builder.build_for(
            f"localhost/multi-{arch}:v1",
            arch,
            PROBE_DOCKERFILE + f"ENV BUILT_FOR={arch}\n",
            {"probe": env.probe},
        )
    uri = f"{env.registry.host}/multi:v1"
    env.builder.push_index(
        "localhost/multi:v1",
        {"localhost/multi-amd64:v1": "amd64", "localhost/multi-arm64:v1": "arm64"},
        uri,
    )
    raw = subprocess.run(
        ["skopeo", "inspect", "--raw", "--tls-verify=false", f"docker://{uri}"],
        capture_output=True,
        check=True,
    ).stdout
    entries = {m["platform"]["architecture"]: m["digest"] for m in json.loads(raw)["manifests"]}
    x86, _ = create_image_function(env, uri)
    arm, created = create_image_function(env, uri, Architectures=["arm64"])
    assert created["CodeSha256"] == entries["arm64"].removeprefix("sha256:")
    assert wait_settled(env.lam, x86)["CodeSha256"] == entries["amd64"].removeprefix("sha256:")
    assert wait_settled(env.lam, arm)["State"] == "Active"  # pulled; it could not run here
    assert probe(env, x86)["env"]["BUILT_FOR"] == "amd64"
