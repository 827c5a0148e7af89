from __future__ import annotations

import os
from pathlib import Path

from lambdalet.images.cache import (
    IMAGE_ACCESS_DENIED,
    IMAGE_DELETED,
    INVALID_IMAGE,
    ImageCache,
    _add_mount_points,
    classify,
)
from lambdalet.images.reference import parse


def test_classify_skopeo_errors() -> None:
    assert classify("reading manifest v9 in r/app: manifest unknown") == IMAGE_DELETED
    assert classify("unable to retrieve auth token: 401 Unauthorized") == IMAGE_ACCESS_DENIED
    assert classify("Digest did not match, expected sha256:aa") == INVALID_IMAGE
    # status codes, not digits inside a digest
    assert classify("reading blob sha256:a401b403c: digest mismatch") == INVALID_IMAGE
    assert classify("received unexpected HTTP status: 403 Forbidden") == IMAGE_ACCESS_DENIED


def test_plain_http_for_loopback_and_named_registries(tmp_path: Path) -> None:
    cache = ImageCache(tmp_path, insecure_registries=("reg.internal:5000", "other"))
    flags = cache._src_flags
    assert flags(parse("127.0.0.1:5000/a:b")) == ["--src-tls-verify=false"]
    assert flags(parse("reg.internal:5000/a:b"), inspect=True) == ["--tls-verify=false"]
    assert flags(parse("other:443/a:b")) == ["--src-tls-verify=false"]
    assert flags(parse("registry.example/a:b")) == []
    with_auth = ImageCache(tmp_path, auth_file=tmp_path / "config.json")
    assert with_auth._src_flags(parse("registry.example/a:b")) == [
        "--src-authfile",
        str(tmp_path / "config.json"),
    ]


def test_mount_points_never_follow_the_image_symlinks(tmp_path: Path) -> None:
    root = tmp_path / "rootfs"
    (root / "etc").mkdir(parents=True)
    outside = tmp_path / "outside"
    outside.mkdir()
    os.symlink(str(outside), root / "opt")  # an image's absolute symlink: host path here
    os.symlink("/etc/shadow-of-host", root / "etc" / "hosts")
    _add_mount_points(root, "/srv/app")
    assert (root / "proc").is_dir() and (root / "var/rapid/agent").is_dir()
    assert (root / "srv/app").is_dir()  # WORKDIR
    _add_mount_points(root, "/../escape")
    assert not (tmp_path / "escape").exists()
    assert oct((root / "tmp").stat().st_mode & 0o7777) == "0o1777"
    assert (root / "etc/resolv.conf").is_file()
    assert list(outside.iterdir()) == []  # nothing created through the symlink
    assert os.readlink(root / "etc" / "hosts") == "/etc/shadow-of-host"
