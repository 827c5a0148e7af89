"""Unpacking of code zips: exec bits, traversal, symlinks, limits, garbage."""

from __future__ import annotations

import io
import os
import stat
import zipfile
from pathlib import Path

import pytest

from lambdalet.errors import InvalidParameterValueException
from lambdalet.store.code import BAD_ZIP_MESSAGE, store_zip


def zip_of(*entries: tuple[str, bytes, int]) -> bytes:
    """Entries of (name, content, unix mode incl. file type)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data, mode in entries:
            info = zipfile.ZipInfo(name)
            info.create_system = 3
            info.external_attr = mode << 16
            zf.writestr(info, data)
    return buf.getvalue()


REG, LNK = stat.S_IFREG, stat.S_IFLNK


def unpack(tmp_path: Path, data: bytes, max_unzipped: int = 10**9) -> Path:
    return store_zip(data, tmp_path / "blobs", tmp_path / "code", max_unzipped).code_dir


def refused(tmp_path: Path, data: bytes) -> None:
    with pytest.raises(InvalidParameterValueException) as info:
        unpack(tmp_path, data)
    assert info.value.message == BAD_ZIP_MESSAGE
    assert [p.name for p in (tmp_path / "code").iterdir() if p.name.startswith(".tmp")] == []


def test_exec_bits_are_kept(tmp_path: Path) -> None:
    root = unpack(
        tmp_path,
        zip_of(
            ("bootstrap", b"#!/bin/sh\n", REG | 0o755),
            ("lib/data.txt", b"x", REG | 0o600),
            ("bin/tool", b"x", REG | 0o700),
        ),
    )
    assert stat.S_IMODE(os.stat(root / "bootstrap").st_mode) == 0o755
    assert stat.S_IMODE(os.stat(root / "lib/data.txt").st_mode) == 0o644
    assert stat.S_IMODE(os.stat(root / "bin/tool").st_mode) == 0o744
    assert (root / "bootstrap").read_bytes() == b"#!/bin/sh\n"


def test_zips_without_unix_modes_get_plain_files(tmp_path: Path) -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("a.py", "x = 1\n")
    root = unpack(tmp_path, buf.getvalue())
    assert stat.S_IMODE(os.stat(root / "a.py").st_mode) == 0o644


def test_same_content_is_stored_once(tmp_path: Path) -> None:
    data = zip_of(("a", b"1", REG | 0o644))
    first = store_zip(data, tmp_path / "blobs", tmp_path / "code")
    second = store_zip(data, tmp_path / "blobs", tmp_path / "code")
    assert first == second
    assert (tmp_path / "blobs" / f"{first.sha256_hex}.zip").read_bytes() == data
    assert first.unzipped_size == 1


@pytest.mark.parametrize("name", ["../evil", "a/../../evil", "/etc/evil", "C:/evil"])
def test_path_traversal_is_refused(tmp_path: Path, name: str) -> None:
    refused(tmp_path, zip_of((name, b"x", REG | 0o644)))
    assert not (tmp_path / "evil").exists()


def test_symlink_escaping_is_refused(tmp_path: Path) -> None:
    refused(tmp_path, zip_of(("link", b"../../../etc", LNK | 0o777)))
    refused(tmp_path, zip_of(("link", b"/etc/passwd", LNK | 0o777)))


def test_symlink_chain_escaping_is_refused(tmp_path: Path) -> None:
    # a/b points at a; a/b/c -> ../.. looks like the root from a/b but is its parent from a
    refused(
        tmp_path,
        zip_of(("a/b", b".", LNK | 0o777), ("a/b/c", b"../..", LNK | 0o777)),
    )


def test_writing_through_a_symlink_out_is_refused(tmp_path: Path) -> None:
    refused(tmp_path, zip_of(("d", b"..", LNK | 0o777), ("d/evil", b"x", REG | 0o644)))
    assert not (tmp_path / "code" / "evil").exists()


def test_symlinks_inside_are_kept(tmp_path: Path) -> None:
    root = unpack(
        tmp_path,
        zip_of(("lib/real.so", b"elf", REG | 0o755), ("lib/alias.so", b"real.so", LNK | 0o777)),
    )
    assert os.readlink(root / "lib/alias.so") == "real.so"
    assert (root / "lib/alias.so").read_bytes() == b"elf"


@pytest.mark.parametrize("data", [b"", b"not a zip at all", b"PK\x03\x04garbage"])
def test_garbage_is_refused(tmp_path: Path, data: bytes) -> None:
    refused(tmp_path, data)


def test_corrupt_member_is_refused(tmp_path: Path) -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("a.txt", "hello " * 1000)
    data = bytearray(buf.getvalue())
    data[60:70] = b"\xff" * 10  # inside the deflated stream
    refused(tmp_path, bytes(data))


def test_unzipped_limit(tmp_path: Path) -> None:
    data = zip_of(("big", b"\0" * 1000, REG | 0o644))
    with pytest.raises(InvalidParameterValueException) as info:
        unpack(tmp_path, data, max_unzipped=999)
    assert info.value.message == "Unzipped size must be smaller than 999 bytes"
    assert unpack(tmp_path, data, max_unzipped=1000).is_dir()
