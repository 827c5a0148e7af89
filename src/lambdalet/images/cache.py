"""Pulled images on disk: one shared OCI layout and one unpacked root per image digest.

Layout under ``<data_dir>/images/``::

    oci/                 an OCI image layout (``skopeo copy`` writes it): every blob once,
                         by digest, whichever images share it; one ref per pulled image,
                         named ``sha256-<manifest hex>``
    roots/<hex>/rootfs/  the image's layers applied in order (``umoci unpack``: whiteouts,
                         opaque directories, no entry escaping the root), plus the empty
                         mount points a sandbox needs; shown read-only as ``/``
    roots/<hex>/image.json   the image's config blob (ENTRYPOINT, CMD, ENV, WORKDIR)

Pulling and unpacking use well-kept tools rather than our own registry and tar code:
``skopeo`` (registry API v2, manifest lists / OCI indexes with platform choice, bearer
tokens from the registry's challenge, Docker's ``config.json`` credentials, gzip and zstd
layers, digests checked) and ``umoci`` (OCI layer application).  Both are Debian packages.
Pulls run one at a time (one OCI layout, one ``index.json``).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import os
import re
import shutil
import subprocess
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lambdalet.images.reference import ImageRef
from lambdalet.images.spec import OCI_ARCH, BadImage, ImageRunSpec, check_platform, run_spec

logger = logging.getLogger(__name__)

#: how long one skopeo / umoci run may take
PULL_TIMEOUT_S = 900.0
INSPECT_TIMEOUT_S = 60.0

INDEX_TYPES = frozenset(
    {
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
    }
)
MANIFEST_TYPES = frozenset(
    {
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.v2+json",
    }
)

#: directories and files a sandbox mounts over; created (empty) in every unpacked root
MOUNT_DIRS = ("proc", "dev", "sys", "tmp", "var/rapid/agent", "var/task", "var/runtime", "opt")
MOUNT_FILES = ("etc/hosts", "etc/resolv.conf", "etc/hostname")

#: the registry name of images built locally and imported (``lambdalet deploy``): resolved
#: from ``local-refs.json``, never pulled
LOCAL_REGISTRY = "lambdalet.local"

# Lambda's StateReasonCode / LastUpdateStatusReasonCode values for image problems
IMAGE_DELETED = "ImageDeleted"
IMAGE_ACCESS_DENIED = "ImageAccessDenied"
INVALID_IMAGE = "InvalidImage"


class PullError(Exception):
    """The image cannot be had; ``reason_code`` is Lambda's name for why."""

    def __init__(self, reason_code: str, message: str) -> None:
        super().__init__(message)
        self.reason_code = reason_code
        self.message = message


@dataclass(frozen=True)
class PulledImage:
    digest: str  # sha256:<hex> of the manifest
    rootfs: Path
    run: ImageRunSpec
    size: int  # compressed bytes of config and layers, as a registry stores them


@dataclass(frozen=True)
class CachedImage:
    digest: str
    size_bytes: int  # bytes on disk of the unpacked root


def classify(output: str) -> str:
    """Lambda's reason code for a failed skopeo run, from what it printed."""
    low = output.lower()
    status = {int(s) for s in re.findall(r"(?<![0-9a-f])(40[134])(?![0-9a-f])", low)}
    words = ("unauthorized", "authentication required", "denied")
    if any(w in low for w in words) or status & {401, 403}:
        return IMAGE_ACCESS_DENIED
    if any(w in low for w in ("manifest unknown", "name unknown", "not found")) or 404 in status:
        return IMAGE_DELETED
    if any(w in low for w in ("digest", "unsupported", "invalid", "mediatype", "media type")):
        return INVALID_IMAGE
    return IMAGE_DELETED


def _tool_message(output: bytes) -> str:
    text = output.decode(errors="replace").strip()
    for line in reversed(text.splitlines()):
        if "msg=" in line:
            return line.split("msg=", 1)[1].strip().strip('"')
        if line.strip():
            return line.strip()
    return text


def _hex(digest: str) -> str:
    return digest.removeprefix("sha256:")


