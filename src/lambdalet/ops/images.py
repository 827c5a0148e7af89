"""SAM image functions for ``lambdalet deploy``: build the image from the function's
``Metadata`` with buildah (daemonless, vfs storage, as root) and hand it straight to the
server's image store (``POST /lambdalet/admin/images``), no registry in between.

buildah keeps its images (and base images it pulled) under ``$LAMBDALET_BUILDAH_ROOT``
(default ``~/.cache/lambdalet/buildah``).
"""

from __future__ import annotations

import json
import subprocess
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from lambdalet.ops.settings import client_settings
from lambdalet.ops.template import DockerBuild, FunctionPlan

BUILD_TIMEOUT_S = 1800


class BuildError(Exception):
    pass


@dataclass(frozen=True)
class BuiltImage:
    image_uri: str  # lambdalet.local/<repository>:<tag>
    digest: str  # sha256:<hex>


def buildah_root() -> Path:
    return client_settings().buildah_root


def _buildah(*args: str) -> None:
    root = buildah_root()
    argv = [
        "buildah",
        "--root",
        str(root / "storage"),
        "--runroot",
        str(root / "run"),
        "--storage-driver",
        "vfs",
        *args,
    ]
    try:
        done = subprocess.run(
            argv, capture_output=True, text=True, timeout=BUILD_TIMEOUT_S, check=False
        )
    except FileNotFoundError:
        raise BuildError("buildah is not installed (apt-get install buildah)") from None
    if done.returncode != 0:
        tail = "\n".join((done.stderr or done.stdout).strip().splitlines()[-8:])
        raise BuildError(f"buildah {args[0]} failed:\n{tail}")


def repository(plan: FunctionPlan, stack: str) -> str:
    """``<stack>/<logical id>``, lower-cased, as an image repository name."""
    return f"{stack}/{plan.logical_id}".lower().replace("_", "-")


def build_and_upload(
    endpoint: str, plan: FunctionPlan, stack: str, architecture: str = "x86_64"
) -> BuiltImage:
    docker = plan.docker
    assert docker is not None
    name = f"{repository(plan, stack)}:{docker.tag}"
    local = f"localhost/{name}"
    build(docker, local)
    with tempfile.TemporaryDirectory(prefix="lambdalet-image-") as tmp:
        archive = Path(tmp) / "image.tar"
        _buildah("push", "--quiet", local, f"oci-archive:{archive}")
        return upload(endpoint, archive, name, architecture)


def build(docker: DockerBuild, tag: str) -> None:
    context = Path(docker.context)
    if not context.is_dir():
        raise BuildError(f"DockerContext {context} is not a folder")
    args: list[str] = []
    for k, v in docker.build_args.items():
        args += ["--build-arg", f"{k}={v}"]
    _buildah(
        "bud",
        "--isolation",
        "chroot",
        "--quiet",
        # no --layers: buildah 1.28's layer cache ignores changed build arguments; a fixed
        # timestamp makes the same inputs the same image, so an unchanged function is
        # left alone by a redeploy
        "--timestamp",
        "0",
        "-f",
        str(context / docker.dockerfile),
        *args,
        "-t",
        tag,
        str(context),
    )


def upload(endpoint: str, archive: Path, name: str, architecture: str) -> BuiltImage:
    url = (
        endpoint.rstrip("/")
        + "/lambdalet/admin/images?"
        + urllib.parse.urlencode({"name": name, "architecture": architecture})
    )
    with archive.open("rb") as f:
        req = urllib.request.Request(
            url,
            data=f,
            method="POST",
            headers={
                "Content-Type": "application/x-tar",
                "Content-Length": str(archive.stat().st_size),
            },
        )
        try:
            with urllib.request.urlopen(req, timeout=BUILD_TIMEOUT_S) as r:
                doc = json.loads(r.read())
        except urllib.error.HTTPError as e:
            detail = e.read().decode(errors="replace")
            raise BuildError(f"the server refused the image ({e.code}): {detail}") from None
    return BuiltImage(str(doc["imageUri"]), str(doc["digest"]))
