"""Code blobs: zips stored by content hash and unpacked once, safely.

Blocking functions; the store runs them in a worker thread so big zips don't stall the loop.

Layout: ``<blobs_dir>/<sha256hex>.zip`` and ``<code_dir>/<sha256hex>/`` (the unpacked tree).
Unpacking keeps Unix exec bits (``zipfile`` drops them), refuses entries that would land outside
the tree (absolute paths, ``..``, symlinks pointing out), and stops at the unzipped-size limit.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import io
import os
import shutil
import stat
import uuid
import zipfile
import zlib
from pathlib import Path

from lambdalet.errors import InvalidParameterValueException
from lambdalet.store.disk import is_disk_full
from lambdalet.store.records import MAX_UNZIPPED_BYTES, CodeBlob

BAD_ZIP_MESSAGE = "Could not unzip uploaded file. Please check your file, then try to upload again."
_CHUNK = 1 << 20


class _Refused(Exception):
    """The zip is malformed or unsafe; shown to the caller as the generic unzip error."""


def unzipped_too_large_message(limit: int = MAX_UNZIPPED_BYTES) -> str:
    return f"Unzipped size must be smaller than {limit} bytes"


def store_zip(
    data: bytes, blobs_dir: Path, code_dir: Path, max_unzipped: int = MAX_UNZIPPED_BYTES
) -> CodeBlob:
    """Store ``data`` (a zip) by hash and unpack it unless already there.  Blocking."""
    digest = hashlib.sha256(data).digest()
    hexd = digest.hex()
    blob = blobs_dir / f"{hexd}.zip"
    target = code_dir / hexd
    size_file = code_dir / f"{hexd}.size"
    if target.is_dir() and blob.is_file() and size_file.is_file():
        unzipped = int(size_file.read_text())
    else:
        unzipped = _unpack_bytes(data, code_dir, hexd, max_unzipped)
        _write_atomic(blob, data)
        _write_atomic(size_file, str(unzipped).encode())
    if unzipped > max_unzipped:
        raise InvalidParameterValueException(unzipped_too_large_message(max_unzipped))
    return CodeBlob(
        sha256_hex=hexd,
        sha256_b64=base64.b64encode(digest).decode(),
        size=len(data),
        unzipped_size=unzipped,
        code_dir=target,
    )


def _write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".tmp-{uuid.uuid4().hex}-{path.name}")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _unpack_bytes(data: bytes, code_dir: Path, hexd: str, max_unzipped: int) -> int:
    """Unpack into a scratch folder, then rename it into place; return the unzipped size."""
    code_dir.mkdir(parents=True, exist_ok=True)
    scratch = code_dir / f".tmp-{uuid.uuid4().hex}"
    scratch.mkdir()
    try:
        try:
            with zipfile.ZipFile(io.BytesIO(data)) as zf:
                total = unpack(zf, scratch, max_unzipped)
        except _Refused:
            raise InvalidParameterValueException(BAD_ZIP_MESSAGE) from None
        except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, ValueError):
            raise InvalidParameterValueException(BAD_ZIP_MESSAGE) from None
        except OSError as e:
            # entries the file system cannot hold as given: a name over 255 bytes, a path
            # over PATH_MAX, a file and a folder of one name (``x`` and ``x/``)
            if is_disk_full(e):
                raise
            raise InvalidParameterValueException(BAD_ZIP_MESSAGE) from None
        os.chmod(scratch, 0o755)
        final = code_dir / hexd
        try:
            os.rename(scratch, final)
        except OSError:
            if not final.is_dir():
                raise
            shutil.rmtree(scratch)  # unpacked concurrently by someone else: same content
        return total
    except BaseException:
        shutil.rmtree(scratch, ignore_errors=True)
        raise


def _member_parts(name: str) -> list[str]:
    name = name.replace("\\", "/")
    if name.startswith("/") or (len(name) > 1 and name[1] == ":"):
        raise _Refused(f"absolute path {name!r}")
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if any(p == ".." for p in parts):
        raise _Refused(f"path traversal {name!r}")
    return parts


def _inside(root: Path, path: str) -> bool:
    real_root = os.path.realpath(root)
    real = os.path.realpath(path)
    return real == real_root or real.startswith(real_root + os.sep)


def unpack(zf: zipfile.ZipFile, root: Path, max_unzipped: int = MAX_UNZIPPED_BYTES) -> int:
    """Extract every member of ``zf`` under ``root``; return the bytes written.

    Raises ``InvalidParameterValueException`` over ``max_unzipped`` and ``_Refused`` for unsafe
    members.
    """
    declared = sum(i.file_size for i in zf.infolist())
    if declared > max_unzipped:
        raise InvalidParameterValueException(unzipped_too_large_message(max_unzipped))
    total = 0
    dirs: list[Path] = []
    for info in zf.infolist():
        parts = _member_parts(info.filename)
        if not parts:
            continue
        dest = root.joinpath(*parts)
        mode = info.external_attr >> 16 if info.create_system == 3 else 0
        kind = stat.S_IFMT(mode)
        parent = dest.parent
        parent.mkdir(parents=True, exist_ok=True)
        if not _inside(root, str(parent)):
            raise _Refused(f"{info.filename!r} lands outside the code folder")
        if info.is_dir() or kind == stat.S_IFDIR:
            if os.path.islink(dest):
                raise _Refused(f"{info.filename!r} replaces a symlink")
            if os.path.lexists(dest) and not dest.is_dir():
                raise _Refused(f"{info.filename!r} replaces a file")
            dest.mkdir(exist_ok=True)
            dirs.append(dest)
            continue
        if os.path.lexists(dest):
            if dest.is_dir() and not dest.is_symlink():
                raise _Refused(f"{info.filename!r} replaces a folder")
            dest.unlink()
        if kind == stat.S_IFLNK:
            target = zf.read(info).decode("utf-8")
            if not target or os.path.isabs(target):
                raise _Refused(f"symlink {info.filename!r} -> {target!r}")
            if not _inside(root, os.path.join(os.path.realpath(parent), target)):
                raise _Refused(f"symlink {info.filename!r} -> {target!r} escapes")
            os.symlink(target, dest)
            continue
        if kind not in (0, stat.S_IFREG):
            raise _Refused(f"{info.filename!r} is not a regular file")
        fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "wb") as out, zf.open(info) as src:
            while chunk := src.read(_CHUNK):
                total += len(chunk)
                if total > max_unzipped:
                    raise InvalidParameterValueException(unzipped_too_large_message(max_unzipped))
                out.write(chunk)
        os.chmod(dest, 0o644 | (mode & 0o111))
    for d in dirs:
        with contextlib.suppress(OSError):
            os.chmod(d, 0o755)
    _check_links(root)
    return total


def _check_links(root: Path) -> None:
    """Final pass: every symlink of the finished tree must resolve inside it."""
    for dirpath, dirnames, filenames in os.walk(root):
        for n in dirnames + filenames:
            p = os.path.join(dirpath, n)
            if os.path.islink(p) and not _inside(root, p):
                raise _Refused(f"symlink {p!r} escapes")


# ------------------------------------------------------------------ garbage collection


def _is_hex_digest(name: str) -> bool:
    return len(name) == 64 and all(c in "0123456789abcdef" for c in name)


def stored_hashes(blobs_dir: Path, code_dir: Path) -> set[str]:
    """Hashes of every zip, unpacked tree or size file on disk."""
    out: set[str] = set()
    for folder in (blobs_dir, code_dir):
        with contextlib.suppress(FileNotFoundError):
            for entry in os.scandir(folder):
                stem = entry.name.split(".", 1)[0]
                if _is_hex_digest(stem):
                    out.add(stem)
    return out


def discard(hexd: str, blobs_dir: Path, code_dir: Path, trash_dir: Path) -> None:
    """Take one code hash off the store: its zip and size file go, its unpacked tree moves to
    ``trash_dir`` (a rename: instant; :func:`empty_trash` deletes it later).  Blocking, fast."""
    tree = code_dir / hexd
    if tree.is_dir():
        trash_dir.mkdir(mode=0o700, exist_ok=True)
        os.rename(tree, trash_dir / f"{hexd}-{uuid.uuid4().hex}")
    for path in (blobs_dir / f"{hexd}.zip", code_dir / f"{hexd}.size"):
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def discard_scratch(blobs_dir: Path, code_dir: Path, trash_dir: Path) -> None:
    """Half-written uploads (``.tmp-*``) a crashed or failed run left.  Only call this when
    no upload is in flight."""
    for folder in (blobs_dir, code_dir):
        with contextlib.suppress(FileNotFoundError):
            for entry in os.scandir(folder):
                if not entry.name.startswith(".tmp-"):
                    continue
                if entry.is_dir(follow_symlinks=False):
                    trash_dir.mkdir(mode=0o700, exist_ok=True)
                    os.rename(entry.path, trash_dir / entry.name)
                else:
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(entry.path)


def empty_trash(trash_dir: Path) -> None:
    """Delete what :func:`discard` moved aside.  Blocking; may take a while for big trees."""
    with contextlib.suppress(FileNotFoundError):
        for entry in os.scandir(trash_dir):
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path, ignore_errors=True)
            else:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(entry.path)