class ImageCache:
    """Pulls, unpacks, finds and prunes images under one directory."""

    def __init__(
        self,
        root: Path,
        *,
        insecure_registries: Iterable[str] = (),
        auth_file: Path | None = None,
    ) -> None:
        self.root = root
        self.layout = root / "oci"
        self.roots = root / "roots"
        self.insecure = frozenset(insecure_registries)
        self.auth_file = auth_file
        self._lock = asyncio.Lock()
        self._loaded: dict[str, PulledImage] = {}

    # ---------------------------------------------------------------- registry

    def _src_flags(self, ref: ImageRef, *, inspect: bool = False) -> list[str]:
        flags: list[str] = []
        plain = ref.is_loopback() or ref.registry in self.insecure or ref.host in self.insecure
        if plain:
            flags.append("--tls-verify=false" if inspect else "--src-tls-verify=false")
        if self.auth_file is not None:
            flags += ["--authfile" if inspect else "--src-authfile", str(self.auth_file)]
        return flags

    async def _skopeo(self, argv: Sequence[str], limit_s: float) -> bytes:
        """skopeo's stdout; a failure raises :class:`PullError` classified from stderr."""
        try:
            done = await asyncio.to_thread(
                subprocess.run,
                ["skopeo", *argv],
                capture_output=True,
                timeout=limit_s,
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise PullError(IMAGE_DELETED, f"skopeo timed out after {limit_s:.0f}s") from None
        except FileNotFoundError:
            raise PullError(INVALID_IMAGE, "skopeo is not installed on this host") from None
        if done.returncode != 0:
            err = done.stderr.decode(errors="replace")
            raise PullError(classify(err), _tool_message(done.stderr))
        return done.stdout

    def _local_refs(self) -> dict[str, str]:
        try:
            refs = json.loads((self.root / "local-refs.json").read_text())
        except (OSError, ValueError):
            return {}
        return {str(k): str(v) for k, v in refs.items()}

    async def resolve(self, ref: ImageRef, architecture: str) -> str:
        """The digest of the image's manifest for ``architecture`` (an index is resolved to
        the entry of that platform).  Raises :class:`PullError`."""
        if ref.registry == LOCAL_REGISTRY:
            digest = ref.digest or self._local_refs().get(str(ref))
            if digest is None or self.load(digest) is None:
                raise PullError(IMAGE_DELETED, f"no image {ref} was built here")
            return digest
        # skopeo takes a tag or a digest, not both: the digest pins it
        raw = await self._inspect_raw(ref, ref.pinned(ref.digest) if ref.digest else str(ref))
        doc = _json(raw)
        media = doc.get("mediaType") or ""
        if media in INDEX_TYPES or "manifests" in doc:
            want = OCI_ARCH.get(architecture, architecture)
            for entry in doc.get("manifests") or []:
                plat = entry.get("platform") or {}
                if plat.get("os") == "linux" and plat.get("architecture") == want:
                    return str(entry["digest"])
            raise PullError(INVALID_IMAGE, f"the image has no linux/{want} manifest")
        if media and media not in MANIFEST_TYPES:
            raise PullError(INVALID_IMAGE, f"unsupported manifest media type {media}")
        if ref.digest is not None:
            return ref.digest
        return "sha256:" + hashlib.sha256(raw).hexdigest()

    async def _inspect_raw(self, ref: ImageRef, target: str) -> bytes:
        out = await self._skopeo(
            ["inspect", "--raw", *self._src_flags(ref, inspect=True), f"docker://{target}"],
            INSPECT_TIMEOUT_S,
        )
        return out

    # ------------------------------------------------------------------ pulls

    def rootfs(self, digest: str) -> Path:
        return self.roots / _hex(digest) / "rootfs"

    def load(self, digest: str) -> PulledImage | None:
        """The unpacked image of ``digest``, if it is on disk."""
        got = self._loaded.get(digest)
        if got is not None:
            return got
        d = self.roots / _hex(digest)
        try:
            meta = json.loads((d / "pulled.json").read_text())
            config = (d / "image.json").read_bytes()
        except (OSError, ValueError):
            return None
        got = PulledImage(digest, d / "rootfs", run_spec(config), int(meta.get("size", 0)))
        self._loaded[digest] = got
        return got

    async def pull(self, ref: ImageRef, digest: str, architecture: str) -> PulledImage:
        """Copy the image into the layout and unpack it (once per digest)."""
        async with self._lock:
            have = self.load(digest)
            if have is not None:
                return have
            if ref.registry == LOCAL_REGISTRY:
                raise PullError(IMAGE_DELETED, f"the image {ref} built here was removed")
            self.layout.parent.mkdir(parents=True, exist_ok=True)
            tag = f"sha256-{_hex(digest)}"
            await self._skopeo(
                [
                    "copy",
                    "--quiet",
                    *self._src_flags(ref),
                    f"docker://{ref.pinned(digest)}",
                    f"oci:{self.layout}:{tag}",
                ],
                PULL_TIMEOUT_S,
            )
            return await asyncio.to_thread(self._unpack, tag, digest, architecture)

    async def import_archive(self, archive: Path, name: str, architecture: str) -> str:
        """Store an OCI archive (a local build) as ``lambdalet.local/<name>``; its digest."""
        async with self._lock:
            self.layout.parent.mkdir(parents=True, exist_ok=True)
            tmp_tag = f"import-{os.getpid()}"
            await self._skopeo(
                ["copy", "--quiet", f"oci-archive:{archive}", f"oci:{self.layout}:{tmp_tag}"],
                PULL_TIMEOUT_S,
            )
            digest = await asyncio.to_thread(self._retag, tmp_tag)
            if self.load(digest) is None:
                await asyncio.to_thread(
                    self._unpack, f"sha256-{_hex(digest)}", digest, architecture
                )
            refs = self._local_refs()
            refs[f"{LOCAL_REGISTRY}/{name}"] = digest
            _write_json(self.root / "local-refs.json", refs)
            return digest

    def _retag(self, tmp_tag: str) -> str:
        index_path = self.layout / "index.json"
        index = json.loads(index_path.read_text())
        digest = ""
        for m in index.get("manifests", []):
            ann = m.get("annotations") or {}
            if ann.get("org.opencontainers.image.ref.name") == tmp_tag:
                digest = str(m["digest"])
                ann["org.opencontainers.image.ref.name"] = f"sha256-{_hex(digest)}"
        if not digest:
            raise PullError(INVALID_IMAGE, "the imported image has no manifest")
        seen: set[str] = set()
        kept = []
        for m in index["manifests"]:
            name = (m.get("annotations") or {}).get("org.opencontainers.image.ref.name")
            if name in seen:
                continue
            seen.add(str(name))
            kept.append(m)
        index["manifests"] = kept
        _write_json(index_path, index)
        return digest

    def _blob(self, digest: str) -> bytes:
        path = self.layout / "blobs" / "sha256" / _hex(digest)
        data = path.read_bytes()
        if hashlib.sha256(data).hexdigest() != _hex(digest):
            raise PullError(INVALID_IMAGE, f"blob {digest} does not match its digest")
        return data

    def _unpack(self, tag: str, digest: str, architecture: str) -> PulledImage:
        manifest = _json(self._blob(digest))
        if manifest.get("mediaType", next(iter(MANIFEST_TYPES))) not in MANIFEST_TYPES:
            raise PullError(
                INVALID_IMAGE, f"unsupported manifest media type {manifest.get('mediaType')}"
            )
        config_desc = manifest.get("config") or {}
        config = self._blob(str(config_desc.get("digest", "")))
        try:
            run = run_spec(config)
            check_platform(run, architecture)
        except BadImage as e:
            raise PullError(INVALID_IMAGE, str(e)) from None
        size = len(config) + sum(int(layer.get("size", 0)) for layer in manifest["layers"])
        final = self.roots / _hex(digest)
        work = self.roots / f".unpack-{_hex(digest)[:16]}-{os.getpid()}"
        shutil.rmtree(work, ignore_errors=True)
        self.roots.mkdir(parents=True, exist_ok=True)
        source = f"{self.layout}:{tag}"
        converted = self.roots / f".gzip-{_hex(digest)[:16]}-{os.getpid()}"
        if any(str(la.get("mediaType", "")).endswith("+zstd") for la in manifest["layers"]):
            # umoci 0.4 reads gzip and plain layers only: recompress into a scratch layout
            recompress = ["--dest-compress", "--dest-compress-format", "gzip"]
            _tool(["skopeo", "copy", "--quiet", *recompress, f"oci:{source}", f"oci:{converted}:t"])
            source = f"{converted}:t"
        try:
            _tool(["umoci", "unpack", "--image", source, str(work)])
        except PullError:
            shutil.rmtree(work, ignore_errors=True)
            raise
        finally:
            shutil.rmtree(converted, ignore_errors=True)
        rootfs = work / "rootfs"
        _add_mount_points(rootfs, run.workdir)
        work.chmod(0o755)
        rootfs.chmod(0o755)
        (work / "image.json").write_bytes(config)
        _write_json(work / "pulled.json", {"digest": digest, "size": size})
        for leftover in ("config.json", "umoci.json"):
            with contextlib.suppress(OSError):
                (work / leftover).unlink()
        try:
            work.rename(final)
        except OSError:
            shutil.rmtree(work, ignore_errors=True)
            if not final.is_dir():
                raise
        got = PulledImage(digest, final / "rootfs", run, size)
        self._loaded[digest] = got
        return got

    # ----------------------------------------------------------- list, prune

    def cached(self) -> list[CachedImage]:
        out = []
        with contextlib.suppress(FileNotFoundError):
            for d in sorted(self.roots.iterdir()):
                if d.name.startswith(".") or not (d / "pulled.json").is_file():
                    continue
                out.append(CachedImage(f"sha256:{d.name}", _du(d)))
        return out

    async def prune(self, keep: Callable[[], Iterable[str]]) -> list[str]:
        """Remove every unpacked image and layout ref whose digest ``keep()`` (asked once no
        pull is in progress) does not name, then the blobs no ref uses; returns the digests
        removed."""
        async with self._lock:
            return await asyncio.to_thread(self._prune, set(keep()))

    def _prune(self, keep: set[str]) -> list[str]:
        removed: list[str] = []
        for img in self.cached():
            if img.digest not in keep:
                shutil.rmtree(self.roots / _hex(img.digest), ignore_errors=True)
                self._loaded.pop(img.digest, None)
                removed.append(img.digest)
        refs = self._local_refs()
        if any(d in removed for d in refs.values()):
            kept = {k: d for k, d in refs.items() if d not in removed}
            _write_json(self.root / "local-refs.json", kept)
        index_path = self.layout / "index.json"
        if index_path.is_file():
            index = json.loads(index_path.read_text())
            index["manifests"] = [m for m in index.get("manifests", []) if m["digest"] in keep]
            _write_json(index_path, index)
            subprocess.run(
                ["umoci", "gc", "--layout", str(self.layout)],
                capture_output=True,
                timeout=PULL_TIMEOUT_S,
                check=False,
            )
        return removed


def _tool(argv: list[str]) -> None:
    """Run skopeo or umoci to completion; a failure is an InvalidImage PullError."""
    done = subprocess.run(argv, capture_output=True, timeout=PULL_TIMEOUT_S, check=False)
    if done.returncode != 0:
        raise PullError(INVALID_IMAGE, _tool_message(done.stdout + done.stderr))


def _add_mount_points(rootfs: Path, workdir: str = "") -> None:
    """Empty directories and files for the sandbox's mounts (runc cannot create them in a
    read-only root), and the image's WORKDIR when its layers lack it (Docker creates it
    too; buildah's per-instruction layers do not hold it).  A path that is a symlink in the
    image is left alone: the mount then fails loudly rather than land outside the root."""
    wd = workdir.strip("/")
    for rel in (*MOUNT_DIRS, wd) if wd and ".." not in wd.split("/") else MOUNT_DIRS:
        p = rootfs / rel
        if _inside_no_symlink(rootfs, p) and not p.exists():
            p.mkdir(mode=0o755, parents=True)
    (rootfs / "tmp").chmod(0o1777)
    for rel in MOUNT_FILES:
        p = rootfs / rel
        if _inside_no_symlink(rootfs, p.parent):
            p.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
            if not p.exists() and not p.is_symlink():
                p.touch(mode=0o644)


def _inside_no_symlink(rootfs: Path, path: Path) -> bool:
    cur = rootfs
    for part in path.relative_to(rootfs).parts:
        cur = cur / part
        if cur.is_symlink():
            return False
    return True


def _du(path: Path) -> int:
    total = 0
    for dirpath, _dirs, files in os.walk(path):
        for f in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(dirpath, f)).st_blocks * 512
    return total


def _json(raw: bytes) -> dict[str, Any]:
    try:
        doc = json.loads(raw)
    except ValueError:
        raise PullError(INVALID_IMAGE, "the image manifest is not JSON") from None
    if not isinstance(doc, dict):
        raise PullError(INVALID_IMAGE, "the image manifest is not a JSON object")
    return doc


def _write_json(path: Path, value: object) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    tmp.write_text(json.dumps(value, separators=(",", ":")))
    tmp.replace(path)
