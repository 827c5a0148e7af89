"""The zips a deploy uploads: a folder, inline code, a function with its built
dependencies, a layer; and which Python builds a function's dependencies."""

from __future__ import annotations

import base64
import hashlib
import io
import os
import stat
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from lambdalet.ops import build
from lambdalet.ops.deploy_common import Say
from lambdalet.ops.template import FunctionPlan, LayerPlan

SKIPPED_DIRS = {
    "__pycache__",
    ".git",
    ".aws-sam",
    ".lambdalet-data",
    build.CACHE_DIR_NAME,
    ".venv",
    ".mypy_cache",
}


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
