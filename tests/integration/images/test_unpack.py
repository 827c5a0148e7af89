"""Unpacking with the real umoci, from an OCI layout written here: whiteouts, opaque
directories, and layers that try to write outside the root."""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import io
import json
import tarfile
from pathlib import Path

import pytest

from lambdalet.images.cache import ImageCache, PullError
from tests.integration.images.tools import require_image_tools
from tests.needs import NO_IMAGES, rootless_lacks

pytestmark = pytest.mark.integration


def _layer(entries: list[tuple[str, bytes | None, str | None]]) -> bytes:
    """A gzipped tar: (name, file content or None for a directory, symlink target)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for name, data, link in entries:
            info = tarfile.TarInfo(name)
            if link is not None:
                info.type, info.linkname = tarfile.SYMTYPE, link
            elif data is None:
                info.type, info.mode = tarfile.DIRTYPE, 0o755
            else:
                info.size, info.mode = len(data), 0o644
            tf.addfile(info, io.BytesIO(data) if data is not None else None)
    return gzip.compress(buf.getvalue(), mtime=0)


def _put(layout: Path, data: bytes) -> dict[str, object]:
    digest = hashlib.sha256(data).hexdigest()
    (layout / "blobs/sha256" / digest).write_bytes(data)
    return {"digest": f"sha256:{digest}", "size": len(data)}


def write_layout(layout: Path, layers: list[bytes]) -> str:
    (layout / "blobs/sha256").mkdir(parents=True)
    (layout / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    diff_ids = ["sha256:" + hashlib.sha256(gzip.decompress(la)).hexdigest() for la in layers]
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "config": {"Cmd": ["/x"]},
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
        }
    ).encode()
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", **_put(layout, config)},
        "layers": [
            {"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", **_put(layout, la)}
            for la in layers
        ],
    }
    m = _put(layout, json.dumps(manifest).encode())
    ref = f"sha256-{str(m['digest'])[7:]}"
    index = {
        "schemaVersion": 2,
        "manifests": [
            {
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                **m,
                "annotations": {"org.opencontainers.image.ref.name": ref},
            }
        ],
    }
    (layout / "index.json").write_text(json.dumps(index))
    return str(m["digest"])


def unpack(tmp_path: Path, layers: list[bytes]) -> Path:
    require_image_tools()
    rootless_lacks(NO_IMAGES)
    cache = ImageCache(tmp_path / "images")
    digest = write_layout(cache.layout, layers)
    pulled = cache._unpack(f"sha256-{digest[7:]}", digest, "x86_64")
    return pulled.rootfs


def test_whiteouts_and_opaque_directories(tmp_path: Path) -> None:
    lower = _layer(
        [
            ("dir", None, None),
            ("dir/a", b"a", None),
            ("dir/sub", None, None),
            ("dir/sub/b", b"b", None),
            ("x", b"x", None),
            ("keep", b"k", None),
        ]
    )
    upper = _layer(
        [
            ("dir", None, None),
            ("dir/.wh..wh..opq", b"", None),
            ("dir/c", b"c", None),
            (".wh.x", b"", None),
        ]
    )
    root = unpack(tmp_path, [lower, upper])
    assert sorted(p.name for p in (root / "dir").iterdir()) == ["c"]
    assert not (root / "x").exists() and (root / "keep").read_bytes() == b"k"
    assert not any(p.name.startswith(".wh.") for p in root.rglob("*"))
    assert (root / "proc").is_dir() and (root / "etc/hosts").is_file()


def test_layers_cannot_write_outside_the_root(tmp_path: Path) -> None:
    evil = _layer(
        [
            ("link", None, "/"),
            ("link/escaped-through-link", b"e", None),
            ("../escaped-by-dots", b"e", None),
        ]
    )
    # refusing the layer is as good as keeping it inside
    with contextlib.suppress(PullError):
        unpack(tmp_path, [evil])
    outside = [p for p in tmp_path.rglob("escaped-*") if "rootfs" not in p.parts]
    assert outside == []
    assert not Path("/escaped-through-link").exists()


def test_images_command_lists_and_prunes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from lambdalet.images.commands import images_command

    unpack(tmp_path, [_layer([("f", b"1", None)])])  # the cache at <tmp>/images
    assert images_command(tmp_path, "list", as_json=True) == 0
    listed = json.loads(capsys.readouterr().out)
    assert len(listed) == 1 and listed[0]["usedBy"] == []
    assert images_command(tmp_path, "prune", as_json=True) == 0  # no function uses it
    assert json.loads(capsys.readouterr().out)["removed"] == [listed[0]["digest"]]
    assert not any((tmp_path / "images" / "roots").iterdir())
    index = json.loads((tmp_path / "images" / "oci" / "index.json").read_text())
    assert index["manifests"] == []
    assert list((tmp_path / "images" / "oci" / "blobs" / "sha256").iterdir()) == []  # gc
